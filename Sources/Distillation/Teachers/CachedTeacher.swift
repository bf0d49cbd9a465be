import TensorCore
import NeuralNet
import Datasets

/// A teacher whose T = 1 logits for every example of a dataset are computed once, in memory, and looked up by
/// example index afterwards (TextBrewer's `is_caching_logits`, done up front).
///
/// A frozen teacher in eval mode gives the same logits for the same image every epoch, so without augmentation
/// running it on every batch repeats work: on MNIST its forward pass is 75 % of the student's training step in
/// multiply-adds. The cache is filled in fixed, ordered chunks (like ``TeacherLogitStore/write``), so it is the same
/// whatever the batch order, including after a resume.
///
/// Every lookup checks that the batch's images are exactly the cached examples' images (bit for bit); a batch that
/// differs (jitter, another dataset, edited images) is passed to the wrapped teacher instead and counted in
/// `misses`. So the cache can only save work, never change what the teacher would say about an image. Memory:
/// `count * classCount` floats (2.4 MB for MNIST's 60,000 x 10).
public final class CachedTeacher: Teacher {
    /// The teacher being cached (asked directly on a miss).
    public let base: Teacher
    /// The examples whose logits are cached; `indices` passed to the teacher are positions in it.
    public let dataset: LabeledDataset
    /// `[dataset.count, classCount]` T = 1 logits.
    public let cachedLogits: Tensor
    /// Batches answered from the cache / by the wrapped teacher.
    public private(set) var hits = 0, misses = 0

    /// Runs `base` over `dataset` in order, `batchSize` examples at a time, and keeps the logits.
    /// - Throws: ``TrainingError`` when the teacher fails or returns logits of the wrong shape.
    public init(base: Teacher, dataset: LabeledDataset, batchSize: Int = 1000) throws {
        self.cachedLogits = try TeacherLogitStore.computeLogits(teacher: base, dataset: dataset, batchSize: batchSize,
                                                                context: "teacher \(base.identity.prefix(12))")
        self.base = base
        self.dataset = dataset
    }

    public var classCount: Int { base.classCount }
    /// The wrapped teacher's identity: caching does not change what the teacher is.
    public var identity: String { base.identity }

    /// softmax(z / T) of the cached logits when the batch is exactly the cached examples, else the wrapped teacher's.
    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        try checkBatch(images, indices: indices, temperature: temperature)
        guard dataset.rowsEqual(images, at: indices) else {
            misses += 1
            return try base.softTargets(batch: images, indices: indices, temperature: temperature)
        }
        hits += 1
        return Softmax.softmax(cachedLogits.gatherRows(indices), temperature: temperature)
    }

    /// The cached T = 1 logits when the batch is exactly the cached examples, else the wrapped teacher's.
    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try checkBatch(images, indices: indices)
        guard dataset.rowsEqual(images, at: indices) else {
            misses += 1
            return try base.logits(batch: images, indices: indices)
        }
        hits += 1
        return cachedLogits.gatherRows(indices)
    }
}
