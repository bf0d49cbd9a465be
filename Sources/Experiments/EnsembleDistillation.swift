import Optimizers
import Distillation
import Checkpoints
import Foundation
import TensorCore
import NeuralNet
import Datasets

/// The paper's ensemble experiment (section 4, Table 1) on MNIST: N models of one architecture trained on the labels
/// from different seeds, their ensemble (the mean of their probabilities), and one model of the same size distilled
/// from the ensemble. The paper's speech figures: 58.9 % frame accuracy for the baseline, 61.1 % for the ensemble of
/// 10, 60.8 % for the distilled model: 86 % of the ensemble's gain kept in one model.
public enum EnsembleDistillation {
    /// The paper's frame accuracies (%) and the fraction of the ensemble's gain the distilled model kept.
    public static let paper = (baseline: 58.9, ensemble: 61.1, distilled: 60.8, gainKept: (60.8 - 58.9) / (61.1 - 58.9))

    public enum Preset: String, CaseIterable, Codable, Sendable {
        /// A quarter of a minute per seed: 10,000 training images, 10 members of 784-800-800-10.
        case quick
        /// All 60,000 training images.
        case full
    }

    public struct Plan: Codable, Sendable {
        /// A seeded subset of the training set (nil = all of it).
        public var trainingSubset: Int?
        /// Every member's training (its seed is set per member), also the distilled model's.
        public var member: TrainingConfiguration
        public var distilled: TrainingConfiguration
        public var loss: DistillationLossConfiguration
    }

    public static let defaultMembers = 10

    public static func plan(_ preset: Preset) -> Plan {
        var member = HintonMNIST.configuration(.mlp(hidden: [800, 800]), epochs: 30, learningRate: 0.1)
        var subset: Int? = nil
        switch preset {
        case .quick:
            subset = 10_000
            member.epochs = 10
        case .full:
            member.epochs = 30
        }
        var distilled = member
        distilled.epochs = member.epochs * 2
        distilled.optimizer.schedule = HintonMNIST.warmupThenCosine(2, total: distilled.epochs)
        return Plan(trainingSubset: subset, member: member, distilled: distilled,
                    loss: DistillationLossConfiguration(temperature: 4, hardWeight: 0.5, softWeight: 0.5))
    }

    /// One seed's figures (test errors of 10,000).
    public struct SeedResult: Codable, Sendable {
        public var seed: UInt64
        /// The members' seeds and test errors.
        public var memberSeeds: [UInt64]
        public var memberErrors: [Int]
        public var ensembleErrors: Int
        public var distilledErrors: Int
        public var distilledHealth: TrainingHealth
        public var seconds: Double

        /// Mean test errors of one member.
        public var singleErrors: Double { Double(memberErrors.reduce(0, +)) / Double(Swift.max(memberErrors.count, 1)) }
        /// (single - distilled) / (single - ensemble): the share of the ensemble's gain the distilled model kept.
        public var gainKept: Double { EnsembleDistillation.gainKept(single: singleErrors, ensemble: Double(ensembleErrors), distilled: Double(distilledErrors)) }

        enum CodingKeys: String, CodingKey {
            case seed, seconds
            case memberSeeds = "member_seeds", memberErrors = "member_errors", ensembleErrors = "ensemble_errors"
            case distilledErrors = "distilled_errors", distilledHealth = "distilled_health"
            case singleErrors = "single_errors", gainKept = "gain_kept"
        }

        public init(seed: UInt64, memberSeeds: [UInt64], memberErrors: [Int], ensembleErrors: Int, distilledErrors: Int,
                    distilledHealth: TrainingHealth, seconds: Double) {
            self.seed = seed
            self.memberSeeds = memberSeeds
            self.memberErrors = memberErrors
            self.ensembleErrors = ensembleErrors
            self.distilledErrors = distilledErrors
            self.distilledHealth = distilledHealth
            self.seconds = seconds
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            seed = try c.decode(UInt64.self, forKey: .seed)
            seconds = try c.decode(Double.self, forKey: .seconds)
            memberSeeds = try c.decode([UInt64].self, forKey: .memberSeeds)
            memberErrors = try c.decode([Int].self, forKey: .memberErrors)
            ensembleErrors = try c.decode(Int.self, forKey: .ensembleErrors)
            distilledErrors = try c.decode(Int.self, forKey: .distilledErrors)
            distilledHealth = try c.decode(TrainingHealth.self, forKey: .distilledHealth)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(seed, forKey: .seed)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(memberSeeds, forKey: .memberSeeds)
            try c.encode(memberErrors, forKey: .memberErrors)
            try c.encode(ensembleErrors, forKey: .ensembleErrors)
            try c.encode(distilledErrors, forKey: .distilledErrors)
            try c.encode(distilledHealth, forKey: .distilledHealth)
            try c.encode(singleErrors, forKey: .singleErrors)
            if gainKept.isFinite { try c.encode(gainKept, forKey: .gainKept) }
        }
    }

    /// (single - distilled) / (single - ensemble); NaN when the ensemble is no better than one model.
    public static func gainKept(single: Double, ensemble: Double, distilled: Double) -> Double {
        single > ensemble ? (single - distilled) / (single - ensemble) : .nan
    }

    /// The seed of member `k` (0-based) of the experiment seeded `seed`: distinct for every pair.
    public static func memberSeed(experimentSeed seed: UInt64, member k: Int) -> UInt64 {
        seed &* 1000 &+ UInt64(k) &+ 1
    }

    /// Trains (or reuses) the members of every seed, measures their ensemble and distils one model from it.
    public static func run(preset: Preset, members: Int, seeds: [UInt64], context: ExperimentContext,
                           epochScale: Double = 1) throws -> [SeedResult] {
        guard members >= 2 else { throw TrainingError("an ensemble needs at least 2 members, got \(members)") }
        let plan = scaled(plan(preset), by: epochScale)
        var results: [SeedResult] = []
        for seed in seeds {
            let start = Date()
            var subContext = context
            if let subset = plan.trainingSubset, subset < context.data.train.count {
                var generator = RandomGenerator(seed: 0xE45E ^ seed)
                let indices = generator.permutation(context.data.train.count)[..<subset].sorted()
                subContext.data.train = context.data.train.subset(indices: Array(indices))
            }
            let train = subContext.data.train
            let tag = "\(preset.rawValue)-seed\(seed)"
            var trained: [TrainedModel] = []
            var memberSeeds: [UInt64] = []
            for k in 0..<members {
                var configuration = plan.member
                configuration.seed = memberSeed(experimentSeed: seed, member: k)
                memberSeeds.append(configuration.seed)
                trained.append(try subContext.trainOrLoad(key: "ensemble-member\(k)-\(tag)", configuration: configuration, train: train) { _ in
                    LabelObjective()
                })
            }
            let cached = try trained.map { model -> Teacher in
                try CachedTeacher(base: ModelTeacher(model: model.model), dataset: train)
            }
            let ensemble = try EnsembleTeacher(members: cached, combination: .meanProbabilities)
            let ensembleErrors = try errors(of: ensemble, on: subContext.data.test)
            var distilledConfiguration = plan.distilled
            distilledConfiguration.seed = seed
            let objectiveIdentity = "distillation teacher=\(ensemble.identity) \(plan.loss)"
            let distilled = try subContext.trainOrLoad(key: "ensemble-distilled-\(tag)", configuration: distilledConfiguration,
                                                       train: train, objectiveIdentity: objectiveIdentity) { indices in
                try DistillationObjective(teacher: ensemble, loss: plan.loss, exampleIndices: indices)
            }
            results.append(SeedResult(seed: seed, memberSeeds: memberSeeds, memberErrors: trained.map(\.testErrors),
                                      ensembleErrors: ensembleErrors, distilledErrors: distilled.testErrors,
                                      distilledHealth: distilled.health, seconds: Date().timeIntervalSince(start)))
        }
        return results
    }

    /// Test errors of a teacher's T = 1 predictions (for an ensemble: the argmax of the mean probabilities).
    static func errors(of teacher: Teacher, on dataset: LabeledDataset) throws -> Int {
        var wrong = 0
        var start = 0
        while start < dataset.count {
            let end = Swift.min(start + 1000, dataset.count)
            let logits = try teacher.logits(batch: dataset.inputs(rows: start..<end), indices: Array(start..<end))
            for (i, p) in logits.argmax(axis: 1).enumerated() where p != dataset.labels[start + i] { wrong += 1 }
            start = end
        }
        return wrong
    }

    static func scaled(_ plan: Plan, by factor: Double) -> Plan {
        guard factor != 1 else { return plan }
        var plan = plan
        HintonMNIST.scale(&plan.member, by: factor)
        HintonMNIST.scale(&plan.distilled, by: factor)
        return plan
    }

    /// The table: mean single model, the ensemble, the distilled model and the share of the gain kept, beside the
    /// paper's speech figures.
    public static func table(_ results: [SeedResult], preset: Preset, members: Int) -> String {
        let p = plan(preset)
        let single = results.map(\.singleErrors)
        let ensemble = results.map { Double($0.ensembleErrors) }
        let distilled = results.map { Double($0.distilledErrors) }
        let kept = results.map(\.gainKept)
        let train = p.trainingSubset.map { "\($0) training images" } ?? "60,000 training images"
        let header = "MNIST test errors (of 10,000), preset \(preset.rawValue): \(members) models 784-800-800-10 on \(train), last epoch; "
            + "mean ± sd over \(results.count) seed(s) \(results.map(\.seed)). The paper's figures are speech frame accuracies (Table 1)."
        let rows = [
            ["one model (mean of the \(members))", String(format: "%.1f %%", paper.baseline), formatStatistic(single)],
            ["ensemble of \(members) (mean of probabilities)", String(format: "%.1f %%", paper.ensemble), formatStatistic(ensemble)],
            ["one model distilled from the ensemble (T=\(formatNumber(p.loss.temperature)))", String(format: "%.1f %%", paper.distilled), formatStatistic(distilled)],
            ["share of the ensemble's gain kept", String(format: "%.0f %%", paper.gainKept * 100), formatStatistic(kept.map { $0 * 100 }, decimals: 0) + " %"],
        ]
        return header + "\n" + formatTable(["model", "paper", "ours"], rows)
    }
}

/// A number without trailing zeros (20, 2.5).
func formatNumber(_ value: Float) -> String {
    value == value.rounded() ? String(Int(value)) : String(value)
}
