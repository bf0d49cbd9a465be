import TensorCore
import NeuralNet
import Datasets

/// What a training run minimises, given the student's logits for a batch.
///
/// `images` are the inputs the student saw (after augmentation), so an online teacher can see exactly the same ones.
public protocol TrainingObjective {
    /// A short name for reports ("labels", "distillation").
    var name: String { get }
    /// What a saved training state must match to be resumed with this objective (a distillation objective returns
    /// its teacher's content hash). Defaults to `name`.
    var identity: String { get }
    /// The scalar loss to back-propagate and its named parts (for reports).
    func loss(studentLogits: Variable, batch: Batch, images: Tensor) throws -> (loss: Variable, parts: [String: Double])
}

extension TrainingObjective {
    public var identity: String { name }
}

/// Plain supervised training: mean cross-entropy against the hard labels (PyTorch's `F.cross_entropy`).
public struct LabelObjective: TrainingObjective {
    public init() {}
    public var name: String { "labels" }
    public func loss(studentLogits: Variable, batch: Batch, images: Tensor) throws -> (loss: Variable, parts: [String: Double]) {
        let loss = crossEntropy(logits: studentLogits, labels: batch.labels)
        return (loss, ["hard": Double(loss.value.scalar)])
    }
}
