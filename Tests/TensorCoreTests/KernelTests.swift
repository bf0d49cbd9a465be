import XCTest
import TensorCore

/// Each fast kernel against its naive reference.
final class KernelTests: XCTestCase {
    func testDropoutMaskMatchesReferenceAndDrawCount() {
        for n in [0, 1, 3, 4, 5, 17, 1000, 1003] {
          // keep 0 and 1 are the edges of the branch-free comparison (threshold 0 and 65536).
          for keep: Float in [0.8, 0, 1, 0.5, 1e-5] {
            var g1 = RandomGenerator(seed: 11), g2 = RandomGenerator(seed: 11)
            var fast = [Float](repeating: -1, count: n), naive = [Float](repeating: -1, count: n)
            fast.withUnsafeMutableBufferPointer { Kernels.dropoutMask($0, keep: keep, scale: 1.25, generator: &g1) }
            naive.withUnsafeMutableBufferPointer { Kernels.naiveDropoutMask($0, keep: keep, scale: 1.25, generator: &g2) }
            XCTAssertEqual(fast, naive, "n = \(n), keep \(keep)")
            if keep == 0 { XCTAssert(fast.allSatisfy { $0 == 0 }) }
            if keep == 1 { XCTAssert(fast.allSatisfy { $0 == 1.25 }) }
            XCTAssertEqual(g1, g2)
            // One 64-bit draw per 4 elements, rounded up.
            var g3 = RandomGenerator(seed: 11)
            for _ in 0..<((n + 3) / 4) { _ = g3.nextUInt64() }
            XCTAssertEqual(g1, g3, "n = \(n)")
          }
        }
    }

    func testDropoutMaskKeepFraction() {
        var g = RandomGenerator(seed: 12)
        var mask = [Float](repeating: 0, count: 200_000)
        mask.withUnsafeMutableBufferPointer { Kernels.dropoutMask($0, keep: 0.5, scale: 2, generator: &g) }
        XCTAssert(mask.allSatisfy { $0 == 0 || $0 == 2 })
        let kept = Double(mask.filter { $0 != 0 }.count) / Double(mask.count)
        XCTAssertEqual(kept, 0.5, accuracy: 0.005)
        XCTAssertEqual(Kernels.dropoutThreshold(keep: 0.8), 52429)
    }

    func testReluBackwardMaskMatchesReference() {
        var g = RandomGenerator(seed: 13)
        let y = Tensor.normal([37, 29], generator: &g), up = Tensor.normal([37, 29], generator: &g)
        var fast = up.scalars, naive = up.scalars
        y.withUnsafeBufferPointer { yb in
            fast.withUnsafeMutableBufferPointer { Kernels.reluBackwardMask($0, output: yb) }
            naive.withUnsafeMutableBufferPointer { Kernels.naiveReluBackwardMask($0, output: yb) }
        }
        XCTAssertEqual(fast, naive)
        var separate = [Float](repeating: 7, count: up.count)
        up.withUnsafeBufferPointer { g in y.withUnsafeBufferPointer { yb in
            separate.withUnsafeMutableBufferPointer { Kernels.reluBackward(g, output: yb, into: $0) }
        } }
        XCTAssertEqual(separate, naive)
    }

    func testColumnSumsMatchReferenceExactly() {
        var g = RandomGenerator(seed: 14)
        let a = Tensor.normal([129, 801], generator: &g)
        var fast = [Float](repeating: 0, count: 801), naive = [Float](repeating: 0, count: 801)
        a.withUnsafeBufferPointer { p in
            fast.withUnsafeMutableBufferPointer { Kernels.columnSums(p.baseAddress!, rows: 129, cols: 801, into: $0.baseAddress!) }
            naive.withUnsafeMutableBufferPointer { Kernels.naiveColumnSums(p.baseAddress!, rows: 129, cols: 801, into: $0.baseAddress!) }
        }
        XCTAssertEqual(fast, naive)  // same summation order: bit-identical
        XCTAssertEqual(a.sumRows().scalars, a.sum(axis: 0).scalars)
    }

    /// `reluBackwardColumns` on blocks of columns against the element-at-a-time reference, bit for bit, with NaN and
    /// -0; nothing outside the block changes, and its sums equal `columnSums` of the masked matrix.
    func testReLUBackwardOnColumnsMatchesReference() {
        var gen = RandomGenerator(seed: 16)
        let rows = 7, stride = 19
        var g = Tensor.normal([rows * stride], generator: &gen).scalars
        var y = Tensor.normal([rows * stride], generator: &gen).scalars
        g[2] = .nan; y[2] = 1         // a NaN gradient passes where the unit was active
        y[3] = .nan                   // a NaN output is not > 0: masked
        y[stride + 5] = -0.0; y[2 * stride + 6] = 0
        g[3 * stride + 7] = -0.0; y[3 * stride + 7] = 2
        for columns in [0..<stride, 3..<11, 18..<19, 5..<5] {
            var fast = [Float](repeating: 42, count: rows * stride), naive = fast
            var fastSums = [Float](repeating: 42, count: stride), naiveSums = fastSums
            g.withUnsafeBufferPointer { gb in y.withUnsafeBufferPointer { yb in
                Kernels.reluBackwardColumns(gb.baseAddress!, output: yb.baseAddress!, into: &fast, rows: rows, stride: stride,
                                            columns: columns, sums: &fastSums)
                Kernels.naiveReluBackwardColumns(gb.baseAddress!, output: yb.baseAddress!, into: &naive, rows: rows,
                                                 stride: stride, columns: columns, sums: &naiveSums)
            } }
            XCTAssertEqual(fast.map(\.bitPattern), naive.map(\.bitPattern), "\(columns)")
            XCTAssertEqual(fastSums.map(\.bitPattern), naiveSums.map(\.bitPattern), "\(columns)")
            for j in 0..<stride where !columns.contains(j) {   // nothing outside the block is touched
                XCTAssertEqual(fastSums[j], 42)
                for r in 0..<rows { XCTAssertEqual(fast[r * stride + j], 42) }
            }
            if columns.contains(2) { XCTAssertTrue(fast[2].isNaN) }
            if columns.contains(3) { XCTAssertEqual(fast[3], 0) }
        }
        // The sums equal `columnSums` of the masked matrix, bit for bit (same order).
        var masked = [Float](repeating: 0, count: rows * stride), sums = [Float](repeating: 0, count: stride)
        var reference = sums
        g.withUnsafeBufferPointer { gb in y.withUnsafeBufferPointer { yb in
            Kernels.reluBackwardColumns(gb.baseAddress!, output: yb.baseAddress!, into: &masked, rows: rows, stride: stride,
                                        columns: 0..<stride, sums: &sums)
        } }
        Kernels.columnSums(masked, rows: rows, cols: stride, into: &reference)
        XCTAssertEqual(sums.map(\.bitPattern), reference.map(\.bitPattern))
    }

    /// `fillRows` and `relu` on blocks of a strided matrix (the parts of a split product) against the element-at-a-time
    /// reference, bit for bit, with NaN, -0 and negatives; nothing outside the block changes.
    func testBiasAndReLUOnBlocksMatchReference() {
        var g = RandomGenerator(seed: 15)
        let rows = 9, cols = 13, stride = 16
        var start = Tensor.normal([rows * stride], generator: &g).scalars
        start[3] = .nan; start[stride + 4] = -0.0; start[2 * stride + 5] = -.infinity
        var bias = Tensor.normal([cols], generator: &g).scalars
        bias[6] = -0.0; bias[7] = .nan
        let blocks = [GEMM.Block(rows: 0..<rows, columns: 0..<cols), GEMM.Block(rows: 2..<7, columns: 0..<cols),
                      GEMM.Block(rows: 0..<rows, columns: 5..<11), GEMM.Block(rows: 4..<4, columns: 0..<cols)]
        for block in blocks {
            for withBias in [false, true] {
                var fast = start, naive = start
                bias.withUnsafeBufferPointer { b in
                    fast.withUnsafeMutableBufferPointer { c in
                        if withBias { Kernels.fillRows(c.baseAddress!, stride: stride, block: block, from: b.baseAddress!) }
                        Kernels.relu(c.baseAddress!, stride: stride, block: block)
                    }
                    naive.withUnsafeMutableBufferPointer { c in
                        Kernels.naiveFillRowsThenReLU(c.baseAddress!, stride: stride, block: block,
                                                      from: withBias ? b.baseAddress! : nil, relu: true)
                    }
                }
                XCTAssertEqual(fast.map(\.bitPattern), naive.map(\.bitPattern), "\(block) bias \(withBias)")
                for r in 0..<rows { for j in 0..<stride where !(block.rows.contains(r) && block.columns.contains(j)) {
                    XCTAssertEqual(fast[r * stride + j].bitPattern, start[r * stride + j].bitPattern)
                } }
            }
        }
        var negativeZero = [Float(-0.0), -1, .nan]
        negativeZero.withUnsafeMutableBufferPointer { Kernels.relu($0.baseAddress!, stride: 3, block: GEMM.Block(rows: 0..<1, columns: 0..<3)) }
        XCTAssertEqual(negativeZero[0].bitPattern, Float(-0.0).bitPattern)  // as torch.relu: -0 stays -0
        XCTAssertEqual(negativeZero[1], 0)
        XCTAssertTrue(negativeZero[2].isNaN)
    }
}
