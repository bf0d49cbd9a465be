import Optimizers
import Distillation
import Checkpoints
import Foundation
import TensorCore
import Datasets

/// The paper's observation on temperature (section 3): students of 30 units per layer do best at T 2.5-4; students of
/// 300 or more units are insensitive to T above 8. Every student is distilled from the same teacher's stored logits.
public enum TemperatureSweep {
    public static let defaultWidths = [30, 300, 800]
    public static let defaultTemperatures: [Float] = [1, 2, 2.5, 3, 4, 8, 20]

    public struct Cell: Codable, Sendable {
        public var width: Int
        /// nil for the label-only baseline.
        public var temperature: Float?
        public var errors: Int
        public var lastEpochErrors: Int

        enum CodingKeys: String, CodingKey {
            case width, temperature, errors, lastEpochErrors = "last_epoch_errors"
        }
    }

    public static func run(preset: HintonMNIST.Preset, seed: UInt64, widths: [Int], temperatures: [Float],
                           hardWeight: Float, softWeight: Float, epochs: Int?, context: ExperimentContext,
                           epochScale: Double = 1) throws -> [Cell] {
        let plan = HintonMNIST.scaled(HintonMNIST.plan(preset), by: epochScale)
        let world = HintonMNIST.world(plan: plan, seed: seed, context: context)
        let tag = "\(preset.rawValue)-seed\(seed)"
        let teacher = try HintonMNIST.trainTeacher(plan: plan, tag: tag, seed: seed, context: world)
        let store = try world.store(for: ModelTeacher(model: teacher.model), key: "hinton-teacher-\(tag)")
        var cells: [Cell] = []
        let all = Array(0..<world.data.train.count)
        for width in widths {
            // The label-only baseline trains as the preset's student, the distilled ones as its distilled student.
            var baselineConfiguration = plan.student, configuration = plan.distilled
            baselineConfiguration.model = .mlp(hidden: [width, width])
            configuration.model = .mlp(hidden: [width, width])
            baselineConfiguration.seed = seed
            configuration.seed = seed
            if let epochs {
                baselineConfiguration.epochs = epochs
                HintonMNIST.scale(&configuration, by: Double(epochs) / Double(configuration.epochs))
            }
            let baseline = try world.trainOrLoad(key: "sweep-w\(width)-labels-\(tag)", configuration: baselineConfiguration,
                                                 train: world.data.train) { _ in LabelObjective() }
            cells.append(Cell(width: width, temperature: nil, errors: baseline.testErrors, lastEpochErrors: baseline.lastEpochTestErrors))
            for t in temperatures {
                let loss = DistillationLossConfiguration(temperature: t, hardWeight: hardWeight, softWeight: softWeight)
                let student = try world.distil(key: "sweep-w\(width)-T\(t)-\(tag)", configuration: configuration,
                                               positions: all, store: store, loss: loss)
                cells.append(Cell(width: width, temperature: t, errors: student.testErrors, lastEpochErrors: student.lastEpochTestErrors))
            }
        }
        return cells
    }

    /// Rows: widths; columns: labels only, then each T; the best T per width is marked with *.
    public static func table(_ cells: [Cell], temperatures: [Float]) -> String {
        let widths = Array(Set(cells.map(\.width))).sorted()
        var rows: [[String]] = []
        for w in widths {
            let mine = cells.filter { $0.width == w }
            let best = mine.filter { $0.temperature != nil }.map(\.errors).min()
            var row = ["2x\(w)"]
            row.append(mine.first { $0.temperature == nil }.map { "\($0.errors)" } ?? "-")
            for t in temperatures {
                if let c = mine.first(where: { $0.temperature == t }) { row.append("\(c.errors)\(c.errors == best ? "*" : "")") } else { row.append("-") }
            }
            rows.append(row)
        }
        return formatTable(["student", "labels"] + temperatures.map { "T=\($0)" }, rows)
    }

    /// Plain-language answers to the paper's two claims.
    public static func verdict(_ cells: [Cell]) -> [String] {
        var lines: [String] = []
        for w in Array(Set(cells.map(\.width))).sorted() {
            let mine = cells.filter { $0.width == w && $0.temperature != nil }
            guard let best = mine.min(by: { $0.errors < $1.errors }), let bt = best.temperature else { continue }
            let high = mine.filter { ($0.temperature ?? 0) >= 8 }.map(\.errors)
            let spread = (high.max() ?? 0) - (high.min() ?? 0)
            lines.append("2x\(w): best T = \(bt) (\(best.errors) errors); T >= 8 spread \(spread) errors" +
                         (w <= 30 ? "; paper: T 2.5-4 best for 30 units -> \((2.5...4).contains(bt) ? "agrees" : "differs")" : "; paper: flat above T = 8"))
        }
        return lines
    }
}

/// The paper's small-data experiment (section 4's speech model, table 5): with 3% of the training data, hard labels
/// overfit while soft targets from a teacher trained on everything generalise. Reported with and without early
/// stopping (best validation epoch vs last epoch).
public enum SmallData {
    /// The paper's speech-model test frame accuracies with 3% of the data: hard targets, soft targets.
    public static let paper = (hardAccuracy: 0.445, softAccuracy: 0.570)

    public struct Outcome: Codable, Sendable {
        public var fraction: Double
        public var trainingExamples: Int
        public var hardErrors, hardLastEpochErrors, softErrors, softLastEpochErrors: Int
        public var testCount: Int

        enum CodingKeys: String, CodingKey {
            case fraction, testCount = "test_count", trainingExamples = "training_examples"
            case hardErrors = "hard_errors", hardLastEpochErrors = "hard_last_epoch_errors"
            case softErrors = "soft_errors", softLastEpochErrors = "soft_last_epoch_errors"
        }
    }

    public static func run(preset: HintonMNIST.Preset, seed: UInt64, fraction: Double, temperature: Float, epochs: Int,
                           context: ExperimentContext, epochScale: Double = 1) throws -> Outcome {
        let plan = HintonMNIST.scaled(HintonMNIST.plan(preset), by: epochScale)
        let world = HintonMNIST.world(plan: plan, seed: seed, context: context)
        let tag = "\(preset.rawValue)-seed\(seed)"
        let teacher = try HintonMNIST.trainTeacher(plan: plan, tag: tag, seed: seed, context: world)
        let store = try world.store(for: ModelTeacher(model: teacher.model), key: "hinton-teacher-\(tag)")
        let n = world.data.train.count
        let count = Swift.min(n, Swift.max(20, Int((Double(n) * fraction).rounded())))  // at least 20 (all, when fewer)
        var generator = RandomGenerator(seed: 0x3_0000 ^ seed)
        let positions = generator.permutation(n)[..<count].sorted()
        // Hard labels train as the preset's student, soft targets as its distilled student, for `epochs` epochs each.
        var configuration = plan.student, softConfiguration = plan.distilled
        configuration.seed = seed
        softConfiguration.seed = seed
        let scaledEpochs = Swift.max(1, Int((Double(epochs) * epochScale).rounded()))
        configuration.epochs = scaledEpochs
        HintonMNIST.scale(&softConfiguration, by: Double(scaledEpochs) / Double(softConfiguration.epochs))
        configuration.data.validationCount = Swift.max(1, count / 10)
        softConfiguration.data.validationCount = configuration.data.validationCount
        let small = world.data.train.subset(indices: positions)
        let hard = try world.trainOrLoad(key: "small-hard-\(fraction)-\(tag)", configuration: configuration, train: small) { _ in LabelObjective() }
        let loss = DistillationLossConfiguration(temperature: temperature, hardWeight: 0, softWeight: 0.5)  // soft targets only, at the main experiment's soft weight (see OmittedClass.defaultLoss)
        let soft = try world.distil(key: "small-soft-\(fraction)-T\(temperature)-\(tag)", configuration: softConfiguration,
                                    positions: positions, store: store, loss: loss)
        return Outcome(fraction: fraction, trainingExamples: count, hardErrors: hard.testErrors,
                       hardLastEpochErrors: hard.lastEpochTestErrors, softErrors: soft.testErrors,
                       softLastEpochErrors: soft.lastEpochTestErrors, testCount: world.data.test.count)
    }

    public static func table(_ outcomes: [Outcome]) -> String {
        func acc(_ e: [Int], _ n: Int) -> String { formatStatistic(e.map { 100 * (1 - Double($0) / Double(n)) }, decimals: 2) + "%" }
        guard let first = outcomes.first else { return "" }
        let n = first.testCount
        let rows = [
            ["hard labels, early stopping", String(format: "%.1f%%", paper.hardAccuracy * 100), acc(outcomes.map(\.hardErrors), n)],
            ["hard labels, last epoch", "", acc(outcomes.map(\.hardLastEpochErrors), n)],
            ["soft targets, early stopping", String(format: "%.1f%%", paper.softAccuracy * 100), acc(outcomes.map(\.softErrors), n)],
            ["soft targets, last epoch", "", acc(outcomes.map(\.softLastEpochErrors), n)],
        ]
        return "\(first.trainingExamples) training examples (\(first.fraction * 100)%), test accuracy on \(n) MNIST test images (paper: speech frame accuracy)\n"
            + formatTable(["targets", "paper", "ours"], rows)
    }
}
