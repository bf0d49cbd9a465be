import Foundation
import CFloatControl
#if canImport(CBLAS)
import CBLAS
#endif

/// Thread count for BLAS and for the parallel elementwise loops.
///
/// BLAS keeps one process-wide thread pool, so this is process-wide too; commands set it once from `--threads`.
public enum ComputeThreads {
    nonisolated(unsafe) private static var current = 1

    /// The number of threads in use.
    public static var count: Int { current }

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
        #if canImport(CBLAS)
        openblas_set_num_threads(Int32(current))
        #endif
    }

    /// Runs `body` with BLAS limited to one thread, then restores `count` (for products too small to split;
    /// see `GEMM.runsOnOneThread`). Inside, `count` reads 1, so nested calls run serially. Call it from the thread
    /// that drives BLAS, as every caller here does.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        let saved = current
        guard saved > 1 else { return try body() }
        current = 1
        #if canImport(CBLAS)
        openblas_set_num_threads(1)
        #endif
        defer {
            current = saved
            #if canImport(CBLAS)
            openblas_set_num_threads(Int32(saved))
            #endif
        }
        return try body()
    }

    /// Runs `body(chunk)` for `chunks` pieces, spread over the threads when there is enough work.
    public static func parallelFor(chunks: Int, _ body: (Int) -> Void) {
        if count <= 1 || chunks <= 1 {
            for c in 0..<chunks { body(c) }
        } else {
            let flush: Int32 = flushDenormals ? 1 : 0
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                distill_set_flush_denormals(flush)
                body(c)
            }
        }
    }

    /// Whether the calling thread flushes denormals to zero.
    public static var callingThreadFlushesDenormals: Bool { distill_flush_denormals_enabled() != 0 }
}
