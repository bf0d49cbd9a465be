import Foundation
import Distributed
import TensorCore
import NeuralNet
import Datasets

extension Trainer {
    /// The training split's content hash (computed once per trainer).
    public var trainFingerprint: String {
        if let cachedTrainFingerprint { return cachedTrainFingerprint }
        let value = train.fingerprint
        cachedTrainFingerprint = value
        return value
    }

    /// Everything needed to continue this run, as of now (after the last finished step).
    ///
    /// Throws a `TrainingError` naming the epoch and batch when a weight is NaN or infinite, so a diverged run
    /// never replaces a good checkpoint.
    public func currentState() throws -> TrainingState {
        for (name, p) in model.namedState where !p.value.isFinite {
            throw TrainingError("the weights became NaN or infinite (\(name)) at epoch \(epoch + 1), batch \(iterator.cursor); lower the learning rate or clip the gradient norm")
        }
        let names = model.namedState.map(\.name)
        return TrainingState(
            configuration: configuration, objectiveIdentity: objective.identity, objectiveName: objective.name,
            epoch: epoch, batch: iterator.cursor,
            batchOrderGenerator: iterator.epochStartGenerator, dropoutGenerator: dropoutGenerator,
            jitterGenerator: jitterGenerator, report: report,
            epochBatches: epochBatches, epochLossSum: epochLossSum, epochPartSums: epochPartSums,
            bestErrors: bestWeights == nil ? nil : bestErrors,
            trainCount: train.count, classCount: train.classCount, featureCount: train.featureCount,
            validationCount: validation?.count ?? 0, trainFingerprint: trainFingerprint,
            weights: model.namedState.map { ($0.name, $0.variable.value) }
                + objective.namedParameters.map { ("objective." + $0.name, $0.parameter.value) },
            optimizerState: optimizer.stateTensors(),
            bestWeights: bestWeights.map { Array(zip(names, $0)).map { ($0.0, $0.1) } } ?? [])
    }

    /// Writes a training-state checkpoint to `url` atomically (see `TrainingState` for the format). Refuses (and
    /// leaves any existing file untouched) when the weights are not finite. In a data-parallel job only rank 0
    /// writes (every process holds the same state).
    public func saveState(to url: URL) throws {
        guard communicator.isRoot else { return }
        try currentState().write(to: url)
    }

    /// A trainer that continues the run saved in `url`, built from the same arguments as the original
    /// `init`. Refuses, with a `TrainingError` naming the file, when the file's configuration, objective identity
    /// or training data differ from these.
    public static func resume(from url: URL, configuration: TrainingConfiguration, train: LabeledDataset,
                              validation: LabeledDataset?, objective: TrainingObjective, model: Sequential? = nil,
                              label: String = "train", progress: ProgressReporter = ProgressReporter()) throws -> Trainer {
        let state = try TrainingState.read(url: url)
        let trainer = try Trainer(configuration: configuration, train: train, validation: validation, objective: objective,
                                  model: model, label: label, progress: progress)
        try trainer.restore(state, source: url.path)
        return trainer
    }

    /// Loads `state` into this (freshly initialised) trainer after checking it belongs to the same run.
    public func restore(_ state: TrainingState, source: String) throws {
        func refuse(_ what: String) -> TrainingError {
            TrainingError("\(source): cannot resume: \(what); to start over, delete the state file and run without resuming")
        }
        // The convolution engine matters to models with convolutions only, and only where both runs recorded it.
        var saved = state.configuration
        if !model.containsConvolution || saved.runtime.convolutions == nil || configuration.runtime.convolutions == nil {
            saved.runtime.convolutions = configuration.runtime.convolutions
        }
        if saved != configuration {
            throw refuse("the training configuration differs (\(TrainingConfiguration.differences(saved: saved, now: configuration)))")
        }
        guard state.objectiveIdentity == objective.identity else {
            throw refuse("the objective differs (saved '\(state.objectiveIdentity)', now '\(objective.identity)')")
        }
        guard state.trainCount == train.count, state.classCount == train.classCount,
              state.featureCount == train.featureCount, state.validationCount == (validation?.count ?? 0) else {
            throw refuse("the data differ (saved \(state.trainCount) training examples, \(state.classCount) classes, \(state.featureCount) features, \(state.validationCount) held out; now \(train.count), \(train.classCount), \(train.featureCount), \(validation?.count ?? 0))")
        }
        guard state.trainFingerprint == trainFingerprint else {
            throw refuse("the training data differ (fingerprint \(state.trainFingerprint.prefix(16))…, now \(trainFingerprint.prefix(16))…)")
        }
        guard state.epoch >= 0, state.epoch <= configuration.epochs, state.batch >= 0,
              state.batch <= iterator.batchesPerEpoch, state.epochBatches >= 0 else {
            throw refuse("epoch \(state.epoch) / batch \(state.batch) is out of range")
        }
        // The running sums of the epoch in progress: a corrupted count would overflow, a non-finite sum would make
        // the epoch's loss NaN (and the next state unwritable).
        guard state.epochBatches <= iterator.batchesPerEpoch else {
            throw refuse("loss_sums counts \(state.epochBatches) batches, an epoch has \(iterator.batchesPerEpoch)")
        }
        guard state.epochLossSum.isFinite, state.epochPartSums.values.allSatisfy(\.isFinite) else {
            throw refuse("loss_sums holds a NaN or infinite sum")
        }
        let weights = Dictionary(state.weights.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        let named = model.namedState.map { (name: $0.name, parameter: $0.variable) }
            + objective.namedParameters.map { (name: "objective." + $0.name, parameter: $0.parameter) }
        guard weights.count == named.count else {
            throw refuse("the file has \(weights.count) weight tensors, the model has \(named.count)")
        }
        for (name, p) in named {
            guard let t = weights[name], t.shape == p.value.shape else {
                throw refuse("weight '\(name)' is missing or has the wrong shape")
            }
            guard t.isFinite else { throw refuse("weight '\(name)' contains NaN or infinity") }
        }
        var best: [Tensor]? = nil
        if !state.bestWeights.isEmpty {
            let b = Dictionary(state.bestWeights.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
            best = try named.filter { !$0.name.hasPrefix("objective.") }.map { name, p in
                guard let t = b[name], t.shape == p.value.shape else { throw refuse("best weight '\(name)' is missing or has the wrong shape") }
                guard t.isFinite else { throw refuse("best weight '\(name)' contains NaN or infinity") }
                return t
            }
        }
        // The optimizer indexes its buffers by parameter position and trusts their shapes (a wrong shape would be
        // read and written out of bounds on the next step): check every entry against the model first.
        let shapes = trainingStep.parameters.map(\.value.shape)
        for name in state.optimizerState.keys.sorted() {
            let t = state.optimizerState[name]!
            guard let dot = name.lastIndex(of: "."), let index = Int(name[name.index(after: dot)...]), shapes.indices.contains(index) else {
                throw refuse("optimizer state 'optimizer.\(name)' does not name a parameter 0..<\(shapes.count)")
            }
            if name[..<dot] == "step" {
                guard t.count == 1, let v = t.scalars.first, v.isFinite, v >= 0, v <= 1e15, v == v.rounded() else {
                    throw refuse("optimizer state 'optimizer.\(name)' is not a step count (expected one whole number >= 0)")
                }
            } else {
                guard t.shape == shapes[index] else {
                    throw refuse("optimizer state 'optimizer.\(name)' has shape \(t.shape), parameter \(index) has shape \(shapes[index])")
                }
                guard t.isFinite else { throw refuse("optimizer state 'optimizer.\(name)' contains NaN or infinity") }
            }
        }
        do { try optimizer.loadState(state.optimizerState) } catch { throw refuse("the optimizer state does not load: \(error)") }
        for (name, p) in named { p.value = weights[name]! }
        bestWeights = best
        bestErrors = best == nil ? Int.max : (state.bestErrors ?? Int.max)
        iterator = BatchIterator(dataset: train, batchSize: configuration.data.batchSize, shuffle: true, dropLast: false,
                                 generator: state.batchOrderGenerator, startBatch: state.batch)
        dropoutGenerator = state.dropoutGenerator
        jitterGenerator = state.jitterGenerator
        epoch = state.epoch
        report = state.report
        epochLossSum = state.epochLossSum
        epochPartSums = state.epochPartSums
        epochBatches = state.epochBatches
    }
}
