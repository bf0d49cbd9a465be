import TensorCore

/// A teacher backed by a ``TeacherLogitStore``: soft targets come from the stored (un-augmented) logits of the
/// examples named by `indices`, never from the batch position and never from `images` (which are only checked
/// for their row count). Valid only for training without jitter; see ``TeacherLogitStore/validate(against:jitter:expectedTeacher:)``.
public final class StoredLogitsTeacher: Teacher {
    public let store: TeacherLogitStore

    public init(store: TeacherLogitStore) { self.store = store }

    public var classCount: Int { store.classCount }
    /// The identity of the teacher that wrote the store.
    public var identity: String { store.teacherIdentity }

    /// softmax(z / T) of the stored rows `indices` (for a top-k store, over the stored k logits only).
    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        try checkBatch(images, indices: indices, temperature: temperature)
        try store.checkIndices(indices)
        return store.softTargets(indices: indices, temperature: temperature)
    }

    /// For a top-k store, the stored rows `indices` as sparse soft targets (see
    /// ``TeacherLogitStore/sparseSoftTargets(indices:temperature:missingMass:)``); nil for a full store.
    public func sparseSoftTargets(batch images: Tensor, indices: [Int], temperature: Float,
                                  missingMass: MissingMass) throws -> SparseSoftTargets? {
        guard store.topK != nil else { return nil }
        try checkBatch(images, indices: indices, temperature: temperature)
        try store.checkIndices(indices)
        return try store.sparseSoftTargets(indices: indices, temperature: temperature, missingMass: missingMass)
    }

    /// The stored rows `indices` (for a top-k store, -infinity outside the stored k classes).
    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try checkBatch(images, indices: indices)
        try store.checkIndices(indices)
        return store.logits(indices: indices)
    }
}
