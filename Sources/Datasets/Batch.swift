import TensorCore

/// One minibatch from a `BatchIterator`.
public struct Batch: Sendable {
    /// Position of each example in the dataset (use it to look up stored per-example data such as teacher logits).
    public let indices: [Int]
    /// Inputs, shape `[indices.count] + sampleShape`; row `r` is example `indices[r]`.
    public let inputs: Tensor
    /// Labels of the examples, `labels[r] == dataset.labels[indices[r]]`.
    public let labels: [Int]

    public init(indices: [Int], inputs: Tensor, labels: [Int]) {
        self.indices = indices
        self.inputs = inputs
        self.labels = labels
    }

    /// Number of examples in the batch.
    public var count: Int { indices.count }
}
