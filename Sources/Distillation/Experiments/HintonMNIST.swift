import Foundation
import TensorCore
import Datasets

/// The paper's MNIST experiment (Hinton, Vinyals & Dean 2015, section 3): a regularised 2x1200 teacher, a 2x800
/// student trained on the labels only, and the same student distilled from the teacher at T = 20.
public enum HintonMNIST {
    /// The paper's test errors (of 10,000).
    public static let paper = (teacher: 67, student: 146, distilled: 74)

    public enum Preset: String, CaseIterable, Codable, Sendable {
        /// A few minutes: 10,000 training images (1,000 of them for validation), short schedules. The CI smoke test.
        case quick
        /// The whole training set (5,000 held out for model selection), 60 teacher and 30 student epochs.
        case full
    }

    /// The settings of one preset.
    public struct Plan: Codable, Sendable {
        public var trainingSubset: Int?
        public var teacher: TrainingConfiguration
        public var student: TrainingConfiguration
        public var loss: DistillationLossConfiguration
    }

    public static func plan(_ preset: Preset) -> Plan {
        var teacher = TrainingConfiguration()
        teacher.hidden = [1200, 1200]
        teacher.inputDropout = 0.2
        teacher.hiddenDropout = 0.5
        teacher.jitter = 2
        teacher.maxNorm = 3.5
        teacher.learningRate = 0.1
        teacher.momentum = 0.9
        teacher.schedule = .cosine(totalEpochs: 60, minimum: 0)
        teacher.epochs = 60
        var student = TrainingConfiguration()
        student.hidden = [800, 800]
        student.learningRate = 0.1
        student.momentum = 0.9
        student.epochs = 30
        student.schedule = .cosine(totalEpochs: 30, minimum: 0)
        var subset: Int? = nil
        switch preset {
        case .full:
            teacher.validationCount = 5000
            student.validationCount = 5000
        case .quick:
            subset = 10_000
            teacher.epochs = 12
            teacher.schedule = .cosine(totalEpochs: 12, minimum: 0)
            student.epochs = 12
            student.schedule = .cosine(totalEpochs: 12, minimum: 0)
            teacher.validationCount = 1000
            student.validationCount = 1000
        }
        return Plan(trainingSubset: subset, teacher: teacher, student: student,
                    loss: DistillationLossConfiguration(temperature: 20, hardWeight: 0.5, softWeight: 0.5))
    }

    /// Results of one seed.
    public struct SeedResult: Codable, Sendable {
        public var seed: UInt64
        public var teacherErrors, studentErrors, distilledErrors: Int
        public var teacherLastEpochErrors, studentLastEpochErrors, distilledLastEpochErrors: Int
        public var seconds: Double

        enum CodingKeys: String, CodingKey {
            case seed, seconds
            case teacherErrors = "teacher_errors", studentErrors = "student_errors", distilledErrors = "distilled_errors"
            case teacherLastEpochErrors = "teacher_last_epoch_errors", studentLastEpochErrors = "student_last_epoch_errors"
            case distilledLastEpochErrors = "distilled_last_epoch_errors"
        }
    }

    /// Runs every seed; the training subset (quick preset) is drawn with the seed, the teacher is trained with
    /// jitter online and the distilled student learns from the teacher's stored (un-augmented) logits.
    public static func run(preset: Preset, seeds: [UInt64], context: ExperimentContext,
                           epochScale: Double = 1) throws -> [SeedResult] {
        var results: [SeedResult] = []
        let plan = scaled(plan(preset), by: epochScale)
        for seed in seeds {
            let start = Date()
            let subContext = world(plan: plan, seed: seed, context: context)
            let train = subContext.data.train
            var studentConfiguration = plan.student
            studentConfiguration.seed = seed
            let tag = "\(preset.rawValue)-seed\(seed)"
            let teacher = try trainTeacher(plan: plan, tag: tag, seed: seed, context: subContext)
            let student = try subContext.trainOrLoad(key: "hinton-student-\(tag)", configuration: studentConfiguration, train: train) { _ in LabelObjective() }
            let teacherModel = ModelTeacher(model: teacher.model)
            let store = try subContext.store(for: teacherModel, key: "hinton-teacher-\(tag)")
            let storedTeacher = StoredLogitsTeacher(store: store)
            let objectiveIdentity = "distillation teacher=\(teacherModel.identity) \(plan.loss)"
            let distilled = try subContext.trainOrLoad(key: "hinton-distilled-\(tag)", configuration: studentConfiguration,
                                                       train: train, objectiveIdentity: objectiveIdentity) { indices in
                try DistillationObjective(teacher: storedTeacher, loss: plan.loss, exampleIndices: indices)
            }
            results.append(SeedResult(seed: seed, teacherErrors: teacher.testErrors, studentErrors: student.testErrors,
                                      distilledErrors: distilled.testErrors, teacherLastEpochErrors: teacher.lastEpochTestErrors,
                                      studentLastEpochErrors: student.lastEpochTestErrors,
                                      distilledLastEpochErrors: distilled.lastEpochTestErrors,
                                      seconds: Date().timeIntervalSince(start)))
        }
        return results
    }

    /// The training world of a preset and seed: the full training set, or (quick) a seeded subset of it.
    public static func world(plan: Plan, seed: UInt64, context: ExperimentContext) -> ExperimentContext {
        var subContext = context
        if let subset = plan.trainingSubset, subset < context.data.train.count {
            var generator = RandomGenerator(seed: 0xDA7A ^ seed)
            let indices = generator.permutation(context.data.train.count)[..<subset].sorted()
            subContext.data.train = context.data.train.subset(indices: Array(indices))
        }
        return subContext
    }

    /// The teacher of a preset and seed (trained once, then reused from the work directory by every experiment).
    public static func trainTeacher(plan: Plan, tag: String, seed: UInt64, context: ExperimentContext) throws -> TrainedModel {
        var configuration = plan.teacher
        configuration.seed = seed
        return try context.trainOrLoad(key: "hinton-teacher-\(tag)", configuration: configuration, train: context.data.train) { _ in
            LabelObjective()
        }
    }

    /// Multiplies every epoch count by `factor` (at least 1 epoch), for shorter trial runs.
    static func scaled(_ plan: Plan, by factor: Double) -> Plan {
        guard factor != 1 else { return plan }
        var plan = plan
        func scale(_ c: inout TrainingConfiguration) {
            c.epochs = Swift.max(1, Int((Double(c.epochs) * factor).rounded()))
            if case .cosine(_, let minimum) = c.schedule { c.schedule = .cosine(totalEpochs: c.epochs, minimum: minimum) }
        }
        scale(&plan.teacher)
        scale(&plan.student)
        return plan
    }

    /// The table beside the paper's figures.
    public static func table(_ results: [SeedResult], preset: Preset) -> String {
        let p = plan(preset)
        func column(_ f: (SeedResult) -> Int) -> [Double] { results.map { Double(f($0)) } }
        let rows = [
            ["teacher 784-1200-1200-10 (dropout, jitter, max-norm)", "\(paper.teacher)", formatStatistic(column(\.teacherErrors)), formatStatistic(column(\.teacherLastEpochErrors))],
            ["student 784-800-800-10, labels only", "\(paper.student)", formatStatistic(column(\.studentErrors)), formatStatistic(column(\.studentLastEpochErrors))],
            ["student distilled at T=\(Int(p.loss.temperature)), hard/soft \(p.loss.hardWeight)/\(p.loss.softWeight)", "\(paper.distilled)", formatStatistic(column(\.distilledErrors)), formatStatistic(column(\.distilledLastEpochErrors))],
        ]
        let train = p.trainingSubset.map { "\($0) training images" } ?? "60,000 training images"
        let header = "MNIST test errors (of 10,000), preset \(preset.rawValue): \(train), \(p.teacher.validationCount) held out for model selection; mean ± sd over \(results.count) seed(s) \(results.map(\.seed))"
        return header + "\n" + formatTable(["model", "paper", "ours (best validation epoch)", "ours (last epoch)"], rows)
    }
}
