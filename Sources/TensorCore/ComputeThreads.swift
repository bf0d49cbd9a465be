import Foundation
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

    /// Sets the thread count for BLAS and elementwise work (at least 1).
    public static func set(_ count: Int) {
        current = Swift.max(1, count)
        #if canImport(CBLAS)
        openblas_set_num_threads(Int32(current))
        #endif
    }

    /// Runs `body(chunk)` for `chunks` pieces, spread over the threads when there is enough work.
    @inlinable
    public static func parallelFor(chunks: Int, _ body: (Int) -> Void) {
        if count <= 1 || chunks <= 1 {
            for c in 0..<chunks { body(c) }
        } else {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
        }
    }
}
