import XCTest
import Foundation
import TensorCore

/// The sparse-input linear forward pass and weight gradient (`SparseKernels`, `CSparseKernels`) against their naive
/// references, bit for bit, and against the dense products.
final class SparseKernelsTests: XCTestCase {
    /// A `[rows, cols]` input with about `density` of its entries nonzero (uniform in (0, 1], like pixels / 255).
    func sparseInput(rows: Int, cols: Int, density: Float, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(shape: [rows, cols]) { out in
            for i in 0..<out.count { out[i] = rng.uniform() < density ? 1 - rng.uniform() : 0 }
        }
    }

    func bits(_ t: Tensor) -> [UInt32] { (0..<t.count).map { t[flat: $0].bitPattern } }

    /// Shapes with unit counts that are not multiples of 16 (masked tail blocks), input widths that are not multiples
    /// of 16, rows whose nonzero count leaves every remainder mod 4, an all-zero row, NaN, infinity and -0 in the
    /// input (units 8, 24, 32 + 9, widths 7 and 13: the AVX2 path's 8-unit sub-blocks and 32-unit blocks): every
    /// vector path this CPU runs and the portable one equal the reference bit for bit on 1 and 2 threads, with and
    /// without bias and ReLU.
    func testForwardMatchesReferenceBitForBit() {
        // The cap takes effect: each path reports itself while capped, so the loops below run different code.
        for path in SparseKernels.availablePaths {
            let expected: String? = path == 2 ? "AVX-512" : path == 1 ? "AVX2" : nil
            XCTAssertEqual(SparseKernels.withPathLimit(path) { SparseKernels.vectorPath }, expected, "path \(path)")
        }
        for (rows, cols, units) in [(37, 70, 45), (40, 784, 33), (5, 16, 16), (3, 1, 7), (9, 13, 8), (34, 7, 24),
                                    (12, 100, 41)] {
            var x = sparseInput(rows: rows, cols: cols, density: 0.2, seed: UInt64(rows * cols))
            for j in 0..<cols { x[flat: j] = 0 }                     // row 0: no nonzero, the bias alone
            if cols > 3 && rows > 2 {
                x[flat: cols + 1] = .nan
                x[flat: 2 * cols] = -0.0                               // a zero: skipped
                x[flat: 2 * cols + 2] = .infinity
            }
            var rng = RandomGenerator(seed: 7)
            let w = Tensor.normal([units, cols], generator: &rng), b = Tensor.normal([units], generator: &rng)
            for (bias, relu) in [(b as Tensor?, true), (nil, false), (b, false)] {
                let expected = SparseKernels.naiveLinearForward(x, weight: w, bias: bias, relu: relu)
                for path in SparseKernels.availablePaths {
                    for threads in [1, 2] {
                        let y = SparseKernels.withPathLimit(path) {
                            SparseKernels.forward(x, weight: w, bias: bias, relu: relu, threads: threads)
                        }
                        XCTAssertEqual(y.shape, [rows, units])
                        XCTAssertEqual(bits(y), bits(expected),
                                       "\(rows)x\(cols)->\(units) bias \(bias != nil) relu \(relu) threads \(threads) path \(path)")
                    }
                }
            }
        }
    }

    /// More rows than one round of compression (`rowsPerRound`): the rounds join up.
    func testForwardOverSeveralRounds() {
        let rows = SparseKernels.rowsPerRound * 2 + 19, cols = 50, units = 20
        let x = sparseInput(rows: rows, cols: cols, density: 0.25, seed: 3)
        var rng = RandomGenerator(seed: 8)
        let w = Tensor.normal([units, cols], generator: &rng), b = Tensor.normal([units], generator: &rng)
        XCTAssertEqual(bits(SparseKernels.forward(x, weight: w, bias: b, relu: true, threads: 2)),
                       bits(SparseKernels.naiveLinearForward(x, weight: w, bias: b, relu: true)))
    }

    /// The same function as the dense product: within float rounding of a Double-accumulated reference.
    func testForwardAgreesWithDenseProduct() {
        let x = sparseInput(rows: 64, cols: 784, density: 0.19, seed: 11)
        var rng = RandomGenerator(seed: 9)
        let w = Tensor.normal([100, 784], standardDeviation: 0.05, generator: &rng)
        let b = Tensor.normal([100], generator: &rng)
        let y = SparseKernels.forward(x, weight: w, bias: b, relu: false, threads: 2)
        let dense = x.naiveMatmul(w, transposeOther: true)
        for r in 0..<64 {
            for u in 0..<100 {
                XCTAssertEqual(y[r, u], dense[r, u] + b[u], accuracy: 1e-5 * max(1, abs(dense[r, u])), "(\(r), \(u))")
            }
        }
    }

    /// `SparseKernels.linearForward` (the path `linearForward` tries first) applies only to inputs with enough rows
    /// and at most `densityLimit` nonzero, on CPUs with the vector path; otherwise it declines (nil).
    func testLinearForwardChoosesTheSparsePathOnlyForSparseInputs() {
        var rng = RandomGenerator(seed: 10)
        let w = Tensor.normal([40, 60], generator: &rng), b = Tensor.normal([40], generator: &rng)
        let sparse = sparseInput(rows: 64, cols: 60, density: 0.15, seed: 12)
        let dense = sparseInput(rows: 64, cols: 60, density: 0.6, seed: 13)
        let few = sparseInput(rows: SparseKernels.minimumRows - 1, cols: 60, density: 0.15, seed: 14)
        XCTAssertNil(SparseKernels.linearForward(dense, weight: w, bias: b, relu: true))
        XCTAssertNil(SparseKernels.linearForward(few, weight: w, bias: b, relu: true))
        let chosen = SparseKernels.linearForward(sparse, weight: w, bias: b, relu: true)
        if SparseKernels.isFast {
            XCTAssertEqual(chosen.map(bits), bits(SparseKernels.naiveLinearForward(sparse, weight: w, bias: b, relu: true)))
            let saved = SparseKernels.enabled
            SparseKernels.enabled = false
            defer { SparseKernels.enabled = saved }
            XCTAssertNil(SparseKernels.linearForward(sparse, weight: w, bias: b, relu: true))
        } else {
            XCTAssertNil(chosen, "without AVX-512 the dense product is faster")
        }
    }
    // MARK: Weight gradient

    /// Unit counts that leave every number of 16-unit sub-blocks in the last 64-unit block (10, 33, 45, 64 + 6,
    /// 130), input widths that are not multiples of 16, rows that are not multiples of 16 (the column transposition's
    /// tail), an all-zero column, NaN, infinity and -0 in the input and infinity in G (times a zero input: skipped):
    /// (units 8, 24, 32 + 9 and columns 9, 13: the AVX2 path's 8-unit sub-blocks, 32-unit blocks, 8-column tiles):
    /// every vector path this CPU runs and the portable one equal the reference bit for bit on 1 and 2 threads,
    /// stored and accumulated onto an existing dW.
    func testWeightGradientMatchesReferenceBitForBit() {
        for (rows, cols, units) in [(37, 70, 45), (40, 784, 33), (128, 50, 130), (33, 17, 10), (16, 16, 70), (3, 1, 7),
                                    (9, 13, 8), (21, 9, 24), (12, 100, 41)] {
            var x = sparseInput(rows: rows, cols: cols, density: 0.2, seed: UInt64(rows + cols))
            for r in 0..<rows { x[flat: r * cols] = 0 }               // column 0: no nonzero, dW's column stays 0
            var rng = RandomGenerator(seed: 17)
            var g = Tensor.normal([rows, units], generator: &rng)
            if cols > 3 && rows > 2 {
                x[flat: cols + 1] = .nan
                x[flat: 2 * cols + 1] = -0.0                           // a zero: skipped
                x[flat: 2 * cols + 2] = .infinity
                g[flat: 1] = .infinity                                  // row 0, where column 0 is zero
            }
            let base = Tensor.normal([units, cols], generator: &rng)
            for accumulated in [nil, base] {
                let expected = SparseKernels.naiveWeightGradient(g, x: x, accumulatingInto: accumulated)
                for path in SparseKernels.availablePaths {
                    for threads in [1, 2] {
                        let dw = SparseKernels.withPathLimit(path) {
                            SparseKernels.weightGradient(g, x: x, accumulatingInto: accumulated, threads: threads)
                        }
                        XCTAssertEqual(dw.shape, [units, cols])
                        XCTAssertEqual(bits(dw), bits(expected), "\(rows)x\(cols), \(units) units, accumulate "
                                       + "\(accumulated != nil), threads \(threads) path \(path)")
                    }
                }
            }
        }
    }

    /// The same function as the dense product G^T x: within float rounding of a Double-accumulated reference.
    func testWeightGradientAgreesWithDenseProduct() {
        let x = sparseInput(rows: 128, cols: 784, density: 0.19, seed: 31)
        var rng = RandomGenerator(seed: 32)
        let g = Tensor.normal([128, 200], standardDeviation: 0.1, generator: &rng)
        let dw = SparseKernels.weightGradient(g, x: x, threads: 2)
        let dense = g.naiveMatmul(x, transposeSelf: true)
        for u in 0..<200 {
            for j in 0..<784 {
                XCTAssertEqual(dw[u, j], dense[u, j], accuracy: 1e-5 * max(1, abs(dense[u, j])), "(\(u), \(j))")
            }
        }
    }

    /// The weight gradient takes the sparse path for sparse inputs of enough rows and units only.
    func testWeightGradientAppliesToSparseInputsWithEnoughUnits() {
        let sparse = sparseInput(rows: 64, cols: 60, density: 0.15, seed: 33)
        let dense = sparseInput(rows: 64, cols: 60, density: 0.6, seed: 34)
        let units = SparseKernels.minimumGradientUnits
        XCTAssertEqual(SparseKernels.gradientAppliesTo(sparse, units: units), SparseKernels.isFast)
        XCTAssertFalse(SparseKernels.gradientAppliesTo(sparse, units: units - 1))
        XCTAssertFalse(SparseKernels.gradientAppliesTo(dense, units: units))
        let saved = SparseKernels.enabled
        SparseKernels.enabled = false
        defer { SparseKernels.enabled = saved }
        XCTAssertFalse(SparseKernels.gradientAppliesTo(sparse, units: units))
    }

    /// Two threads at once (the student's step and an overlapped teacher's forward pass, which runs alone on its
    /// core): each uses its own scratch, so both keep the reference's bits on every call, and once each thread has
    /// made its first call of the largest shape, further calls take nothing new from the system (the buffer pool
    /// supplies only the outputs, which the callers drop).
    func testConcurrentCallersKeepTheirBitsAndAllocateNothingNew() {
        let x1 = sparseInput(rows: 128, cols: 784, density: 0.19, seed: 21)
        let x2 = sparseInput(rows: 128, cols: 784, density: 0.15, seed: 22)
        var rng = RandomGenerator(seed: 23)
        let w1 = Tensor.normal([96, 784], generator: &rng), b1 = Tensor.normal([96], generator: &rng)
        let w2 = Tensor.normal([120, 784], generator: &rng), b2 = Tensor.normal([120], generator: &rng)
        let expected1 = bits(SparseKernels.naiveLinearForward(x1, weight: w1, bias: b1, relu: true))
        let expected2 = bits(SparseKernels.naiveLinearForward(x2, weight: w2, bias: b2, relu: true))
        // Shared by the two threads (inputs read-only; the count behind a lock).
        final class Calls: @unchecked Sendable {
            let lock = NSLock()
            var mismatches = 0
            let run: (Bool) -> Bool
            init(run: @escaping (Bool) -> Bool) { self.run = run }
            func repeatCalls(_ n: Int, second: Bool) {
                for _ in 0..<n where !run(second) { lock.lock(); mismatches += 1; lock.unlock() }
            }
        }
        let shared = Calls { second in
            second
                ? ComputeThreads.alone { self.bits(SparseKernels.forward(x2, weight: w2, bias: b2, relu: true, threads: 1)) == expected2 }
                : self.bits(SparseKernels.forward(x1, weight: w1, bias: b1, relu: true, threads: 2)) == expected1
        }
        func together(_ n: Int) {
            let done = DispatchSemaphore(value: 0)
            Thread { shared.repeatCalls(n, second: true); done.signal() }.start()
            shared.repeatCalls(n, second: false)
            done.wait()
        }
        together(3)
        // `bits` itself allocates Swift arrays, not pool buffers; the outputs come back to the pool after each call.
        let before = BufferPool.shared.systemAllocations
        together(40)
        XCTAssertEqual(shared.mismatches, 0, "a sparse product disagreed with its reference while another ran")
        XCTAssertEqual(BufferPool.shared.systemAllocations - before, 0,
                       "concurrent sparse products kept taking buffers from the system")
    }
}
