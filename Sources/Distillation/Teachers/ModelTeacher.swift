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
    ///   - classCount: defaults to the output count of the model's last top-level `Linear` layer.
    public init(model: Sequential, identity: String? = nil, classCount: Int? = nil) {
        self.model = model
        self.identity = identity ?? modelIdentity(model)
        self.classCount = classCount ?? model.linearLayers.last?.outputCount ?? 0
    }

    /// T = 1 logits `[b, C]` (raw scores).
    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try checkBatch(images, indices: indices)
        try checkModelInput(model, images, what: "teacher \(identity.prefix(12))")
        let output = model.infer(images)
        guard output.rank == 2, output.shape[0] == indices.count, output.shape[1] == classCount else {
            throw DistillationError("teacher \(identity.prefix(12)): output shape \(output.shape), expected [\(indices.count), \(classCount)]")
        }
        return output
    }

    /// softmax(z / T) of the model's logits, `[b, C]` probabilities.
    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        try checkBatch(images, indices: indices, temperature: temperature)
        return Softmax.softmax(try logits(batch: images, indices: indices), temperature: temperature)
    }
}

/// Throws unless `images` `[b, F]` fits the first `Linear` layer of `model` (so `infer` cannot trap on user data).
func checkModelInput(_ model: Sequential, _ images: Tensor, what: String) throws {
    guard images.rank == 2 else { throw DistillationError("\(what): expected images of shape [batch, features], got \(images.shape)") }
    if let first = model.linearLayers.first, first.inputCount != images.shape[1] {
        throw DistillationError("\(what): model expects \(first.inputCount) input features, found \(images.shape[1])")
    }
}
