import Checkpoints
import Foundation
import TensorCore
import NeuralNet
import Datasets

/// Distillation (Hinton et al. 2015): the student matches the teacher's soft targets at temperature T and, with
/// `hardWeight > 0`, the true labels (see `distillationLoss`).
///
/// The teacher sees exactly the inputs the student sees (after jitter), so an online teacher follows the
/// augmentation. A stored-logits teacher is looked up by example index; when training on a subset of the
/// dataset the store was written for, `exampleIndices[i]` maps position `i` of the subset to its row in the store.
public struct DistillationObjective: TrainingObjective {
    public let teacher: Teacher
    public let loss: DistillationLossConfiguration
    public let exampleIndices: [Int]?

    public init(teacher: Teacher, loss: DistillationLossConfiguration, exampleIndices: [Int]? = nil) throws {
        try loss.validate()
        self.teacher = teacher
        self.loss = loss
        self.exampleIndices = exampleIndices
    }

    public var name: String { "distillation" }

    /// The teacher's content hash and the loss settings: a resumed run must match both.
    public var identity: String {
        "distillation teacher=\(teacher.identity) T=\(loss.temperature) hard=\(loss.hardWeight) soft=\(loss.softWeight) T2=\(loss.scaleSoftBySquaredTemperature)"
            + (loss.missingMass == .renormalize ? "" : " missing=\(loss.missingMass.rawValue)")
    }

    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor) throws -> (loss: Variable, parts: [String: Double]) {
        try loss(studentLogits: studentLogits, batch: batch, inputs: inputs, prepared: nil)
    }

    /// True for a teacher that runs a model on every batch (not for stored or cached logits).
    public var preparesInBackground: Bool { teacher.computesPerBatch }

    /// The teacher's soft targets at temperature T for the batch, `[b, C]`.
    public func prepare(batch: Batch, inputs: Tensor) throws -> Tensor? {
        try softTargets(batch: batch, inputs: inputs)
    }

    func softTargets(batch: Batch, inputs: Tensor) throws -> Tensor {
        let indices = exampleIndices.map { map in batch.indices.map { map[$0] } } ?? batch.indices
        return try teacher.softTargets(batch: inputs, indices: indices, temperature: loss.temperature)
    }

    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double]) {
        let targets: Tensor
        if prepared == nil, let sparse = try sparseTargets(batch: batch, inputs: inputs) {
            let (value, parts) = distillationLoss(studentLogits: studentLogits, sparseTargets: sparse,
                                                  labels: batch.labels, configuration: loss)
            return (value, Self.reported(parts))
        }
        if let prepared {
            guard prepared.shape == [batch.count, teacher.classCount] else {
                throw TrainingError("teacher soft targets of shape \(prepared.shape) for a batch of \(batch.count), expected [\(batch.count), \(teacher.classCount)]")
            }
            targets = prepared
        } else {
            targets = try softTargets(batch: batch, inputs: inputs)
        }
        let (value, parts) = distillationLoss(studentLogits: studentLogits, teacherProbabilities: targets,
                                              labels: batch.labels, configuration: loss)
        return (value, Self.reported(parts))
    }

    static func reported(_ parts: DistillationLossParts) -> [String: Double] {
        ["hard": parts.hard, "soft_cross_entropy": parts.softCrossEntropy, "soft_kl": parts.softKL, "soft_scaled": parts.softScaled]
    }

    /// A top-k teacher's targets in sparse form (nil for a dense teacher).
    func sparseTargets(batch: Batch, inputs: Tensor) throws -> SparseSoftTargets? {
        let indices = exampleIndices.map { map in batch.indices.map { map[$0] } } ?? batch.indices
        return try teacher.sparseSoftTargets(batch: inputs, indices: indices, temperature: loss.temperature,
                                             missingMass: loss.missingMass)
    }
}

/// Loads teachers from files.
public enum TeacherLoader {
    /// One checkpoint -> a `ModelTeacher`; several -> an `EnsembleTeacher` combined as `combination`.
    /// Checks every member against the data's feature and class counts, naming the file.
    ///
    /// With `cacheLogits`, each member's logits for every example of `dataset` are computed once and kept in memory
    /// (``CachedTeacher``; for an ensemble each member is cached, so the combination at temperature T is unchanged).
    /// Only worth it when training sees the un-augmented inputs of `dataset`, i.e. without jitter.
    /// `description`, when given, is every file's network (plain state dicts without one of their own).
    public static func load(paths: [String], combination: EnsembleTeacher.Combination, dataset: LabeledDataset,
                            cacheLogits: Bool = false, description: ModelDescription? = nil) throws -> Teacher {
        guard !paths.isEmpty else { throw TrainingError("a teacher needs at least one model file") }
        let members: [Teacher] = try paths.map { path in
            let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: path), description: description)
            try TrainingJob.checkCompatible(checkpoint, with: dataset, source: path)
            let teacher = ModelTeacher(model: checkpoint.model, identity: modelIdentity(checkpoint.model))
            return cacheLogits ? try CachedTeacher(base: teacher, dataset: dataset) : teacher
        }
        return members.count == 1 ? members[0] : try EnsembleTeacher(members: members, combination: combination)
    }
}
