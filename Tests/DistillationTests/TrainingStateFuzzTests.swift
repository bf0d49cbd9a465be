import Datasets
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest
import Distillation

/// Seeded mutation fuzzing of the training-state reader (`TrainingState.read(url:)` and `Trainer.resume(from:...)`):
/// every mutated state file must resume (and the resumed run must then finish) or throw a `TrainingError`; never trap.
/// Longer: `DISTILL_FUZZ_ITERATIONS=50000 DISTILL_FUZZ_SEED=3 swift test --filter TrainingStateFuzzTests`.
final class TrainingStateFuzzTests: XCTestCase {
    struct Run {
        var configuration: TrainingConfiguration
        var train: LabeledDataset
        var validation: LabeledDataset?
    }

    static func runs() throws -> [Run] {
        let data = try ResumeData.dataset(count: 24, features: 5, classes: 3)
        var sgd = ResumeData.configuration()
        sgd.model = .mlp(hidden: [4])
        sgd.epochs = 2
        sgd.data.batchSize = 5
        var adam = ResumeData.configuration(optimizer: .adam)
        adam.model = .mlp(hidden: [3])
        adam.epochs = 2
        adam.data.batchSize = 4
        adam.data.validationCount = 6
        var g = RandomGenerator(seed: 1)
        let split = try data.validationSplit(count: 6, generator: &g)
        return [Run(configuration: sgd, train: data, validation: nil),
                Run(configuration: adam, train: split.train, validation: split.validation)]
    }

    /// State files of each run after a few steps (the Adam run past its first epoch, so it has best weights).
    static func seeds(_ runs: [Run], in dir: URL) throws -> [(run: Int, bytes: [UInt8])] {
        var seeds: [(Int, [UInt8])] = []
        for (i, run) in runs.enumerated() {
            for stop in [3, 8] {
                let t = try Trainer(configuration: run.configuration, train: run.train, validation: run.validation,
                                    objective: LabelObjective(), progress: ProgressReporter(enabled: false))
                var steps = 0
                t.shouldStop = { steps += 1; return steps >= stop }
                try t.run()
                let url = dir.appendingPathComponent("seed\(i)-\(stop).state")
                try t.saveState(to: url)
                seeds.append((i, Array(try Data(contentsOf: url))))
            }
        }
        return seeds
    }

    static let tokens = ["epoch", "batch", "batches", "loss_sums", "generators", "batch_order", "dropout", "jitter",
                         "best_errors", "train_count", "class_count", "feature_count", "validation_count", "optimizer.",
                         "momentum_buffer", "exp_avg", "exp_avg_sq", "step.", "best.", "0.weight", "0.bias", "2.weight",
                         "3.weight", "F32", "F16", "[4,5]", "[3,5]", "[]", "\"2\"", "\"0\"", "\"1\"", "report", "epochs",
                         "selectedEpoch", "trainLoss", "validationErrors"]

    static func check(_ bytes: [UInt8], run: Run, at url: URL) -> Bool {
        do {
            try Data(bytes).write(to: url)
            _ = try TrainingState.read(url: url)
            let trainer = try Trainer.resume(from: url, configuration: run.configuration, train: run.train,
                                             validation: run.validation, objective: LabelObjective(),
                                             progress: ProgressReporter(enabled: false))
            var steps = 0
            trainer.shouldStop = { steps += 1; return steps >= 3 }
            // A few steps of the resumed run: a broken state must not trap here either. Mutated (finite but huge)
            // weights may legitimately make the run diverge, which is a TrainingError about the run, not the file.
            do {
                _ = try trainer.run()
                try trainer.saveState(to: url.appendingPathExtension("next"))  // and the run can be checkpointed again
            } catch let error as TrainingError {
                XCTAssertTrue(error.description.contains("NaN or infinite") || error.description.contains("the loss became"),
                              error.description)
            }
            return true
        } catch let error as TrainingError {
            XCTAssertTrue(error.description.contains(url.lastPathComponent), error.description)
            return false
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return false
        }
    }

    func testMutationFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("state-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let runs = try Self.runs()
        let seeds = try Self.seeds(runs, in: dir)
        let url = dir.appendingPathComponent("fuzz.state")
        let iterations = Fuzz.iterations(default: 1500)
        // Each seed fuzzed against its own run's arguments.
        var loaded = 0, rejected = 0
        let seed = Fuzz.seed(default: 20_260_103)
        for (k, s) in seeds.enumerated() {
            let tally = Fuzz.run("TrainingState (seed file \(k))", seeds: [s.bytes], iterations: iterations / seeds.count,
                                 seed: seed &+ UInt64(k), tokens: Self.tokens, truncations: k == 0) {
                Self.check($0, run: runs[s.run], at: url)
            }
            loaded += tally.loaded
            rejected += tally.rejected
        }
        print("fuzz TrainingState total: \(loaded) loaded, \(rejected) rejected")
        XCTAssertGreaterThan(rejected, iterations / 3)
        XCTAssertGreaterThan(loaded, seeds.count)
    }
}
