import Foundation
import TensorCore

/// One piece of work at a time on a thread beside the caller: the trainer hands it the online teacher's forward pass
/// for the next batch (``TrainingObjective/prepare(batch:inputs:)``) and trains the student on the current batch
/// meanwhile; `wait()` then returns the teacher's result.
///
/// The work runs `ComputeThreads.alone` (one thread, whole products) on a core lent for it (`ComputeThreads.lendCore`):
/// while it runs, the caller's split products and parallel loops run their parts one after another on the caller's
/// core, and once it is done, on both cores again. Which parts exist never depends on timing, only where they run,
/// so an overlapped run is reproducible exactly (it can differ in the last bits from a run without overlap, where
/// products may be split differently or over BLAS's own threads).
public final class BackgroundWork: @unchecked Sendable {
    private let queue = DispatchQueue(label: "distill.background-work", qos: .userInitiated)
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<Tensor?, Error> = .success(nil)
    private var inFlight = false

    public init() {}

    /// Whether work was started and not yet waited for.
    public var isRunning: Bool { inFlight }

    /// Starts `work` on the background thread. Call `wait()` before the next `start`.
    public func start(_ work: @escaping () throws -> Tensor?) {
        precondition(!inFlight, "BackgroundWork.start called twice without wait()")
        inFlight = true
        ComputeThreads.lendCore()
        queue.async { [self] in
            ComputeThreads.applyDenormalMode()
            result = ComputeThreads.alone { Result { try work() } }
            ComputeThreads.returnLentCore()
            finished.signal()
        }
    }

    /// Blocks until the started work is done and returns its result (rethrowing its error); nil when nothing runs.
    @discardableResult
    public func wait() throws -> Tensor? {
        guard inFlight else { return nil }
        finished.wait()
        inFlight = false
        let outcome = result
        result = .success(nil)
        return try outcome.get()
    }

    /// Waits for work in flight and drops its result and error (when the caller is failing anyway).
    public func cancel() {
        _ = try? wait()
    }
}
