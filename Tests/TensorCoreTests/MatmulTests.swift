import XCTest
import Foundation
import TensorCore
#if canImport(CBLAS)
import CBLAS
#endif

final class MatmulTests: XCTestCase {
    // `DISTILL_BLAS=mkl swift test --filter ...` runs these on MKL (`.ci/run` does when MKL is installed).
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() { _ = try? BLASLibrary.select(.openblas) }

    /// sgemm against the naive Double-accumulating reference over odd shapes and every transpose combination.
    func testBLASMatchesNaiveForOddShapesAndAllTransposes() {
        var rng = RandomGenerator(seed: 7)
        let shapes = [(1, 1, 1), (3, 5, 7), (17, 1, 9), (1, 13, 2), (33, 65, 31), (128, 10, 800), (5, 129, 3)]
        for (m, n, k) in shapes {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = Tensor.normal(ta ? [k, m] : [m, k], generator: &rng)
                    let b = Tensor.normal(tb ? [n, k] : [k, n], generator: &rng)
                    let fast = a.matmul(b, transposeSelf: ta, transposeOther: tb)
                    let slow = a.naiveMatmul(b, transposeSelf: ta, transposeOther: tb)
                    XCTAssertEqual(fast.shape, [m, n])
                    let maxDiff = zip(fast.scalars, slow.scalars).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThan(maxDiff, 1e-4 * Float(k).squareRoot() + 1e-5, "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                }
            }
        }
    }

    /// Closed form: [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]].
    func testClosedFormProduct() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let b = Tensor(shape: [2, 2], scalars: [5, 6, 7, 8])
        XCTAssertEqual(a.matmul(b).scalars, [19, 22, 43, 50])
        XCTAssertEqual(a.matmul(b, transposeSelf: true).scalars, [26, 30, 38, 44])
        XCTAssertEqual(a.matmul(b, transposeOther: true).scalars, [17, 23, 39, 53])
    }

    func testAddMatmulAccumulates() {
        var rng = RandomGenerator(seed: 3)
        let a = Tensor.normal([4, 6], generator: &rng), b = Tensor.normal([6, 5], generator: &rng)
        var c = Tensor.normal([4, 5], generator: &rng)
        let expected = a.naiveMatmul(b) * 2 + c * 0.5
        c.addMatmul(a, b, alpha: 2, beta: 0.5)
        for (x, y) in zip(c.scalars, expected.scalars) { XCTAssertEqual(x, y, accuracy: 1e-4) }
    }

    /// Small products run on one BLAS thread (`GEMM.runsOnOneThread`). The same products on two threads and on one
    /// agree to rounding everywhere, and for these shapes bit for bit with the SkylakeX kernels `distill` selects on
    /// AVX-512 machines (not for every shape: see `GEMM.runsOnOneThread`; the Prescott and Haswell kernels differ more).
    func testThreadCountDoesNotChangeBits() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        ComputeThreads.set(2)
        var rng = RandomGenerator(seed: 21)
        for (m, n, k) in [(256, 300, 200), (300, 300, 128), (128, 800, 100)] {
            XCTAssertFalse(GEMM.runsOnOneThread(m: m, n: n, k: k))
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = Tensor.normal(ta ? [k, m] : [m, k], generator: &rng)
                    let b = Tensor.normal(tb ? [n, k] : [k, n], generator: &rng)
                    let threaded = a.matmul(b, transposeSelf: ta, transposeOther: tb)
                    let serial = ComputeThreads.withOneThread { a.matmul(b, transposeSelf: ta, transposeOther: tb) }
                    if BLASKernel.coreName?.lowercased() == "skylakex" {
                        XCTAssertEqual(threaded.scalars.map(\.bitPattern), serial.scalars.map(\.bitPattern),
                                       "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                    }
                    let maxDiff = zip(threaded.scalars, serial.scalars).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThan(maxDiff, 1e-5 * Float(k).squareRoot(), "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                }
            }
        }
        XCTAssertEqual(ComputeThreads.count, 2)
        XCTAssertTrue(GEMM.runsOnOneThread(m: 128, n: 10, k: 800))   // the output layer
        XCTAssertTrue(GEMM.runsOnOneThread(m: 128, n: 800, k: 10))   // its input gradient
        XCTAssertFalse(GEMM.runsOnOneThread(m: 10, n: 800, k: 128))  // its weight gradient gains from two threads
        XCTAssertTrue(GEMM.runsOnOneThread(m: 1, n: 800, k: 784))    // one image
        XCTAssertFalse(GEMM.runsOnOneThread(m: 128, n: 800, k: 784)) // a hidden layer at batch 128
    }

    /// The trainer's teacher overlap calls single-threaded BLAS from two threads at once; each call must give the
    /// bits it gives alone (OpenBLAS keeps per-call buffers and locks its allocator).
    func testConcurrentSingleThreadedCallsMatchSerialOnes() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        ComputeThreads.set(1)
        var rng = RandomGenerator(seed: 22)
        let shapes = [(128, 300, 200), (96, 257, 130)]
        let inputs = shapes.map { (m, n, k) in (Tensor.normal([m, k], generator: &rng), Tensor.normal([n, k], generator: &rng)) }
        let expected = inputs.map { $0.0.matmul($0.1, transposeOther: true).scalars.map(\.bitPattern) }
        let lock = NSLock()
        var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 2) { side in
            for _ in 0..<40 {
                let got = inputs[side].0.matmul(inputs[side].1, transposeOther: true).scalars.map(\.bitPattern)
                if got != expected[side] { lock.lock(); mismatches += 1; lock.unlock() }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// Two threads: products split into parts over the helpers, one single-threaded BLAS call each. Same products as
    /// one thread to rounding, and the same bits on every call.
    func testSplitProductsMatchOneThreadAndRepeat() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        var rng = RandomGenerator(seed: 23)
        for (m, n, k, ta) in [(800, 784, 128, true), (128, 800, 784, false), (97, 300, 64, false), (20, 50, 8, true)] {
            let a = Tensor.normal(ta ? [k, m] : [m, k], generator: &rng), b = Tensor.normal([k, n], generator: &rng)
            ComputeThreads.set(1)
            let whole = a.matmul(b, transposeSelf: ta)
            ComputeThreads.set(2)
            let split = a.matmul(b, transposeSelf: ta), again = a.matmul(b, transposeSelf: ta)
            XCTAssertEqual(split.scalars.map(\.bitPattern), again.scalars.map(\.bitPattern), "m=\(m) n=\(n) k=\(k)")
            let maxDiff = zip(whole.scalars, split.scalars).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(maxDiff, 1e-5 * Float(k).squareRoot(), "m=\(m) n=\(n) k=\(k) ta=\(ta)")
        }
    }

    /// `before` and `after` run once per part on the part's own block (the blocks tile C exactly once), around that
    /// part's product: split products by rows and by columns, an unsplit product (one block, the whole of C), and a
    /// product too small to split.
    func testBlocksTileTheOutputAroundEachPart() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        var rng = RandomGenerator(seed: 29)
        for split in [false, true] {
            ComputeThreads.set(split ? 2 : 1)
            for (m, n, k) in [(800, 300, 64), (128, 800, 784), (16, 10, 8)] {
                let a = Tensor.normal([m, k], generator: &rng), b = Tensor.normal([k, n], generator: &rng)
                let referenceScalars = a.matmul(b).scalars
                var c = [Float](repeating: .nan, count: m * n)
                var worstAfter: Float = 0
                let lock = NSLock()
                var blocks: [GEMM.Block] = [], afterBlocks: [GEMM.Block] = []
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    let out = pc.baseAddress!
                    GEMM.sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: k,
                               b: pb.baseAddress!, ldb: n, beta: 1, c: out, ldc: n,
                               before: { block in
                                   for r in block.rows { for j in block.columns { out[r * n + j] = 0 } }  // beta 1 adds to this
                                   lock.lock(); blocks.append(block); lock.unlock()
                               },
                               after: { block in
                                   // The block's product is done when `after` runs: it is the reference's, to rounding.
                                   var worst: Float = 0
                                   for r in block.rows { for j in block.columns {
                                       worst = max(worst, abs(out[r * n + j] - referenceScalars[r * n + j]))
                                   } }
                                   lock.lock(); afterBlocks.append(block); worstAfter = max(worstAfter, worst); lock.unlock()
                               })
                } } }
                var covered = [Int](repeating: 0, count: m * n)
                for block in blocks { for r in block.rows { for j in block.columns { covered[r * n + j] += 1 } } }
                XCTAssertEqual(Set(covered), [1], "m=\(m) n=\(n): every element in exactly one block")
                XCTAssertEqual(Set(blocks.map { "\($0)" }), Set(afterBlocks.map { "\($0)" }))
                XCTAssertLessThan(worstAfter, 1e-3, "each block's product is done when its `after` runs")
                let splits = ComputeThreads.productsRunOnHelpers && split
                let expectedParts = splits && GEMM.runsOnOneThread(m: m, n: n, k: k) == false ? 2 : 1
                XCTAssertEqual(blocks.count, expectedParts, "m=\(m) n=\(n) split \(splits)")
                if expectedParts == 2 {
                    XCTAssertEqual(blocks.contains { $0.columns == 0..<n } , m >= n, "split along the larger dimension")
                }
                XCTAssertFalse(c.contains { $0.isNaN })
            }
        }
    }

    #if canImport(CBLAS)
    /// OpenBLAS's own pool stays at one thread whatever the count (the helpers split products instead), from the
    /// first product on.
    func testOpenBLASHeldAtOneThread() {
        defer { ComputeThreads.set(1) }
        XCTAssertGreaterThanOrEqual(ComputeThreads.count, 1)   // first use holds the pool
        XCTAssertEqual(openblas_get_num_threads(), 1)
        for threads in [2, 1, 3] {
            ComputeThreads.set(threads)
            XCTAssertEqual(openblas_get_num_threads(), 1)
            XCTAssertEqual(ComputeThreads.count, threads)
        }
    }
    #endif
}
