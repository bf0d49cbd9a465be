#if canImport(Accelerate)
import Accelerate
#elseif canImport(CBLAS)
import CBLAS
#endif

/// Matrix multiplication: the one place that calls BLAS (through `BLASLibrary`: OpenBLAS on Linux, Accelerate on
/// Apple platforms, or MKL when selected),
/// with `naiveGEMM` beside it as the reference the tests compare against (llm.c style).
///
/// `C = alpha * op(A) * op(B) + beta * C`, row-major, where `op(X)` is `X` or `X^T`.
/// `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]`.
public enum GEMM {
    /// Whether a product is too small to gain from a second thread (it runs as one part): at most `narrowLimit`
    /// output columns (the 10-class output layer), an inner dimension of at most 16 (its input gradient), or fewer
    /// than `smallProductLimit` multiply-adds; the hand-off costs more than the work. Measured with OpenBLAS 0.3.21's
    /// own threads, which split such products anyway, on the 2-core machine of Benchmarks.md (µs, 1 vs 2 threads):
    /// 128x10x800 55 vs 73, 128x800x10 31 vs 48, 128x30x784 93 vs 127; but 10x800x128 58 vs 45 and 30x784x128
    /// 88 vs 66 gain from two threads, so few output rows alone do not count (128x100x100, 24 vs 32, stays
    /// threaded: the limit sits below 10x800x128's 1.02M multiply-adds).
    /// The choice depends on the shape alone, so runs stay reproducible. One and two threads give identical bits
    /// for most shapes with the SkylakeX kernels (those in `MatmulTests`, and 128x10x800), but not all: 128x10x1200
    /// (the teacher's output layer) differs in the last bit of 976 of 1280 elements, and the Prescott and Haswell
    /// kernels differ more often. Moving a product to one thread can therefore change a run's last bits.
    @inlinable
    public static func runsOnOneThread(m: Int, n: Int, k: Int) -> Bool {
        n <= narrowLimit || k <= 16 || m &* n &* k < smallProductLimit
    }

    /// See `runsOnOneThread`.
    public static let narrowLimit = 32
    /// See `runsOnOneThread`.
    public static let smallProductLimit = 1_000_000

    /// Whether `sgemm` splits a product's output by rows (each part a band of whole rows of `C`, all its columns) or
    /// by columns. Rows when `m >= n`. A `before` callback that writes an operand's slice for its block (e.g. the
    /// rows of op(A) the block reads) relies on this to know that the blocks do not overlap in that operand.
    @inlinable
    public static func splitsByRows(m: Int, n: Int) -> Bool { m >= n }

    /// A rectangle of a product's output `C`: the part one thread computes.
    public struct Block: Equatable, Sendable {
        public var rows: Range<Int>
        public var columns: Range<Int>
        @inlinable public init(rows: Range<Int>, columns: Range<Int>) { self.rows = rows; self.columns = columns }
    }

    /// Calls `sgemm` on raw row-major buffers. `lda`, `ldb`, `ldc` are the row strides of the stored matrices.
    ///
    /// `before` and `after` (elementwise work on `C`, e.g. a layer's bias and activation) run on each block of `C`
    /// right before and after that block's product, on the thread that computes it, while the block is in that core's
    /// cache: with products split over the helpers (`ComputeThreads.productsRunOnHelpers`) one call per part, else
    /// once for the whole of `C` on the calling thread. They must touch only their block, so the result is the same
    /// whatever the split.
    @inlinable
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
        before: ((Block) -> Void)? = nil, after: ((Block) -> Void)? = nil
    ) {
        if m == 0 || n == 0 { return }
        let whole = Block(rows: 0..<m, columns: 0..<n)
        if k == 0 {
            before?(whole)
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            after?(whole)
            return
        }
        if ComputeThreads.productsRunOnHelpers {
            // Split the larger operand's free dimension (rows of op(A) or columns of op(B)) into parts of at least
            // 32, one single-threaded BLAS call each (OpenBLAS held at one thread, or MKL's sequential layer): each
            // part packs only its share of it. The parts depend on the shape and thread count alone.
            let byRows = splitsByRows(m: m, n: n)
            let extent = byRows ? m : n
            let parts = runsOnOneThread(m: m, n: n, k: k) ? 1 : Swift.max(1, Swift.min(ComputeThreads.count, extent / 32))
            ComputeThreads.onWorkers(parts: parts) { p in
                let lo = p * extent / parts, hi = (p + 1) * extent / parts
                let block = byRows ? Block(rows: lo..<hi, columns: 0..<n) : Block(rows: 0..<m, columns: lo..<hi)
                before?(block)
                let aPart = byRows ? (transposeA ? a + lo : a + lo * lda) : a
                let bPart = byRows ? b : (transposeB ? b + lo * ldb : b + lo)
                BLASLibrary.callSgemm(
                    transposeA: transposeA, transposeB: transposeB, m: byRows ? hi - lo : m, n: byRows ? n : hi - lo,
                    k: k, alpha: alpha, a: aPart, lda: lda, b: bPart, ldb: ldb, beta: beta,
                    c: byRows ? c + lo * ldc : c + lo, ldc: ldc)
                after?(block)
            }
            return
        }
        // Accelerate (Apple): the library threads inside the call; nothing to split here.
        before?(whole)
        BLASLibrary.callSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        after?(whole)
    }

    /// `y = A x` for a row-major `[m, n]` matrix A with row stride `lda` (BLAS `sgemv`, no transpose, beta 0).
    /// The same as `sgemm` with one column, without packing A (which for one input vector costs as much as the
    /// product). Reference: `naiveGEMM(transposeA: false, transposeB: false, m: m, n: 1, k: n, ...)`.
    @inlinable
    public static func sgemv(m: Int, n: Int, a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
                             y: UnsafeMutablePointer<Float>) {
        if m == 0 { return }
        if n == 0 { y.update(repeating: 0, count: m); return }
        // Always the linked library's sgemv, MKL or not: for the single-image latency (its one caller, units split
        // over threads) OpenBLAS's measured 0.068-0.086 ms against 0.088-0.099 ms for MKL 2020.4's (three pairs).
        #if canImport(Accelerate) || canImport(CBLAS)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), 1, a, Int32(lda), x, 1, 0, y, 1)
        #else
        naiveGEMM(transposeA: false, transposeB: false, m: m, n: 1, k: n, alpha: 1, a: a, lda: lda, b: x, ldb: 1,
                  beta: 0, c: y, ldc: 1)
        #endif
    }

    /// Reference triple loop with Double accumulation, same contract as `sgemm`.
    public static func naiveGEMM(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var acc: Double = 0
                for p in 0..<k {
                    let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(acc) + prior
            }
        }
    }
}

extension Tensor {
    /// Matrix product `op(self) * op(other)` of two matrices through BLAS sgemm.
    /// `self` is `[m, k]` (or `[k, m]` when `transposeSelf`), `other` is `[k, n]` (or `[n, k]`); the result is `[m, n]`.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        Tensor.matmul(self, other, transposeA: transposeSelf, transposeB: transposeOther, naive: false)
    }

    /// The same product by the naive reference loop (for tests).
    public func naiveMatmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        Tensor.matmul(self, other, transposeA: transposeSelf, transposeB: transposeOther, naive: true)
    }

    static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, naive: Bool) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs two matrices, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "^T" : "") x \(b.shape)\(transposeB ? "^T" : "")")
        return Tensor(shape: [m, n]) { out in
            if naive {
                GEMM.naiveGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                               a: a.storage.pointer, lda: a.shape[1], b: b.storage.pointer, ldb: b.shape[1],
                               beta: 0, c: out.baseAddress!, ldc: n)
            } else {
                GEMM.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                           a: a.storage.pointer, lda: a.shape[1], b: b.storage.pointer, ldb: b.shape[1],
                           beta: 0, c: out.baseAddress!, ldc: n)
            }
        }
    }

    /// `self = alpha * op(a) * op(b) + beta * self` in place (accumulates gradients without a temporary).
    public mutating func addMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                                   alpha: Float = 1, beta: Float = 1) {
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(shape == [m, n] && (transposeB ? b.shape[1] : b.shape[0]) == k,
                     "addMatmul shapes disagree: \(shape) += \(a.shape) x \(b.shape)")
        let pa = a.storage.pointer, pb = b.storage.pointer
        withUnsafeMutableBufferPointer { c in
            GEMM.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: pa, lda: a.shape[1], b: pb, ldb: b.shape[1], beta: beta, c: c.baseAddress!, ldc: n)
        }
    }
}
