import NeuralNet
import TensorCore

/// A trained network used as teacher, evaluated in eval mode with `Sequential.infer` (dropout off, no autograd
/// graph is ever built). `indices` are ignored: the teacher sees the (possibly jittered) images themselves.
public final class ModelTeacher: Teacher {
    public let model: Sequential
    public let identity: String
    public let classCount: Int
    /// A forward pass of `model` per batch.
    public var computesPerBatch: Bool { true }

    /// - Parameters:
    ///   - identity: defaults to ``modelIdentity(_:)`` of the weights.
    ///   - classCount: defaults to the model's output size (``Sequential/outputShape``).
    public init(model: Sequential, identity: String? = nil, classCount: Int? = nil) {
        self.model = model
        self.identity = identity ?? modelIdentity(model)
        self.classCount = classCount ?? model.outputShape?.reduce(1, *) ?? 0
    }

    /// T = 1 logits `[b, C]` (raw scores).
    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try checkBatch(images, indices: indices)
        try checkModelInput(model, images, what: "teacher \(identity.prefix(12))")
        let output = model.infer(images)
        guard output.rank == 2, output.shape[0] == indices.count, output.shape[1] == classCount else {
            throw TrainingError("teacher \(identity.prefix(12)): output shape \(output.shape), expected [\(indices.count), \(classCount)]")
        }
        return output
    }

    /// softmax(z / T) of the model's logits, `[b, C]` probabilities.
    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        try checkBatch(images, indices: indices, temperature: temperature)
        return Softmax.softmax(try logits(batch: images, indices: indices), temperature: temperature)
    }
}

/// Throws unless `inputs` `[b, ...]` hold as many values per example as the model's input shape (so `infer` cannot
/// trap on user data).
func checkModelInput(_ model: Sequential, _ inputs: Tensor, what: String) throws {
    guard inputs.rank >= 2 else { throw TrainingError("\(what): expected inputs of shape [batch, ...], got \(inputs.shape)") }
    let found = inputs.shape.dropFirst().reduce(1, *)
    if let shape = model.inputShape, shape.reduce(1, *) != found {
        throw TrainingError("\(what): model expects \(shape.reduce(1, *)) input features, found \(found)")
    }
}
