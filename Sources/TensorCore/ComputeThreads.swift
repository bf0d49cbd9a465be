import Foundation
import CFloatControl
import CWorkers
#if canImport(CBLAS)
import CBLAS
#endif

/// Thread count for BLAS and for the parallel elementwise loops.
///
/// The count is process-wide (commands set it once from `--threads`), except that a thread inside `alone` reads 1.
/// Products (split into parts, `GEMM.sgemm`) and elementwise loops run on the `onWorkers` helpers; the BLAS library
/// itself runs single-threaded (`productsRunOnHelpers`).
public enum ComputeThreads {
    nonisolated(unsafe) private static var current = 1

    /// The number of threads the calling thread may use: `set`'s count, or 1 inside `alone`.
    public static var count: Int {
        _ = blasHeld
        return distill_thread_is_alone() != 0 ? 1 : current
    }

    /// Runs `body` with `count` reading 1 on the calling thread only (other threads keep theirs): the trainer's
    /// teacher pass beside the student's step. Nests.
    public static func alone<R>(_ body: () throws -> R) rethrows -> R {
        distill_thread_alone_push()
        defer { distill_thread_alone_pop() }
        return try body()
    }

    /// Lends one core to work running beside the compute threads (call `returnLentCore()` when it ends): meanwhile
    /// `onWorkers` (and with it split products and, on the helpers, `parallelFor`) runs its parts one after another
    /// on the calling thread, and idle helpers stop spinning. The parts and their results are the same either way,
    /// so what runs in parallel can change with timing while the arithmetic does not.
    public static func lendCore() { distill_workers_lend(1) }

    /// Ends `lendCore`.
    public static func returnLentCore() { distill_workers_lend(-1) }

    /// Cores lent now (`lendCore`).
    public static var lentCores: Int { Int(distill_workers_lent()) }

    /// Whether compute threads flush denormal floats to zero (FTZ and DAZ), on by default.
    ///
    /// Denormals (|x| < 1.2e-38) cost the CPU a microcode assist per operation: a softmax probability like
    /// exp(-95) feeding the gradients made a distillation epoch 3.6x slower (3.0 s -> 11 s) once they appeared.
    /// Flushing them changes results only below 1.2e-38. PyTorch's equivalent is `torch.set_flush_denormal(True)`
    /// (off by default there). Applies to the thread calling `set` and to the `parallelFor` workers.
    nonisolated(unsafe) public static var flushDenormals = true

    /// Sets the thread count for BLAS and elementwise work (at least 1) and the calling thread's denormal mode.
    public static func set(_ count: Int) {
        current = Swift.max(1, count)
        distill_set_flush_denormals(flushDenormals ? 1 : 0)
        holdBLASAtOneThread()
    }

    /// Holds OpenBLAS's own pool at one thread: products are split over the `onWorkers` helpers here instead
    /// (`productsRunOnHelpers`). Once per `set`, and before the first product whatever calls it (`count`'s first
    /// read), so OpenBLAS's default pool of one thread per core never runs beside the helpers.
    private static func holdBLASAtOneThread() {
        #if canImport(CBLAS) && !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
    }

    /// `holdBLASAtOneThread` on first use (Swift runs a static's initialiser once, thread-safely).
    private static let blasHeld: Bool = { holdBLASAtOneThread(); return true }()

    /// Runs `body` with `count` reading 1 process-wide, then restores it: products and loops inside run on the
    /// calling thread only (the single-image forward pass, whose parts call BLAS one row at a time). Call it from
    /// the thread that drives the work, as every caller here does.
    public static func withOneThread<R>(_ body: () throws -> R) rethrows -> R {
        let saved = current
        guard count > 1 else { return try body() }
        current = 1
        defer { current = saved }
        return try body()
    }

    /// Whether `GEMM.sgemm` splits products over the `onWorkers` helpers itself, one single-threaded BLAS call per
    /// part (`parallelFor` then uses the same helpers): always where the library is OpenBLAS (its own pool held at
    /// one thread) or MKL (its sequential layer); not with Apple's Accelerate, which threads inside each call.
    ///
    /// One threading model for both libraries: no BLAS pool spins on a core between products, two threads can call
    /// BLAS at once (the teacher overlap), and elementwise work around a product runs on the thread that computes
    /// each part (`GEMM.sgemm`'s `before`/`after`). On OpenBLAS it replaced the library's own threads (student epoch
    /// 2.51-2.96 s against 2.95-3.22 s, three alternating pairs; inference 0.130-0.145 against 0.137-0.154 s; the
    /// teacher undecided in seven noisy pairs; Benchmarks.md, split products); the split changes the last bits of some
    /// products against OpenBLAS's threaded ones.
    public static var productsRunOnHelpers: Bool {
        #if canImport(Accelerate)
        return BLASLibrary.active == .mkl
        #else
        return true
        #endif
    }

    /// Runs `body(part)` for part in `0..<parts` at the same time: part 0 on the calling thread, the others claimed
    /// by persistent helper threads that spin briefly between tasks (`CWorkers`), so a short task (one layer of a
    /// single-image forward pass) starts in about a microsecond where `DispatchQueue.concurrentPerform` needs a
    /// thread wake-up; a part no helper has claimed when the calling thread is done runs there (on a busy machine a
    /// preempted helper does not hold the call up: one image through a 784-800-800-10 student took 0.34 ms instead
    /// of 0.025 ms when the helper had to wait for a core). Helpers flush denormals like the caller. Calls are serialised process-wide. While a core is
    /// lent (`lendCore`), the parts run in order on the calling thread.
    public static func onWorkers(parts: Int, _ body: (Int) -> Void) {
        guard parts > 1 else { body(0); return }
        withoutActuallyEscaping(body) { body in
            var task = WorkerTask(body: body, flush: flushDenormals ? 1 : 0)
            withUnsafeMutablePointer(to: &task) { pointer in
                _ = distill_workers_run(Int32(Swift.min(parts, 64)), { context, part in
                    guard let task = context?.assumingMemoryBound(to: WorkerTask.self) else { return }
                    distill_set_flush_denormals(task.pointee.flush)
                    task.pointee.body(Int(part))
                }, pointer)
            }
        }
    }

    /// How long `onWorkers` helpers spin after a task before sleeping (microseconds; default 200, 0 = sleep at once).
    public static func setWorkerSpin(microseconds: Int) {
        distill_workers_set_spin(Int32(clamping: microseconds))
    }

    /// Elementwise work on `count` elements (an optimizer's update): from `elementwiseSplitMinimum` elements on, in
    /// 4 contiguous ranges per thread (`parallelFor`), else one range on the calling thread. Each element is done once
    /// by the same code whatever the split, so the bits do not depend on the thread count.
    public static func parallelRanges(count n: Int, _ body: (Range<Int>) -> Void) {
        let chunks = n >= elementwiseSplitMinimum ? 4 * count : 1
        parallelFor(chunks: chunks) { c in body((c * n / chunks)..<((c + 1) * n / chunks)) }
    }

    /// See `parallelRanges`.
    public static let elementwiseSplitMinimum = 1 << 18

    /// Runs `body(chunk)` for `chunks` pieces, spread over the threads when there is enough work (over the
    /// `onWorkers` helpers where products run on them, else on GCD's pool): part p takes the p-th contiguous run of chunks, so
    /// the thread that runs a product's first part also updates the first part of its operands, e.g. in SGD; with
    /// chunks dealt round-robin instead half of each step's data crossed between the cores' caches: SGD 0.22-0.26 s
    /// against 0.28-0.31 s per student epoch, MKL). Every chunk runs exactly once, so the result never depends on
    /// which thread ran it.
    public static func parallelFor(chunks: Int, _ body: (Int) -> Void) {
        if count <= 1 || chunks <= 1 {
            for c in 0..<chunks { body(c) }
        } else if productsRunOnHelpers {
            // Products run on the `onWorkers` helpers: keep to that one pool, so no GCD thread competes with a
            // helper still spinning after a product (student epoch with MKL: 2.39 s against 2.50 s, median of 5
            // pairs).
            let parts = Swift.min(count, chunks)
            onWorkers(parts: parts) { p in
                for c in (p * chunks / parts)..<((p + 1) * chunks / parts) { body(c) }
            }
        } else {
            let flush: Int32 = flushDenormals ? 1 : 0
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                distill_set_flush_denormals(flush)
                body(c)
            }
        }
    }

    /// Applies `flushDenormals` to the calling thread (for threads this module did not start, e.g. a GCD queue that
    /// runs work beside the main thread).
    public static func applyDenormalMode() {
        distill_set_flush_denormals(flushDenormals ? 1 : 0)
    }

    /// Whether the calling thread flushes denormals to zero.
    public static var callingThreadFlushesDenormals: Bool { distill_flush_denormals_enabled() != 0 }
}

/// What `ComputeThreads.onWorkers` hands to the C helpers.
private struct WorkerTask {
    let body: (Int) -> Void
    let flush: Int32
}
