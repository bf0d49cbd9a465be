import Foundation
import Optimizers
import Distillation
import TensorCore
import NeuralNet
import Datasets

/// A convolutional teacher (ResNet-8, CIFAR-style) distilled into two students on MNIST, the 784-800-800-10 MLP and
/// LeNet-5, with each loss: labels only, Hinton's soft targets, FitNets hints, attention transfer and decoupled KD
/// (each with the labels' cross-entropy beside it, as their papers train). One teacher (seed 0); every student
/// from each seed. Reports test errors, parameters and inference time per image.
public enum CNNDistillation {
    public enum Preset: String, CaseIterable, Codable, Sendable {
        /// 10,000 training images, short schedules.
        case quick
        /// All 60,000 training images.
        case full
    }

    /// A loss the students are trained with.
    public enum Loss: String, CaseIterable, Codable, Sendable {
        case labels, hinton, fitnets, attention, dkd, similarity
        var title: String {
            switch self {
            case .labels: return "labels only"
            case .hinton: return "Hinton KD"
            case .fitnets: return "FitNets hint"
            case .attention: return "attention transfer"
            case .dkd: return "decoupled KD"
            case .similarity: return "similarity-preserving KD"
            }
        }
    }

    /// A student network and the layer pairings its feature losses use (student layer, teacher layer).
    public struct Student: Codable, Sendable {
        public var name: String
        public var model: ModelConfiguration
        public var hints: [[Int]]
        public var attention: [[Int]]
        /// DKD's non-target weight for this student (alpha is the plan's).
        public var dkdBeta: Float
        /// Similarity-preserving pairs.
        public var similarity: [[Int]]
    }

    public struct Plan: Codable, Sendable {
        public var trainingSubset: Int?
        public var teacher: TrainingConfiguration
        public var student: TrainingConfiguration
        public var students: [Student]
        /// Hinton's loss (also the temperature of DKD): T = 4, weights 0.5 / 0.5.
        public var hinton: DistillationLossConfiguration
        public var decoupled: DecoupledKDWeights
        public var hintWeight: Float
        public var attentionWeight: Float
        public var similarityWeight: Float
        /// When set, every student's DKD beta.
        public var dkdBetaOverride: Float? = nil
        /// The global gradient norm the DKD and similarity-preserving students are clipped to (unclipped, both losses
        /// collapsed LeNet-5 for some seeds; Results/cnn-mnist); nil: none. A clip set on `student` (every student's,
        /// `--clip-grad-norm`) takes precedence.
        public var dkdAndSimilarityGradientClip: Float? = 5
    }

    public static func plan(_ preset: Preset) -> Plan {
        var teacher = TrainingConfiguration()
        teacher.model = ModelConfiguration(architecture: .preset("resnet8"))
        teacher.optimizer.learningRate = 0.05
        teacher.optimizer.momentum = 0.9
        teacher.optimizer.weightDecay = 5e-4
        var student = TrainingConfiguration()
        // Decoupled KD (T^2-scaled target-class term) diverges on LeNet-5 at 0.05; every loss gets the same rate.
        student.optimizer.learningRate = 0.02
        student.optimizer.momentum = 0.9
        var subset: Int? = nil
        switch preset {
        case .quick:
            subset = 10_000
            teacher.epochs = 8
            student.epochs = 8
        case .full:
            teacher.epochs = 10
            student.epochs = 10
        }
        // One epoch of linear warm-up (from a tenth of the rate), then cosine annealing.
        teacher.optimizer.schedule = HintonMNIST.warmupThenCosine(1, total: teacher.epochs)
        student.optimizer.schedule = HintonMNIST.warmupThenCosine(1, total: student.epochs)
        // ResNet-8 layers: 0 conv, 1 bn, 2 relu, 3-4 stage 1 (16x28x28), 5-6 stage 2 (32x14x14), 7-8 stage 3
        // (64x7x7), 9 global pooling (64), 10 linear.
        let students = [
            Student(name: "mlp-800x2", model: .mlp(hidden: [800, 800]), hints: [[3, 9]], attention: [], dkdBeta: 2,
                    similarity: [[3, 8]]),
            // LeNet-5 layers: 0 conv, 1 relu (6x28x28), 2 pool (6x14x14), 3 conv, 4 relu (16x10x10), 5 pool,
            // 6 flatten, 7-8 linear 120, 9-10 linear 84, 11 linear.
            Student(name: "lenet5", model: ModelConfiguration(architecture: .preset("lenet5")), hints: [[2, 6]], attention: [[1, 4], [2, 6]],
                    dkdBeta: 2, similarity: [[10, 8]]),
        ]
        // The weights were chosen on 2,000 held-out training images (`--held-out 2000`, seed 0; Results/cnn-mnist):
        // hint 0.1 / 1 / 10 / 100 / 1000 (1000 diverged), attention 100 / 1000 / 10000 / 100000, DKD beta 1 / 2 / 8.
        // LeNet-5's best held-out beta, 8, collapsed in training on all 10,000 images for every seed (training loss
        // up, every hidden unit dead); 2 is the best for both students together and trains stably.
        return Plan(trainingSubset: subset, teacher: teacher, student: student, students: students,
                    hinton: DistillationLossConfiguration(temperature: 4, hardWeight: 0.5, softWeight: 0.5),
                    decoupled: DecoupledKDWeights(alpha: 1, beta: 8), hintWeight: 100, attentionWeight: 1000,
                    similarityWeight: 3000)
    }

    /// One student trained with one loss from one seed.
    public struct Result: Codable, Sendable {
        public var student: String
        public var loss: Loss
        public var seed: UInt64
        public var testErrors: Int
        public var seconds: Double
    }

    /// A student's size and speed (measured once per student network).
    public struct StudentFacts: Codable, Sendable {
        public var student: String
        public var parameters: Int
        /// Evaluation-mode forward pass of the 10,000 test images in batches of 1,000, per image.
        public var microsecondsPerImage: Double
        /// One image at a time, median of 200.
        public var singleImageMicroseconds: Double
    }

    public struct Outcome: Codable, Sendable {
        public var teacherErrors: Int
        public var teacherParameters: Int
        public var teacherMicrosecondsPerImage: Double
        public var results: [Result]
        public var students: [StudentFacts]
    }

    /// Trains (or reuses) the teacher, then every student with every loss from every seed.
    /// - Parameters:
    ///   - plan: the preset's plan by default; weights chosen on held-out images go in here.
    ///   - heldOut: when > 0, that many images of the training subset are held out and every error count is on them
    ///     instead of the test set (for choosing settings without looking at the test set).
    public static func run(preset: Preset, seeds: [UInt64], losses: [Loss] = Loss.allCases, context: ExperimentContext,
                           epochScale: Double = 1, plan given: Plan? = nil, heldOut: Int = 0) throws -> Outcome {
        var plan = given ?? plan(preset)
        if epochScale != 1 {
            HintonMNIST.scale(&plan.teacher, by: epochScale)
            HintonMNIST.scale(&plan.student, by: epochScale)
        }
        var subContext = context
        if let subset = plan.trainingSubset, subset < context.data.train.count {
            var generator = RandomGenerator(seed: 0xC22)
            let indices = generator.permutation(context.data.train.count)[..<subset].sorted()
            subContext.data.train = context.data.train.subset(indices: Array(indices))
        }
        if heldOut > 0 {
            guard heldOut < subContext.data.train.count / 2 else {
                throw TrainingError("--held-out \(heldOut) must be less than half of the \(subContext.data.train.count) training images")
            }
            let all = subContext.data.train
            subContext.data.train = all.subset(indices: Array(0..<(all.count - heldOut)))
            subContext.data.test = all.subset(indices: Array((all.count - heldOut)..<all.count))
        }
        let train = subContext.data.train
        var teacherConfiguration = plan.teacher
        teacherConfiguration.seed = 0
        let teacher = try subContext.trainOrLoad(key: "cnn-teacher-resnet8-\(preset.rawValue)\(heldOut > 0 ? "-heldout\(heldOut)" : "")", configuration: teacherConfiguration,
                                                 train: train) { _ in LabelObjective() }
        let modelTeacher = ModelTeacher(model: teacher.model)
        let cached = try CachedTeacher(base: modelTeacher, dataset: train)
        var results: [Result] = []
        var facts: [StudentFacts] = []
        for student in plan.students {
            var lastModel: Sequential? = nil
            for loss in losses {
                if loss == .attention && student.attention.isEmpty { continue }
                if loss == .fitnets && student.hints.isEmpty { continue }
                if loss == .similarity && student.similarity.isEmpty { continue }
                for seed in seeds {
                    var configuration = plan.student
                    configuration.model = student.model
                    configuration.seed = seed
                    if loss == .dkd || loss == .similarity, configuration.optimizer.gradientClip == nil {
                        configuration.optimizer.gradientClip = plan.dkdAndSimilarityGradientClip
                    }
                    let description = try configuration.modelDescription(inputShape: train.sampleShape, classCount: train.classCount)
                    let key = "cnn-\(student.name)-\(loss.rawValue)-\(preset.rawValue)\(heldOut > 0 ? "-heldout\(heldOut)" : "")-seed\(seed)"
                    let trained: TrainedModel
                    switch loss {
                    case .labels:
                        trained = try subContext.trainOrLoad(key: key, configuration: configuration, train: train) { _ in LabelObjective() }
                    case .hinton:
                        let identity = "distillation teacher=\(cached.identity) \(plan.hinton)"
                        trained = try subContext.trainOrLoad(key: key, configuration: configuration, train: train,
                                                             objectiveIdentity: identity) { indices in
                            try DistillationObjective(teacher: cached, loss: plan.hinton, exampleIndices: indices)
                        }
                    case .dkd, .fitnets, .attention, .similarity:
                        var terms: [FeatureTerm] = []
                        var decoupled: DecoupledKDWeights? = nil
                        var lossConfiguration = plan.hinton
                        lossConfiguration.hardWeight = 1
                        lossConfiguration.softWeight = 0
                        switch loss {
                        case .dkd: decoupled = DecoupledKDWeights(alpha: plan.decoupled.alpha, beta: plan.dkdBetaOverride ?? student.dkdBeta,
                                                                  warmupEpochs: plan.decoupled.warmupEpochs)
                        case .fitnets: terms = student.hints.map { FeatureTerm(kind: .hint, studentLayer: $0[0], teacherLayer: $0[1], weight: plan.hintWeight) }
                        case .similarity: terms = student.similarity.map { FeatureTerm(kind: .similarity, studentLayer: $0[0], teacherLayer: $0[1], weight: plan.similarityWeight) }
                        default: terms = student.attention.map { FeatureTerm(kind: .attention, studentLayer: $0[0], teacherLayer: $0[1], weight: plan.attentionWeight) }
                        }
                        let source: Teacher = terms.isEmpty ? cached : modelTeacher
                        let probe = try FeatureDistillationObjective(teacher: source, loss: lossConfiguration, decoupled: decoupled, terms: terms,
                                                                     studentDescription: description, seed: seed)
                        trained = try subContext.trainOrLoad(key: key, configuration: configuration, train: train,
                                                             objectiveIdentity: probe.identity) { indices in
                            try FeatureDistillationObjective(teacher: source, loss: lossConfiguration, decoupled: decoupled, terms: terms,
                                                             studentDescription: description, seed: seed, exampleIndices: indices)
                        }
                    }
                    results.append(Result(student: student.name, loss: loss, seed: seed, testErrors: trained.testErrors, seconds: trained.seconds))
                    lastModel = trained.model
                }
            }
            if let model = lastModel {
                facts.append(measure(model, name: student.name, test: subContext.data.test, threads: context.threads))
            }
        }
        let teacherFacts = measure(teacher.model, name: "resnet8", test: subContext.data.test, threads: context.threads)
        return Outcome(teacherErrors: teacher.testErrors, teacherParameters: teacherFacts.parameters,
                       teacherMicrosecondsPerImage: teacherFacts.microsecondsPerImage, results: results, students: facts)
    }

    /// Parameters and evaluation-mode speed of `model` on `test`.
    static func measure(_ model: Sequential, name: String, test: LabeledDataset, threads: Int) -> StudentFacts {
        ComputeThreads.set(threads)
        let n = Swift.min(test.count, 10_000)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = Date()
            var row = 0
            while row < n {
                let end = Swift.min(row + 1000, n)
                _ = model.infer(test.inputs(rows: row..<end))
                row = end
            }
            best = Swift.min(best, Date().timeIntervalSince(start))
        }
        var singles: [Double] = []
        for i in 0..<200 {
            let x = test.inputs(rows: (i % n)..<(i % n + 1))
            let start = Date()
            _ = model.infer(x)
            singles.append(Date().timeIntervalSince(start))
        }
        singles.sort()
        return StudentFacts(student: name, parameters: model.parameterCount, microsecondsPerImage: best / Double(n) * 1e6,
                            singleImageMicroseconds: singles[singles.count / 2] * 1e6)
    }

    /// The table: per student and loss, mean ± sd test errors over the seeds, with the student's parameters and
    /// inference time per image.
    public static func table(_ outcome: Outcome, preset: Preset, seeds: [UInt64], plan given: Plan? = nil, heldOut: Int = 0) -> String {
        let p = given ?? plan(preset)
        let count = (p.trainingSubset ?? 60_000) - heldOut
        let train = "\(count) training images"
        let split = heldOut > 0 ? "errors on \(heldOut) held-out training images" : "MNIST test errors (of 10,000)"
        var text = "\(split), preset \(preset.rawValue), \(train); T = \(formatNumber(p.hinton.temperature)), hint weight \(formatNumber(p.hintWeight)), attention weight \(formatNumber(p.attentionWeight)), similarity weight \(formatNumber(p.similarityWeight)), DKD alpha \(formatNumber(p.decoupled.alpha)) beta \(p.dkdBetaOverride.map(formatNumber) ?? p.students.map { "\(formatNumber($0.dkdBeta)) (\($0.name))" }.joined(separator: ", "))\(p.decoupled.warmupEpochs > 0 ? " warm-up \(p.decoupled.warmupEpochs) epochs" : "")\(p.student.optimizer.gradientClip.map { ", students' gradient norm clipped to \(formatNumber($0))" } ?? p.dkdAndSimilarityGradientClip.map { ", DKD and similarity-preserving students' gradient norm clipped to \(formatNumber($0))" } ?? ""). Teacher ResNet-8 (\(outcome.teacherParameters) parameters, seed 0) "
            + "\(outcome.teacherErrors) errors, \(String(format: "%.1f", outcome.teacherMicrosecondsPerImage)) µs per image; "
            + "students: mean ± sd over seeds \(seeds), last epoch, \(p.student.epochs) epochs each.\n"
        var rows: [[String]] = []
        for student in p.students {
            let facts = outcome.students.first { $0.student == student.name }
            for loss in Loss.allCases {
                let values = outcome.results.filter { $0.student == student.name && $0.loss == loss }.map { Double($0.testErrors) }
                guard !values.isEmpty else { continue }
                rows.append([student.name, loss.title, formatStatistic(values),
                             facts.map { String($0.parameters) } ?? "",
                             facts.map { String(format: "%.1f / %.0f", $0.microsecondsPerImage, $0.singleImageMicroseconds) } ?? ""])
            }
        }
        text += formatTable(["student", "loss", "test errors", "parameters", "µs per image (batch / single)"], rows)
        return text
    }
}
