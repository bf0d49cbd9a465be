import Checkpoints
import Foundation
import TensorCore
import NeuralNet
import Datasets
import Distributed

/// The outcome of a training job: the model (best validation epoch, or last), its history and test figures.
public struct TrainingResult {
    public var model: Sequential
    public var configuration: TrainingConfiguration
    public var report: TrainingReport
    public var testErrors: Int
    public var testCount: Int
    /// Test errors of the last epoch's weights (equal to `testErrors` without a validation split).
    public var lastEpochTestErrors: Int
    public var extraMetadata: [String: String] = [:]
    /// Dead units and weight norms of the returned model on (up to 10,000 of) its training examples.
    public var health: TrainingHealth
    /// Optimisation steps taken by this job: all of the run's, or after a resume only those since.
    public var stepsTaken = 0
    /// Where a resumed job started: the 1-based epoch and the batches of it already taken; nil for a fresh run.
    public var resumedAt: (epoch: Int, batch: Int)? = nil

    public var testAccuracy: Double { testCount == 0 ? 0 : 1 - Double(testErrors) / Double(testCount) }

    /// The checkpoint to save: weights plus architecture and training settings in the metadata.
    public func checkpoint(role: String) throws -> ModelCheckpoint {
        var metadata = extraMetadata
        metadata["role"] = role
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]  // byte-identical files for identical runs
        metadata["training"] = String(decoding: try encoder.encode(configuration), as: UTF8.self)
        metadata["test_errors"] = String(testErrors)
        metadata["selected_epoch"] = String(report.selectedEpoch)
        return try ModelCheckpoint(model: model, metadata: metadata)
    }

    /// The JSON report: `test_errors` (of `test_count`), `test_accuracy`, `seconds_per_epoch` (median),
    /// `peak_rss_bytes`, the epoch history and the configuration, `steps_taken` (by this process) and, after a resume,
    /// `resumed_at` (`epoch`, 1-based, and `batch`, the batches of it already taken); `extra` adds fields.
    public func jsonObject(extra: [String: Any] = [:]) throws -> [String: Any] {
        let history = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report.epochs))
        let config = try JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration))
        var object: [String: Any] = [
            "test_errors": testErrors, "test_count": testCount, "test_accuracy": testAccuracy,
            "seconds_per_epoch": report.medianSecondsPerEpoch, "peak_rss_bytes": ResourceUsage.peakResidentBytes,
            "selected_epoch": report.selectedEpoch, "last_epoch_test_errors": lastEpochTestErrors, "epochs": history, "configuration": config,
            "health": health.jsonObject(), "steps_taken": stepsTaken,
            "split": "MNIST test set (10,000 images); model selection on \(report.validationCount) held-out training images",
        ]
        if let resumedAt { object["resumed_at"] = ["epoch": resumedAt.epoch, "batch": resumedAt.batch] }
        for (k, v) in extra { object[k] = v }
        return object
    }

    /// Prints the JSON object on stdout, or a short human summary on stderr.
    public func printSummary(json: Bool, output: String?, extra: [String: Any] = [:]) throws {
        if json {
            let data = try JSONSerialization.data(withJSONObject: jsonObject(extra: extra), options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            var text = "test errors: \(testErrors)/\(testCount) (accuracy \(String(format: "%.2f", testAccuracy * 100))%), "
            text += String(format: "%.2f s/epoch (median), peak RSS %.0f MiB", report.medianSecondsPerEpoch,
                           Double(ResourceUsage.peakResidentBytes) / 1_048_576)
            if let output { text += ", saved to \(output)" }
            print(text)
            print("health: \(health.summary)")
        }
    }
}

/// Runs a configured training job end to end.
public enum TrainingJob {
    /// Splits off the validation set (seeded), trains, and counts test errors.
    public static func train(configuration: TrainingConfiguration, data: (train: LabeledDataset, test: LabeledDataset),
                             objective: TrainingObjective, label: String,
                             progress: ProgressReporter = ProgressReporter()) throws -> TrainingResult {
        try train(configuration: configuration, data: data, label: label, progress: progress) { _ in objective }
    }

    /// As above, with the objective built for the training subset: `makeObjective` receives, for each position of
    /// the training subset, its index in `data.train` (nil when no validation split was carved out).
    public static func train(configuration: TrainingConfiguration, data: (train: LabeledDataset, test: LabeledDataset),
                             label: String, progress: ProgressReporter = ProgressReporter(),
                             makeObjective: ([Int]?) throws -> TrainingObjective) throws -> TrainingResult {
        let outcome = try train(configuration: configuration, data: data, label: label, progress: progress,
                                state: StatePolicy(url: nil), makeObjective: makeObjective)
        guard case let .finished(result) = outcome else { throw TrainingError("\(label): the run stopped before its last epoch") }
        return result
    }

    /// How a run keeps and uses its training-state checkpoint.
    public struct StatePolicy {
        /// The state file (`<output>.state`); nil = no state is written, even when stopped.
        public var url: URL?
        /// Continue from `url` instead of starting fresh.
        public var resume: Bool
        /// Write the state every this many batches (and at the end of every epoch); nil = only when stopped.
        public var checkpointEvery: Int?
        /// Polled after every step; true stops the run after that step (the state is then written to `url`).
        public var shouldStop: () -> Bool
        /// Called with every finished epoch's record.
        public var onEpoch: (EpochRecord) -> Void = { _ in }
        /// The processes that train together (``Trainer/communicator``); default one process.
        public var communicator: Communicator = SingleProcess()
        public init(url: URL?, resume: Bool = false, checkpointEvery: Int? = nil, shouldStop: @escaping () -> Bool = { false }) {
            self.url = url
            self.resume = resume
            self.checkpointEvery = checkpointEvery
            self.shouldStop = shouldStop
        }
    }

    /// How a resumable run ended.
    public enum Outcome {
        /// Every epoch ran.
        case finished(TrainingResult)
        /// `shouldStop` stopped it after `batch` batches of 1-based `epoch`; the state is in the policy's `url`.
        case stopped(epoch: Int, batch: Int)
    }

    /// Like `train`, with a training-state checkpoint: resumes from `state.url` when `state.resume`, writes it
    /// every `checkpointEvery` batches and at each epoch's end (when set), and when stopped.
    public static func train(configuration: TrainingConfiguration, data: (train: LabeledDataset, test: LabeledDataset),
                             objective: TrainingObjective, label: String, progress: ProgressReporter = ProgressReporter(),
                             state: StatePolicy) throws -> Outcome {
        try train(configuration: configuration, data: data, label: label, progress: progress, state: state) { _ in objective }
    }

    /// The general form: split, build the objective for the training subset, train (resuming when asked), and
    /// evaluate the selected and the last epoch's weights on the test set.
    /// `initialModel` starts training from those weights (trained in place) instead of a new model from the
    /// configuration's seed.
    public static func train(configuration: TrainingConfiguration, data: (train: LabeledDataset, test: LabeledDataset),
                             label: String, progress: ProgressReporter, state: StatePolicy, initialModel: Sequential? = nil,
                             makeObjective: ([Int]?) throws -> TrainingObjective) throws -> Outcome {
        let (train, validation, trainIndices) = try split(data.train, configuration: configuration)
        let objective = try makeObjective(trainIndices)
        let trainer: Trainer
        var resumedAt: (epoch: Int, batch: Int)? = nil
        if state.resume {
            guard let url = state.url else { throw TrainingError("resuming needs a state file") }
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TrainingError("\(url.path) does not exist; nothing to resume")
            }
            trainer = try Trainer.resume(from: url, configuration: configuration, train: train, validation: validation,
                                         objective: objective, label: label, progress: progress)
            resumedAt = (trainer.epoch + 1, trainer.batchInEpoch)
            progress.line("\(label): resuming \(url.path) at epoch \(trainer.epoch + 1), batch \(trainer.batchInEpoch)")
        } else {
            trainer = try Trainer(configuration: configuration, train: train, validation: validation, objective: objective,
                                  model: initialModel, label: label, progress: progress)
        }
        if state.checkpointEvery != nil {
            trainer.stateURL = state.url
            trainer.checkpointEvery = state.checkpointEvery
        }
        trainer.shouldStop = state.shouldStop
        trainer.communicator = state.communicator
        trainer.epochObserver = state.onEpoch
        let report = try trainer.run()
        if trainer.stopped {
            if let url = state.url { try trainer.saveState(to: url) }
            return .stopped(epoch: trainer.epoch + 1, batch: trainer.batchInEpoch)
        }
        let errors = Trainer.errors(model: trainer.model, dataset: data.test)
        var lastErrors = errors
        if let last = trainer.lastEpochWeights, validation != nil {
            let state = trainer.model.namedState.map(\.variable)
            let selected = state.map(\.value)
            for (p, w) in zip(state, last) { p.value = w }
            lastErrors = Trainer.errors(model: trainer.model, dataset: data.test)
            for (p, w) in zip(state, selected) { p.value = w }
        }
        return .finished(TrainingResult(model: trainer.model, configuration: configuration, report: report, testErrors: errors,
                                        testCount: data.test.count, lastEpochTestErrors: lastErrors,
                                        health: TrainingHealth.measure(model: trainer.model, dataset: train),
                                        stepsTaken: trainer.stepsTaken, resumedAt: resumedAt))
    }

    /// The seeded train/validation split of `configuration.data.validationCount` examples: one permutation of the
    /// training set, its first `validationCount` entries held out; both parts keep the original order.
    /// Returns, for each training example kept, its index in `dataset` (nil without a split).
    public static func split(_ dataset: LabeledDataset, configuration: TrainingConfiguration) throws
        -> (train: LabeledDataset, validation: LabeledDataset?, trainIndices: [Int]?) {
        let v = configuration.data.validationCount
        guard v > 0 else { return (dataset, nil, nil) }
        guard v < dataset.count else {
            throw ConfigurationError(field: "data.validationCount", "must be smaller than the training set (\(dataset.count)), got \(v)")
        }
        var generator = RandomGenerator(seed: configuration.seed ^ 0x5EED_0F_5B11)
        let permutation = generator.permutation(dataset.count)
        let validationIndices = permutation[..<v].sorted()
        let trainIndices = permutation[v...].sorted()
        return (dataset.subset(indices: trainIndices), dataset.subset(indices: validationIndices), trainIndices)
    }

    /// Checks that a model fits a dataset (input features and classes), naming the model file.
    public static func checkCompatible(_ checkpoint: ModelCheckpoint, with dataset: LabeledDataset, source: String) throws {
        guard checkpoint.inputCount == dataset.featureCount else {
            throw TrainingError("\(source): the model takes \(checkpoint.inputCount) inputs, the data has \(dataset.featureCount) features")
        }
        guard checkpoint.classCount == dataset.classCount else {
            throw TrainingError("\(source): the model has \(checkpoint.classCount) classes, the data has \(dataset.classCount)")
        }
    }
}
