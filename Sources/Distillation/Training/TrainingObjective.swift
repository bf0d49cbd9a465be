import TensorCore
import NeuralNet
import Datasets

/// What a training run minimises, given the student's logits for a batch.
///
/// `inputs` are the inputs the student saw (after augmentation), so an online teacher can see exactly the same ones.
public protocol TrainingObjective {
    /// A short name for reports ("labels", "distillation").
    var name: String { get }
    /// What a saved training state must match to be resumed with this objective (a distillation objective returns
    /// its teacher's content hash). Defaults to `name`.
    var identity: String { get }
    /// The scalar loss to back-propagate and its named parts (for reports).
    func loss(studentLogits: Variable, batch: Batch, inputs: Tensor) throws -> (loss: Variable, parts: [String: Double])

    /// Whether `prepare` is heavy (an online teacher's forward pass): then, with two threads, the trainer runs it
    /// for the next batch on the second one while the student trains on the current batch
    /// (``TrainingConfiguration/overlapsTeacher(computingPerBatch:)``, ``BackgroundWork``). Default false.
    var preparesInBackground: Bool { get }
    /// The part of the loss that depends on the batch alone, never on the student (distillation: the teacher's soft
    /// targets), so it may run ahead, on another thread. Default nil (nothing to prepare). It must not touch state
    /// the student's step uses.
    func prepare(batch: Batch, inputs: Tensor) throws -> Tensor?
    /// `loss` given what `prepare` returned for this batch; nil means not prepared (compute it here).
    /// The result is the same either way. Default: `loss(studentLogits:batch:inputs:)`.
    func loss(studentLogits: Variable, batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double])

    /// Top-level layers of the student whose outputs the loss compares (feature distillation); default none.
    var studentFeatureLayers: Set<Int> { get }
    /// Parameters the objective trains beside the student's (a FitNets regressor), named; the optimizer updates
    /// them after the model's, training states save them as `objective.<name>`. Default none.
    var namedParameters: [(name: String, parameter: Variable)] { get }
    /// `loss` given the outputs of ``studentFeatureLayers`` as well. Default: ignores them.
    func loss(studentLogits: Variable, studentFeatures: [Int: Variable], batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double])
    /// Called by the trainer before each epoch's batches (also when a run resumes within an epoch), `epoch` counted
    /// from 0, for losses whose weights follow a schedule (DKD's warm-up). Default: nothing.
    func beginEpoch(_ epoch: Int)
}

extension TrainingObjective {
    public var identity: String { name }
    public var preparesInBackground: Bool { false }
    public func prepare(batch: Batch, inputs: Tensor) throws -> Tensor? { nil }
    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double]) {
        try loss(studentLogits: studentLogits, batch: batch, inputs: inputs)
    }
    public var studentFeatureLayers: Set<Int> { [] }
    public var namedParameters: [(name: String, parameter: Variable)] { [] }
    public func beginEpoch(_ epoch: Int) {}
    public func loss(studentLogits: Variable, studentFeatures: [Int: Variable], batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double]) {
        try loss(studentLogits: studentLogits, batch: batch, inputs: inputs, prepared: prepared)
    }
}

/// Plain supervised training: mean cross-entropy against the hard labels (PyTorch's `F.cross_entropy`).
public struct LabelObjective: TrainingObjective {
    public init() {}
    public var name: String { "labels" }
    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor) throws -> (loss: Variable, parts: [String: Double]) {
        let loss = crossEntropy(logits: studentLogits, labels: batch.labels)
        return (loss, ["hard": Double(loss.value.scalar)])
    }
}
