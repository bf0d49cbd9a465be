import Foundation
import TensorCore
import NeuralNet
import Optimizers
import Datasets
import Distributed

/// Trains a `Sequential` with minibatch gradient descent: shuffled batches, optional jitter, dropout, the configured
/// optimizer and schedule, gradient clipping and max-norm, with a validation split for model selection.
///
/// Randomness: the configuration's seed feeds one generator that is split, in this order, into the streams for
/// weight initialisation, batch order, dropout and jitter, so the same seed and thread count reproduce a run exactly.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: Sequential
    public let train: LabeledDataset
    public let validation: LabeledDataset?
    public let objective: TrainingObjective
    public let optimizer: Optimizer
    /// The step repeated for every batch.
    let trainingStep: TrainingStep
    public var progress: ProgressReporter
    public var label: String
    /// Polled between steps; when it returns true the run stops after the current step (Ctrl-C handling).
    public var shouldStop: () -> Bool = { false }
    /// Called with every finished epoch's record (run directories log them as they happen).
    public var epochObserver: (EpochRecord) -> Void = { _ in }

    // Run state (everything a resume needs).
    public internal(set) var iterator: BatchIterator
    public internal(set) var dropoutGenerator: RandomGenerator
    public internal(set) var jitterGenerator: RandomGenerator
    public internal(set) var epoch = 0
    public internal(set) var report = TrainingReport()
    var bestWeights: [Tensor]?
    /// The weights after the last epoch (before the best validation epoch's weights are restored).
    public internal(set) var lastEpochWeights: [Tensor]?
    var bestErrors = Int.max
    var epochLossSum: Double = 0
    var epochPartSums: [String: Double] = [:]
    var epochBatches = 0
    /// Where `run()` writes a training-state checkpoint every `checkpointEvery` batches (counted within the epoch)
    /// and at the end of every epoch; nil = never (the caller may still call `saveState(to:)`).
    public var stateURL: URL?
    /// Batches between state checkpoints (needs `stateURL`); nil = only at the end of each epoch.
    public var checkpointEvery: Int?
    /// True when the last `run()` returned early because `shouldStop` said so.
    public internal(set) var stopped = false
    /// The processes training this model together (data parallel). With more than one, every process takes the
    /// same batches (same order, same jitter) and trains on its contiguous share of each batch's rows
    /// (``TrainingStep/shared(batch:inputs:prepared:slice:communicator:stopRequested:context:)``); a stop is agreed
    /// by all (any process's `shouldStop` stops every one after the same step); only rank 0 writes state files.
    /// Default: one process, the single-process step.
    public var communicator: Communicator = SingleProcess()
    /// The last data-parallel step's agreed stop.
    var agreedStop = false
    /// Optimisation steps this trainer object has taken, over all its `run()` calls. Not part of the saved state: a
    /// trainer made by `resume(from:)` starts at 0, so after a resume it counts only the steps taken since (the
    /// resume tests check it, so a resume that silently starts over cannot pass).
    public internal(set) var stepsTaken = 0
    /// Batches finished in the epoch in progress (the batch iterator's cursor).
    public var batchInEpoch: Int { iterator.cursor }
    /// True when every configured epoch has finished.
    public var isComplete: Bool { epoch >= configuration.epochs }
    var cachedTrainFingerprint: String?

    /// Streams derived from `seed`, in order: initialisation, batch order, dropout, jitter.
    public struct Streams {
        public var initialisation, batchOrder, dropout, jitter: RandomGenerator
        public init(seed: UInt64) {
            var root = RandomGenerator(seed: seed)
            initialisation = root.split()
            batchOrder = root.split()
            dropout = root.split()
            jitter = root.split()
        }
    }

    /// A trainer for a new model initialised from the configuration's seed (or for `model` when given).
    public init(configuration: TrainingConfiguration, train: LabeledDataset, validation: LabeledDataset?,
                objective: TrainingObjective, model givenModel: Sequential? = nil, label: String = "train",
                progress: ProgressReporter = ProgressReporter()) throws {
        try configuration.validate()
        guard train.count > 0 else { throw TrainingError("the training set is empty") }
        var streams = Streams(seed: configuration.seed)
        let model: Sequential
        if let given = givenModel {
            model = given
        } else {
            do {
                model = try configuration.modelDescription(inputShape: train.sampleShape, classCount: train.classCount)
                    .build(generator: &streams.initialisation)
            } catch let error as ModelDescriptionError {
                throw TrainingError("the model cannot be built: \(error.description)")
            }
        }
        let inputCount = model.inputShape?.reduce(1, *)
        guard inputCount == train.featureCount else {
            throw TrainingError("the model expects \(inputCount.map(String.init) ?? "an unknown number of") input features, the data has \(train.featureCount)")
        }
        let outputCount = model.outputShape?.reduce(1, *)
        guard outputCount == train.classCount else {
            throw TrainingError("the model has \(outputCount.map(String.init) ?? "an unknown number of") outputs, the data has \(train.classCount) classes")
        }
        // Batch norm over feature vectors normalises each feature over the batch: a batch of one example has no
        // statistics (PyTorch refuses it too). Refuse before training rather than in the last batch of an epoch.
        let smallestBatch = train.count % configuration.data.batchSize == 0 ? configuration.data.batchSize
            : Swift.min(configuration.data.batchSize, train.count % configuration.data.batchSize)
        if smallestBatch == 1, Trainer.containsVectorBatchNorm(model) {
            throw ConfigurationError(field: "data.batchSize", "gives a batch of one example (\(train.count) training examples, batches of \(configuration.data.batchSize)), which batch norm over feature vectors cannot normalise; choose another batch size")
        }
        if configuration.data.jitter > 0 && train.imageShape == nil {
            throw ConfigurationError(field: "data.jitter", "needs image data (height and width); this dataset has plain feature vectors")
        }
        self.configuration = configuration
        self.model = model
        self.train = train
        self.validation = validation
        self.objective = objective
        self.optimizer = configuration.optimizer.makeOptimizer()
        self.trainingStep = TrainingStep(model: model, objective: objective, optimizer: optimizer,
                                         maxNorm: configuration.optimizer.maxNorm, gradientClip: configuration.optimizer.gradientClip)
        trainingStep.gradientBucketCapacity = configuration.runtime.gradientBucketCapacity
        self.progress = progress
        self.label = label
        self.iterator = BatchIterator(dataset: train, batchSize: configuration.data.batchSize, shuffle: true, dropLast: false,
                                      generator: streams.batchOrder)
        self.dropoutGenerator = streams.dropout
        self.jitterGenerator = streams.jitter
    }

    /// Runs the remaining epochs; returns the report. With a validation split the best epoch's weights are kept in the
    /// model at the end (the last epoch's figures stay in the report).
    @discardableResult
    public func run() throws -> TrainingReport {
        stopped = false
        ComputeThreads.set(configuration.runtime.threads)
        report.validationCount = validation?.count ?? 0
        let batchesPerEpoch = iterator.batchesPerEpoch
        // With two threads and an online teacher (one that runs a model per batch), the teacher's forward pass for
        // batch i + 1 runs on the second core (`BackgroundWork`, one thread) while the student trains on batch i:
        // the parts of the student's products (`GEMM.sgemm`) run one after another on the student's core while the
        // teacher runs, and on both cores once it is done.
        let overlap = configuration.overlapsTeacher(computingPerBatch: objective.preparesInBackground)
        let parts = communicator.size
        if parts > 1 { try checkBatchesSplit(into: parts) }
        /// This process's rows of a batch (all of them for one process).
        func share(_ next: (batch: Batch, inputs: Tensor)) -> (batch: Batch, inputs: Tensor, slice: BatchSlice?) {
            guard parts > 1 else { return (next.batch, next.inputs, nil) }
            let slice = BatchSlice(part: communicator.rank, of: parts, total: next.batch.count)
            let b = next.batch
            let rows = Batch(indices: Array(b.indices[slice.range]), inputs: b.inputs.rows(slice.range),
                             labels: Array(b.labels[slice.range]))
            return (rows, next.inputs.rows(slice.range), slice)
        }
        let stopAgreed: () -> Bool = { [unowned self] in parts > 1 ? self.agreedStop : self.shouldStop() }
        let background = BackgroundWork()
        // Several processes: a process that hangs would leave the others waiting in the allreduce for ever.
        let watchdog = parts > 1 ? Watchdog(rank: communicator.rank, size: parts, communicator: communicator) : nil
        defer {
            watchdog?.stop()
            background.cancel()
            ComputeThreads.set(configuration.runtime.threads)
        }
        while epoch < configuration.epochs {
            let epochStart = Date()
            objective.beginEpoch(epoch)
            let rate = configuration.schedule.learningRate(epoch: epoch, base: configuration.optimizer.learningRate)
            optimizer.learningRate = rate
            if let sgd = optimizer as? SGD { sgd.momentum = configuration.momentum(epoch: epoch) }
            var context = ForwardContext(training: true, generator: dropoutGenerator)
            var pending: (batch: Batch, inputs: Tensor, slice: BatchSlice?)? = nil
            var pendingPrepared: Tensor? = nil
            while true {
                let batch: Batch, inputs: Tensor, slice: BatchSlice?, prepared: Tensor?
                if let next = pending {
                    (batch, inputs, slice, prepared) = (next.batch, next.inputs, next.slice, pendingPrepared)
                    pending = nil
                } else {
                    guard let next = nextBatch().map(share) else { break }
                    (batch, inputs, slice) = next
                    // As on the other thread (one thread, whole products), so every batch's targets round alike.
                    prepared = overlap ? try ComputeThreads.alone { try objective.prepare(batch: batch, inputs: inputs) } : nil
                }
                // The run's state after this batch is taken: what progress, checkpoints and a stop see. With the
                // overlap the iterator and jitter stream run one batch ahead meanwhile.
                let stateIterator = iterator, stateJitter = jitterGenerator
                if overlap, let next = nextBatch().map(share) {
                    pending = next
                    let objective = self.objective
                    background.start { try objective.prepare(batch: next.batch, inputs: next.inputs) }
                }
                let aheadIterator = iterator, aheadJitter = jitterGenerator
                let outcome: (loss: Float, parts: [String: Double])
                do {
                    outcome = try step(batch: batch, inputs: inputs, prepared: prepared, slice: slice, context: &context,
                                       position: stateIterator.cursor)
                } catch {
                    background.cancel()
                    iterator = stateIterator
                    jitterGenerator = stateJitter
                    throw error
                }
                stepsTaken += 1
                watchdog?.beat()
                epochLossSum += Double(outcome.loss)
                for (k, v) in outcome.parts { epochPartSums[k, default: 0] += v }
                epochBatches += 1
                iterator = stateIterator
                jitterGenerator = stateJitter
                dropoutGenerator = context.generator
                pendingPrepared = try background.wait()   // the next batch's teacher pass; its error ends the run here
                let elapsed = Date().timeIntervalSince(epochStart)
                let done = iterator.cursor
                let rateNow = Double(done * configuration.data.batchSize) / Swift.max(elapsed, 1e-9)
                let remaining = Double(batchesPerEpoch - done + (configuration.epochs - epoch - 1) * batchesPerEpoch) * Double(configuration.data.batchSize) / Swift.max(rateNow, 1e-9)
                progress.batch(label: label, epoch: epoch + 1, epochs: configuration.epochs, batch: done, batches: batchesPerEpoch,
                               loss: ProgressReporter.describeLoss(total: epochLossSum / Double(epochBatches),
                                                                   parts: epochPartSums.mapValues { $0 / Double(epochBatches) }),
                               examplesPerSecond: rateNow, secondsLeft: remaining)
                if let stateURL, let every = checkpointEvery, every > 0, iterator.cursor % every == 0 {
                    try saveState(to: stateURL)
                }
                if stopAgreed() {
                    stopped = true
                    return report
                }
                iterator = aheadIterator
                jitterGenerator = aheadJitter
            }
            dropoutGenerator = context.generator
            try finishEpoch(seconds: Date().timeIntervalSince(epochStart), learningRate: rate)
            watchdog?.beat()
            if let stateURL { try saveState(to: stateURL) }
            if stopAgreed() && epoch < configuration.epochs {
                stopped = true
                return report
            }
        }
        stopped = false
        let state = model.namedState.map(\.variable)
        lastEpochWeights = state.map(\.value)
        if let bestWeights {
            for (p, w) in zip(state, bestWeights) { p.value = w }
        }
        return report
    }

    /// One optimisation step on `batch` (``TrainingStep``); a non-finite loss becomes an error naming the epoch and
    /// the batch (`position`, batches taken).
    /// With a `slice` (several processes) the batch is this process's rows and the step is the data-parallel one.
    func step(batch: Batch, inputs: Tensor, prepared: Tensor?, slice: BatchSlice? = nil, context: inout ForwardContext,
              position: Int) throws -> (loss: Float, parts: [String: Double]) {
        do {
            if let slice {
                let outcome = try trainingStep.shared(batch: batch, inputs: inputs, prepared: prepared, slice: slice,
                                                      communicator: communicator, stopRequested: shouldStop(), context: &context)
                agreedStop = outcome.stop
                return (outcome.loss, outcome.parts)
            }
            return try trainingStep(batch: batch, inputs: inputs, prepared: prepared, context: &context)
        } catch let error as TrainingStep.NonFiniteLoss {
            throw TrainingError("the loss became \(error.value) at epoch \(epoch + 1), batch \(position); lower the learning rate or clip the gradient norm")
        }
    }

    /// The next batch of the epoch and its (jittered) inputs; nil at the end of the epoch. Advances the iterator and
    /// the jitter stream.
    func nextBatch() -> (batch: Batch, inputs: Tensor)? {
        guard let batch = iterator.next() else { return nil }
        var inputs = batch.inputs
        if configuration.data.jitter > 0, let shape = train.imageShape {
            inputs = Jitter.shift(images: inputs, channels: shape.channels, height: shape.height, width: shape.width,
                                  maxShift: configuration.data.jitter, generator: &jitterGenerator)
        }
        return (batch, inputs)
    }

    func finishEpoch(seconds: Double, learningRate: Float) throws {
        for p in model.parameters where !p.value.isFinite {
            throw TrainingError("the weights became NaN or infinite at epoch \(epoch + 1); lower the learning rate or clip the gradient norm")
        }
        var record = EpochRecord(epoch: epoch + 1, seconds: seconds, learningRate: learningRate,
                                 trainLoss: epochLossSum / Double(Swift.max(epochBatches, 1)),
                                 lossParts: epochPartSums.mapValues { $0 / Double(Swift.max(epochBatches, 1)) },
                                 validationErrors: nil)
        var message = String(format: "%@ epoch %d/%d  %@  %.2f s", label, epoch + 1, configuration.epochs,
                             ProgressReporter.describeLoss(total: record.trainLoss, parts: record.lossParts), seconds)
        if let validation, validation.count > 0 {
            let errors = Trainer.errors(model: model, dataset: validation)
            record.validationErrors = errors
            message += "  validation errors \(errors)/\(validation.count)"
            if errors < bestErrors {
                bestErrors = errors
                bestWeights = model.namedState.map(\.variable.value)
                report.selectedEpoch = epoch + 1
            }
        } else {
            report.selectedEpoch = epoch + 1
        }
        progress.line(message)
        report.epochs.append(record)
        epochObserver(record)
        epoch += 1
        epochLossSum = 0
        epochPartSums = [:]
        epochBatches = 0
        iterator.startNextEpoch()
    }

    /// Refuses a run whose batches cannot be split over `parts` processes: every process needs at least one row of
    /// every batch (two with batch norm over feature vectors).
    func checkBatchesSplit(into parts: Int) throws {
        let size = configuration.data.batchSize, n = train.count
        let smallest = n % size == 0 ? Swift.min(size, n) : Swift.min(size, n % size)
        let needed = Trainer.containsVectorBatchNorm(model) ? 2 * parts : parts
        if smallest < needed {
            throw ConfigurationError(field: "data.batchSize", "gives a batch of \(smallest) examples (\(n) training examples, batches of \(size)), too few to split over \(parts) processes (at least \(needed)); choose another batch size")
        }
    }

    /// Whether any layer, nested ones included, is a ``BatchNorm1d``.
    static func containsVectorBatchNorm(_ layer: Layer) -> Bool {
        if layer is BatchNorm1d { return true }
        if let sequence = layer as? Sequential { return sequence.layers.contains { containsVectorBatchNorm($0) } }
        if let block = layer as? Residual {
            return containsVectorBatchNorm(block.body) || block.shortcut.map { containsVectorBatchNorm($0) } == true
        }
        return false
    }

    /// Misclassified examples of `dataset` (evaluation mode, batches of 1000, no graph).
    public static func errors(model: Sequential, dataset: LabeledDataset) -> Int {
        Distillation.errors(model, on: dataset, classes: []).all
    }
}
