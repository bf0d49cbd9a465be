import TensorCore

/// Minibatches over a `LabeledDataset`, one epoch at a time, reproducible from the generator.
///
/// At the start of each epoch, when `shuffle` is on, the order is one `generator.permutation(count)`; otherwise
/// it is `0..<count` and no draws are made. Batches take consecutive slices of `epochOrder`; the last one is
/// smaller unless `dropLast`. `next()` returns nil at the end of the epoch; `startNextEpoch()` reshuffles.
///
/// To resume mid-epoch, save `epochStartGenerator` and `cursor` and pass them back as `generator` and
/// `startBatch`: the iterator then rebuilds the same order and continues at that batch. Batch tensors are fresh
/// values whose storage comes from TensorCore's buffer pool, so a steady-state loop reuses memory.
public struct BatchIterator: Sequence, IteratorProtocol, Sendable {
    /// The data being iterated.
    public let dataset: LabeledDataset
    /// Examples per batch (at least 1).
    public let batchSize: Int
    /// Whether each epoch is shuffled.
    public let shuffle: Bool
    /// Whether a final incomplete batch is skipped.
    public let dropLast: Bool
    /// The generator after drawing the current epoch's order (used for the next epoch).
    public private(set) var generator: RandomGenerator
    /// The generator state that produced `epochOrder` (save this with `cursor` to resume).
    public private(set) var epochStartGenerator: RandomGenerator
    /// The example indices in this epoch's order.
    public private(set) var epochOrder: [Int]
    /// The index of the next batch within the epoch.
    public private(set) var cursor: Int
    /// Epochs started so far, counting the current one from 0.
    public private(set) var epoch: Int = 0

    /// Creates the iterator and draws the first epoch's order.
    ///
    /// - Parameters:
    ///   - batchSize: clamped to at least 1.
    ///   - generator: the state used for the first epoch's shuffle.
    ///   - startBatch: the batch to start at within the first epoch (for resume), clamped to `0...batchesPerEpoch`.
    public init(dataset: LabeledDataset, batchSize: Int, shuffle: Bool, dropLast: Bool,
                generator: RandomGenerator, startBatch: Int = 0) {
        self.dataset = dataset
        self.batchSize = Swift.max(1, batchSize)
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.generator = generator
        self.epochStartGenerator = generator
        self.epochOrder = []
        self.cursor = 0
        drawOrder()
        self.cursor = Swift.min(Swift.max(0, startBatch), batchesPerEpoch)
    }

    /// Batches in one epoch.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    private mutating func drawOrder() {
        epochStartGenerator = generator
        epochOrder = shuffle ? generator.permutation(dataset.count) : Array(0..<dataset.count)
    }

    /// Begins the next epoch: draws a new order (when shuffling) and resets `cursor` to 0.
    public mutating func startNextEpoch() {
        drawOrder()
        cursor = 0
        epoch += 1
    }

    /// The next batch of this epoch, or nil when the epoch is over.
    public mutating func next() -> Batch? {
        guard cursor < batchesPerEpoch else { return nil }
        let start = cursor * batchSize
        let end = Swift.min(start + batchSize, dataset.count)
        cursor += 1
        let indices = Array(epochOrder[start..<end])
        let labels = indices.map { dataset.labels[$0] }
        return Batch(indices: indices, inputs: dataset.inputs(at: indices), labels: labels)
    }
}
