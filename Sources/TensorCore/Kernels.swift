/// Hot elementwise kernels of the training step, each with the naive reference it must match (llm.c style; the
/// tests compare them).
public enum Kernels {
    // MARK: Dropout mask

    /// The 16-bit keep threshold for keep probability `keep`: an element is kept when its 16-bit uniform is below it,
    /// so the keep probability is `threshold / 65536` (within 2^-17 of `keep`).
    @inlinable public static func dropoutThreshold(keep: Float) -> UInt64 {
        UInt64((Double(keep) * 65536).rounded())
    }

    /// Inverted-dropout mask: element i is `scale` when kept, else 0.
    ///
    /// Draws: one 64-bit `nextUInt64()` per 4 elements (the last draw may be partly unused); element i uses bits
    /// 16*(i%4) ..< 16*(i%4)+16 of draw i/4 as a uniform integer u in 0..<65536 and is kept when
    /// u < `dropoutThreshold(keep:)`. A quarter of the draws of one uniform per element, and branch-free.
    public static func dropoutMask(_ out: UnsafeMutableBufferPointer<Float>, keep: Float, scale: Float,
                                   generator: inout RandomGenerator) {
        let n = out.count
        guard n > 0, let o = out.baseAddress else { return }
        let threshold = dropoutThreshold(keep: keep)
        let scaleBits = scale.bitPattern
        // Branch-free: `u < threshold ? scale : 0` compiled to a data-dependent branch per element, mispredicted at
        // random (6.6 % of a teacher epoch in perf). Both u and threshold are below 2^17, so u - threshold wraps
        // (top bit set) exactly when u < threshold; the top bit becomes an all-ones mask over scale's bits.
        @inline(__always) func masked(_ u: UInt64) -> Float {
            let keepMask = UInt32(truncatingIfNeeded: 0 &- ((u &- threshold) >> 63))
            return Float(bitPattern: scaleBits & keepMask)
        }
        var i = 0
        while i + 4 <= n {
            let r = generator.nextUInt64()
            o[i] = masked(r & 0xFFFF)
            o[i + 1] = masked((r >> 16) & 0xFFFF)
            o[i + 2] = masked((r >> 32) & 0xFFFF)
            o[i + 3] = masked(r >> 48)
            i += 4
        }
        if i < n {
            var r = generator.nextUInt64()
            while i < n { o[i] = masked(r & 0xFFFF); r >>= 16; i += 1 }
        }
    }

    /// Reference for `dropoutMask`: the same draws, one element at a time.
    public static func naiveDropoutMask(_ out: UnsafeMutableBufferPointer<Float>, keep: Float, scale: Float,
                                        generator: inout RandomGenerator) {
        let threshold = dropoutThreshold(keep: keep)
        var draw: UInt64 = 0
        for i in 0..<out.count {
            if i % 4 == 0 { draw = generator.nextUInt64() }
            let u = (draw >> (16 * UInt64(i % 4))) & 0xFFFF
            out[i] = u < threshold ? scale : 0
        }
    }

    // MARK: Bias and ReLU on a block of a layer's output (run by the thread that computes the block's product)

    /// Copies `values[j]` into element (i, j) of every row i of `block`, in a row-major matrix with row stride
    /// `stride` (`values` is indexed by column: a layer's bias).
    @inlinable
    public static func fillRows(_ c: UnsafeMutablePointer<Float>, stride: Int, block: GEMM.Block, from values: UnsafePointer<Float>) {
        let lo = block.columns.lowerBound, width = block.columns.count
        for r in block.rows { (c + r * stride + lo).update(from: values + lo, count: width) }
    }

    /// max(x, 0) in place over `block` of a row-major matrix with row stride `stride`, branch-free: x < 0 ? 0 : x,
    /// so NaN and -0 stay as they are (as PyTorch's relu).
    @inlinable
    public static func relu(_ c: UnsafeMutablePointer<Float>, stride: Int, block: GEMM.Block) {
        let lo = block.columns.lowerBound, hi = block.columns.upperBound
        for r in block.rows {
            let row = c + r * stride
            for j in lo..<hi { let v = row[j]; row[j] = v < 0 ? 0 : v }
        }
    }

    /// Reference for `fillRows` and `relu`: one element at a time, by (row, column).
    public static func naiveFillRowsThenReLU(_ c: UnsafeMutablePointer<Float>, stride: Int, block: GEMM.Block,
                                             from values: UnsafePointer<Float>?, relu: Bool) {
        for r in block.rows {
            for j in block.columns {
                if let values { c[r * stride + j] = values[j] }
                if relu && c[r * stride + j] < 0 { c[r * stride + j] = 0 }
            }
        }
    }

    // MARK: ReLU backward mask

    /// g[i] = y[i] > 0 ? g[i] : 0 in place.
    ///
    /// Both operands are loaded before the select: with `yp[i] > 0 ? gp[i] : 0` the load of `gp[i]` is conditional,
    /// LLVM cannot speculate it, and the loop compiled to scalar code with a data-dependent branch (mispredicted half
    /// the time on ReLU outputs): 6.7 % of a student training epoch in `perf`. Loaded first, it becomes a vector select.
    public static func reluBackwardMask(_ g: UnsafeMutableBufferPointer<Float>, output y: UnsafeBufferPointer<Float>) {
        precondition(g.count == y.count)
        guard let gp = g.baseAddress, let yp = y.baseAddress else { return }
        for i in 0..<g.count { let gi = gp[i], yi = yp[i]; gp[i] = yi > 0 ? gi : 0 }
    }

    /// out[i] = y[i] > 0 ? g[i] : 0 into a separate buffer (one pass, no copy-on-write copy of the upstream gradient).
    public static func reluBackward(_ g: UnsafeBufferPointer<Float>, output y: UnsafeBufferPointer<Float>,
                                    into out: UnsafeMutableBufferPointer<Float>) {
        precondition(g.count == y.count && out.count == g.count)
        guard let gp = g.baseAddress, let yp = y.baseAddress, let op = out.baseAddress else { return }
        for i in 0..<out.count { let gi = gp[i], yi = yp[i]; op[i] = yi > 0 ? gi : 0 }  // unconditional loads: see reluBackwardMask
    }

    /// `reluBackward` and `columnSums` for columns `columns` of row-major `[rows, stride]` matrices in one pass:
    /// out[r, j] = y[r, j] > 0 ? g[r, j] : 0 and sums[j] = the column sum of out, added row by row from 0 (the order
    /// of `columnSums`, so the same bits), for j in `columns`. A thread can take one block of columns (the units of a
    /// layer whose weight-gradient product it computes). Reference: `naiveReluBackwardColumns`.
    public static func reluBackwardColumns(_ g: UnsafePointer<Float>, output y: UnsafePointer<Float>,
                                           into out: UnsafeMutablePointer<Float>, rows: Int, stride: Int,
                                           columns: Range<Int>, sums: UnsafeMutablePointer<Float>) {
        let lo = columns.lowerBound, width = columns.count
        guard width > 0 else { return }
        let s = sums + lo
        s.update(repeating: 0, count: width)
        for r in 0..<rows {
            let gp = g + r * stride + lo, yp = y + r * stride + lo, op = out + r * stride + lo
            for j in 0..<width { let gj = gp[j], yj = yp[j]; let v = yj > 0 ? gj : 0; op[j] = v; s[j] += v }
        }
    }

    /// Reference for `reluBackwardColumns`: the mask element by element, then each column summed down its rows.
    public static func naiveReluBackwardColumns(_ g: UnsafePointer<Float>, output y: UnsafePointer<Float>,
                                                into out: UnsafeMutablePointer<Float>, rows: Int, stride: Int,
                                                columns: Range<Int>, sums: UnsafeMutablePointer<Float>) {
        for j in columns {
            var total: Float = 0
            for r in 0..<rows {
                let v: Float = y[r * stride + j] > 0 ? g[r * stride + j] : 0
                out[r * stride + j] = v
                total += v
            }
            sums[j] = total
        }
    }

    /// Reference for `reluBackwardMask` and `reluBackward`.
    public static func naiveReluBackwardMask(_ g: UnsafeMutableBufferPointer<Float>, output y: UnsafeBufferPointer<Float>) {
        for i in 0..<g.count where y[i] <= 0 { g[i] = 0 }
    }

    // MARK: Column sums (bias gradient)

    /// Column sums of a row-major `[rows, cols]` matrix, row by row (contiguous, vectorises), in Float.
    public static func columnSums(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: cols)
        for r in 0..<rows {
            let row = a + r * cols
            for j in 0..<cols { out[j] += row[j] }
        }
    }

    /// Reference for `columnSums`: one column at a time (strided), the same summation order.
    public static func naiveColumnSums(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        for j in 0..<cols {
            var s: Float = 0
            for r in 0..<rows { s += a[r * cols + j] }
            out[j] = s
        }
    }
}
