import TensorCore

/// A source of soft targets for distillation: a trained model, an ensemble, or stored logits.
///
/// Rows are matched to examples by `indices` (dataset positions, as in `Batch.indices`), never by batch position:
/// a teacher backed by stored data looks up row `indices[r]` for batch row `r`; a model teacher evaluates `images`
/// and may ignore `indices`.
public protocol Teacher: AnyObject {
    /// Number of classes C of the teacher's outputs.
    var classCount: Int { get }
    /// A content hash identifying exactly this teacher (e.g. SHA-256 hex of its weights), stamped into stores of
    /// teacher logits so they are not reused with another teacher.
    var identity: String { get }
    /// Soft targets for a batch: `[b, C]` probabilities (rows sum to 1) at temperature T, for `images` `[b, F]` whose
    /// row r is example `indices[r]`.
    /// - Throws: ``TrainingError`` when the batch does not fit the teacher (or an index is out of range).
    func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor
    /// Logits at T = 1, `[b, C]`, for metrics (agreement, KL). For a probability-averaged ensemble these are the log
    /// of the mean T = 1 probabilities (softmax of them gives the ensemble's prediction).
    func logits(batch images: Tensor, indices: [Int]) throws -> Tensor
    /// Whether every batch costs a forward pass of a model (a model teacher, or an ensemble with one), so training
    /// gains from running it on a thread of its own one batch ahead (``TrainingObjective/preparesInBackground``).
    /// False for teachers that look logits up (stored, cached).
    var computesPerBatch: Bool { get }
    /// Soft targets in sparse form, for a teacher that keeps only some classes per example (a top-k store), with
    /// the rest treated as `missingMass` says; nil when the teacher's targets are dense (the default).
    func sparseSoftTargets(batch images: Tensor, indices: [Int], temperature: Float,
                           missingMass: MissingMass) throws -> SparseSoftTargets?
}

extension Teacher {
    public var computesPerBatch: Bool { false }
    public func sparseSoftTargets(batch images: Tensor, indices: [Int], temperature: Float,
                                  missingMass: MissingMass) throws -> SparseSoftTargets? { nil }
}

extension Teacher {
    /// Checks the shared batch preconditions: `images` `[b, ...]` with b == indices.count and a positive temperature.
    func checkBatch(_ images: Tensor, indices: [Int], temperature: Float = 1) throws {
        guard images.rank >= 1, images.shape[0] == indices.count else {
            throw TrainingError("teacher: batch of images \(images.shape) does not match \(indices.count) example indices")
        }
        guard temperature > 0, temperature.isFinite else {
            throw TrainingError("teacher: the temperature must be > 0, got \(temperature)")
        }
    }
}
