import XCTest
import Foundation
import TensorCore

/// `BLASLibrary`: choosing OpenBLAS or MKL, the errors for a missing MKL, and MKL's products against the naive
/// reference. The MKL tests skip when `libmkl_rt` is not installed (`.ci/run` installs Debian's libmkl-rt).
final class BLASLibraryTests: XCTestCase {
    override func tearDown() {
        _ = try? BLASLibrary.select(.openblas)
        ComputeThreads.set(1)
        unsetenv("DISTILL_BLAS")
        super.tearDown()
    }

    private func requireMKL() throws {
        do { try BLASLibrary.select(.mkl) } catch { throw XCTSkip("MKL not installed: \(error)") }
    }

    func testMissingMKLIsAClearErrorAndLeavesOpenBLAS() throws {
        try BLASLibrary.select(.openblas)
        XCTAssertThrowsError(try BLASLibrary.select(.mkl, mklPath: "/nonexistent/libmkl_rt.so")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent/libmkl_rt.so"), text)
            XCTAssertTrue(text.contains("--blas openblas"), text)
            XCTAssertTrue(text.contains("apt-get install libmkl-rt"), text)
        }
        XCTAssertEqual(BLASLibrary.active, .openblas)
        XCTAssertEqual(try BLASLibrary.select(.auto, mklPath: "/nonexistent/libmkl_rt.so"), .openblas)
    }

    func testALibraryWithoutMKLSymbolsIsRejected() throws {
        // libz is a shared library, but not MKL.
        XCTAssertThrowsError(try BLASLibrary.select(.mkl, mklPath: "libz.so.1")) { error in
            XCTAssertTrue("\(error)".contains("not MKL"), "\(error)")
        }
        XCTAssertEqual(BLASLibrary.active, .openblas)
    }

    func testChoiceFromEnvironment() throws {
        unsetenv("DISTILL_BLAS")
        XCTAssertNil(try BLASLibrary.choiceFromEnvironment())
        setenv("DISTILL_BLAS", "MKL", 1)
        XCTAssertEqual(try BLASLibrary.choiceFromEnvironment(), .mkl)
        setenv("DISTILL_BLAS", "cublas", 1)
        XCTAssertThrowsError(try BLASLibrary.choiceFromEnvironment()) { error in
            XCTAssertTrue("\(error)".contains("DISTILL_BLAS=cublas"), "\(error)")
            XCTAssertTrue("\(error)".contains("openblas"), "\(error)")
        }
    }

    /// MKL sgemm (whole, and split over two threads by `GEMM.sgemm`) against the naive reference: odd shapes, every
    /// transpose, alpha/beta, and row strides wider than the matrix.
    func testMKLMatchesNaive() throws {
        try requireMKL()
        XCTAssertEqual(BLASLibrary.active, .mkl)
        XCTAssertTrue(BLASLibrary.summary.hasPrefix("MKL "), BLASLibrary.summary)
        var rng = RandomGenerator(seed: 11)
        let shapes = [(1, 1, 1), (3, 5, 7), (17, 1, 9), (33, 65, 31), (128, 10, 800), (130, 96, 40), (64, 200, 129)]
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            for (m, n, k) in shapes {
                for ta in [false, true] {
                    for tb in [false, true] {
                        let (lda, ldb, ldc) = ((ta ? m : k) + 3, (tb ? k : n) + 1, n + 2)
                        let a = (0..<((ta ? k : m) * lda)).map { _ in rng.normal() }
                        let b = (0..<((tb ? n : k) * ldb)).map { _ in rng.normal() }
                        let c0 = (0..<(m * ldc)).map { _ in rng.normal() }
                        var fast = c0, slow = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                            fast.withUnsafeMutableBufferPointer { pc in
                                GEMM.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: pa.baseAddress!,
                                           lda: lda, b: pb.baseAddress!, ldb: ldb, beta: 2, c: pc.baseAddress!, ldc: ldc)
                            }
                            slow.withUnsafeMutableBufferPointer { pc in
                                GEMM.naiveGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: pa.baseAddress!,
                                               lda: lda, b: pb.baseAddress!, ldb: ldb, beta: 2, c: pc.baseAddress!, ldc: ldc)
                            }
                        } }
                        var maxDiff: Float = 0
                        for i in 0..<m { for j in 0..<ldc {
                            let d = abs(fast[i * ldc + j] - slow[i * ldc + j])
                            if j >= n { XCTAssertEqual(fast[i * ldc + j], c0[i * ldc + j], "padding written") }
                            else { maxDiff = max(maxDiff, d) }
                        } }
                        XCTAssertLessThan(maxDiff, 1e-4 * Float(k).squareRoot() + 1e-4,
                                          "threads=\(threads) m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                    }
                }
            }
        }
    }

    /// The same MKL product twice gives the same bits (the sequential layer on 64-byte aligned buffers), and
    /// switching back to OpenBLAS works.
    func testMKLIsReproducibleAndSwitchesBack() throws {
        try requireMKL()
        ComputeThreads.set(2)
        var rng = RandomGenerator(seed: 5)
        let a = Tensor.normal([128, 784], generator: &rng), b = Tensor.normal([800, 784], generator: &rng)
        let first = a.matmul(b, transposeOther: true)
        for _ in 0..<3 { XCTAssertEqual(a.matmul(b, transposeOther: true).scalars, first.scalars) }
        try BLASLibrary.select(.openblas)
        XCTAssertEqual(BLASLibrary.active, .openblas)
        let open = a.matmul(b, transposeOther: true)
        let maxDiff = zip(open.scalars, first.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(maxDiff, 1e-3)
    }
}
