import Foundation
import TensorCore
import NeuralNet

/// One piece of work at a time on a thread beside the caller: the trainer hands it the online teacher's forward pass
/// for the next batch (``TrainingObjective/prepare(batch:images:)``) and trains the student on the current batch
/// meanwhile; `wait()` then returns the teacher's result.
///
/// The caller runs with `ComputeThreads` at one thread while work is in flight, so each side uses single-threaded
/// BLAS on its own core; the arithmetic of both sides does not depend on timing, so an overlapped run is
/// reproducible exactly (it can differ in the last bits from a run without overlap, where products may be split
/// over two BLAS threads).
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
        queue.async { [self] in
            ComputeThreads.applyDenormalMode()
            result = Result { try work() }
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

extension BackgroundWork {
    /// `loss.backward()` for a training step that overlaps this work (the teacher overlap of `Trainer.run` and the
    /// bench's `distill_online`): just before the last backward rule (an MLP's first-layer weight gradient) it waits
    /// for the work and switches to split products over `threads` for the rest of the step; the caller ends them
    /// with `ComputeThreads.endSplitProducts()` after its update. Where the join happens depends on the graph alone,
    /// so results stay reproducible.
    /// - Returns: the work's result (nil when none was started), or the error it threw.
    func backward(_ loss: Variable, joiningWithThreads threads: Int) -> Result<Tensor?, Error> {
        var result: Result<Tensor?, Error>?
        let join = {
            result = Result { try self.wait() }
            ComputeThreads.beginSplitProducts(threads: threads)
        }
        loss.backward(beforeLastRule: join)
        if result == nil { join() }   // a graph without a rule (nothing to back-propagate)
        return result ?? .success(nil)
    }
}
