import CSparseKernels

/// The forward pass of a linear layer whose input is mostly zeros, multiplying only the nonzero inputs
/// (`CSparseKernels`, AVX-512 or AVX2). MNIST's pixels are about 19 % nonzero, so the first layer of a network on images
/// does about a fifth of the multiply-adds of the dense product, but its loads bound it: measured per product (one
/// core) the forward pass takes 0.46x the time of OpenBLAS's sgemm on a Xeon with AVX-512 and 0.40x on a Zen 3 EPYC
/// with AVX2, the weight gradient 0.50x and 0.44x (Benchmarks.md, "What the kernels buy").
///
/// Each output is four fma chains from 0 over the row's nonzero inputs (chain c takes the k-th nonzero for
/// k = c mod 4, in increasing column order), summed as (c0 + c1) + (c2 + c3), plus the bias, then ReLU: the same bits
/// whatever the thread count or machine (`naiveLinearForward` is the reference). Against the dense product the
/// summation order differs (a few units in the last place), and a zero input times an infinite or NaN weight
/// contributes nothing instead of NaN.
public enum SparseKernels {
    /// Whether `linearForward` may take the sparse path (default true). `--dense-inputs` switches it off for a whole
    /// run; tests and benchmarks switch it to compare. Set it before any product runs, not while one does.
    nonisolated(unsafe) public static var enabled = true

    /// Each kernel on its own (default true; `enabled` switches both): `distill bench --alternate` switches one on and
    /// off every few steps to time what it saves within one process. Set them between steps, not while one runs.
    nonisolated(unsafe) public static var forwardEnabled = true
    nonisolated(unsafe) public static var gradientEnabled = true

    /// Whether `linearForward` takes the sparse path when the input qualifies: `enabled` on a CPU with the vector path.
    /// A run's results depend on it (the summation order differs from BLAS's), so runs record it
    /// (`TrainingConfiguration.inputKernels`).
    public static var active: Bool { enabled && isFast }

    /// The largest fraction of nonzero inputs for which the sparse path is taken. The sparse product's time grows
    /// with the nonzeros; on the teacher phase (hidden layers 10-30 % nonzero under dropout) limits of 0.2, 0.3 and
    /// 0.4 were timed and 0.3 kept (Benchmarks.md, sparse forward kernel).
    public static let densityLimit = 0.3

    /// The fewest units (weight rows) for which the weight gradient takes the sparse path: compressing the input by
    /// columns costs about 60 us a batch, which the sparse product repays at about 0.6 us per unit of 1,200 inputs
    /// (a 10-unit output layer took 1.3-1.9x the dense product's time; Benchmarks.md, sparse weight gradient).
    public static let minimumGradientUnits = 128

    /// The fewest rows for which the sparse path is taken: each block of 64 units is transposed once per call,
    /// which a handful of rows does not repay.
    public static let minimumRows = 32

    /// Rows compressed and multiplied per round: one training batch; bounds the scratch to 2 x 128 x `in` floats
    /// (rounds of 1024 rows were no faster for inference).
    public static let rowsPerRound = 128

    /// Whether this CPU runs a vector path (AVX-512, or AVX2 with FMA). Elsewhere `linearForward` always uses BLAS.
    public static var isFast: Bool { distill_sparse_fast_path() != 0 }

    /// The vector path the kernels take here: "AVX-512", "AVX2" or nil (none: the dense product is used).
    public static var vectorPath: String? { pathName(Int(distill_sparse_fast_path())) }

    static func pathName(_ level: Int) -> String? { level >= 2 ? "AVX-512" : level == 1 ? "AVX2" : nil }

    /// The paths this CPU can run, narrowest first: 0 (portable), then 1 (AVX2) and 2 (AVX-512) where supported.
    /// Every path computes the same bits; tests run each (`withPathLimit`).
    public static var availablePaths: [Int] { Array(0...Int(distill_sparse_cpu_path())) }

    /// Runs `body` with the kernels capped at path `limit` (0 portable, 1 AVX2, 2 AVX-512), then lifts the cap.
    /// For tests: no product may run on another thread meanwhile.
    public static func withPathLimit<T>(_ limit: Int, _ body: () throws -> T) rethrows -> T {
        distill_sparse_limit_path(Int32(limit))
        defer { distill_sparse_limit_path(2) }
        return try body()
    }

    /// `y = act(x W^T + b)` by the sparse kernels when they apply (enabled, a vector path, at least `minimumRows` rows,
    /// at most `densityLimit` of x nonzero); nil otherwise, for the caller to use the dense product.
    /// x: `[rows, in]`, weight: `[out, in]`, bias: `[out]`.
    /// `inputIsSparse`: `appliesTo(x)` when the caller has it already (`linear` asks once for the forward pass and
    /// the weight gradient), saving the count.
    public static func linearForward(_ x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool,
                                     inputIsSparse: Bool? = nil) -> Tensor? {
        guard weight.rank == 2, x.rank == 2, x.shape[1] == weight.shape[1], weight.shape[0] > 0,
              forwardEnabled, inputIsSparse ?? appliesTo(x) else { return nil }
        return forward(x, weight: weight, bias: bias, relu: relu, threads: ComputeThreads.count)
    }

    /// Whether the sparse kernels take an input `x` (`[rows, in]`): `active`, at least `minimumRows` rows, at most
    /// `densityLimit` of it nonzero (counted, about 10 us for a batch of images).
    public static func appliesTo(_ x: Tensor) -> Bool {
        guard active, x.rank == 2 else { return false }
        let rows = x.shape[0], cols = x.shape[1]
        guard rows >= minimumRows, cols > 0 else { return false }
        let nonzeros = x.withUnsafeBufferPointer { xb in
            distill_sparse_count_nonzero(xb.baseAddress!, 0, rows, cols, cols)
        }
        return Double(nonzeros) <= densityLimit * Double(rows * cols)
    }

    /// The sparse product without the applicability checks (any CPU: the portable path where no vector path runs).
    /// Rows are compressed with the rows split over `threads`, then multiplied with the units split over them.
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, threads: Int) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "sparse linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
        let rows = x.shape[0], cols = x.shape[1], units = weight.shape[0]
        if let bias { precondition(bias.shape == [units], "sparse linear: bias \(bias.shape) should be [\(units)]") }
        let round = Swift.max(1, Swift.min(rows, rowsPerRound))
        // Units in parts of whole 16-unit blocks; rows compressed in as many parts.
        let parts = Swift.max(1, Swift.min(threads, (units + 15) / 16))
        // Scratch: the compressed rows, then one transposed weight block per part.
        let blockOffset = compressedScratchElements(round: round, cols: cols)
        guard let raw = distill_sparse_thread_scratch((blockOffset + parts * 64 * cols) * 4) else {
            // Out of memory: the reference gives the same bits.
            return naiveLinearForward(x, weight: weight, bias: bias, relu: relu)
        }
        let sp = (raw + blockOffset * 4).bindMemory(to: Float.self, capacity: parts * 64 * cols)
        let blocks = (units + 15) / 16
        return weight.withUnsafeBufferPointer { wb in
            guard let wp = wb.baseAddress else { return naiveLinearForward(x, weight: weight, bias: bias, relu: relu) }
            let bp = bias.map { UnsafePointer($0.storage.pointer) }
            return compressedRounds(x, units: units, round: round, parts: parts, scratch: raw) { p, n, ip, vp, cp, yr in
                let u0 = Swift.min(units, 16 * (p * blocks / parts))
                let u1 = Swift.min(units, 16 * ((p + 1) * blocks / parts))
                distill_sparse_linear_forward(n, cols, ip, vp, cp, wp, cols, u0, u1, bp, relu ? 1 : 0, yr, units,
                                              sp + p * 64 * cols)
            }
        }
    }

    /// `[rows, units]` from x (`[rows, cols]`) in rounds of at most `round` rows: `body(n, x, y)` for each round's
    /// `n` rows of x and of the result.
    static func rounds(of x: Tensor, units: Int, round: Int,
                       _ body: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Tensor {
        let rows = x.shape[0], cols = x.shape[1]
        return Tensor(shape: [rows, units]) { out in
            guard let y = out.baseAddress else { return }
            x.withUnsafeBufferPointer { xb in
                guard let xp = xb.baseAddress else { return }
                var r0 = 0
                while r0 < rows {
                    let n = Swift.min(round, rows - r0)
                    body(n, xp + r0 * cols, y + r0 * units)
                    r0 += n
                }
            }
        }
    }

    /// 4-byte elements of the compressed rows of a round (column indices, values, counts; each region starting on 64
    /// bytes) at the start of the scratch `compressedRounds` takes.
    static func compressedScratchElements(round: Int, cols: Int) -> Int {
        2 * padded(round * cols) + padded(round)
    }

    static func padded(_ n: Int) -> Int { (n + 15) / 16 * 16 }

    /// `rounds(of:...)` with each round's rows compressed into `scratch` (the calling thread's
    /// `distill_sparse_thread_scratch`: steady-state calls allocate nothing, whatever runs beside them), split over
    /// `parts` threads, then `product(part, n, index, value, count, y)` on `parts` threads.
    static func compressedRounds(_ x: Tensor, units: Int, round: Int, parts: Int, scratch raw: UnsafeMutableRawPointer,
                                 product: (Int, Int, UnsafePointer<Int32>, UnsafePointer<Float>, UnsafePointer<Int32>,
                                           UnsafeMutablePointer<Float>) -> Void) -> Tensor {
        let cols = x.shape[1]
        let ip = raw.bindMemory(to: Int32.self, capacity: round * cols)
        let vp = (raw + padded(round * cols) * 4).bindMemory(to: Float.self, capacity: round * cols)
        let cp = (raw + 2 * padded(round * cols) * 4).bindMemory(to: Int32.self, capacity: round)
        return rounds(of: x, units: units, round: round) { n, xr, yr in
            let rowParts = Swift.min(parts, n)
            ComputeThreads.onWorkers(parts: rowParts) { p in
                distill_sparse_compress_rows(xr, p * n / rowParts, (p + 1) * n / rowParts, cols, cols, ip, vp, cp)
            }
            ComputeThreads.onWorkers(parts: parts) { p in product(p, n, ip, vp, cp, yr) }
        }
    }

    /// Reference: the contract above, one output at a time, in plain Swift.
    public static func naiveLinearForward(_ x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool) -> Tensor {
        let rows = x.shape[0], cols = x.shape[1], units = weight.shape[0]
        let xs = x.scalars, ws = weight.scalars, bs = bias?.scalars
        var y = [Float](repeating: 0, count: rows * units)
        for r in 0..<rows {
            for u in 0..<units {
                var chains: [Float] = [0, 0, 0, 0]
                var k = 0
                for j in 0..<cols {
                    let v = xs[r * cols + j]
                    guard v != 0 else { continue }   // -0 is skipped; NaN != 0, so it is kept
                    chains[k & 3] = chains[k & 3].addingProduct(v, ws[u * cols + j])
                    k += 1
                }
                var o = (chains[0] + chains[1]) + (chains[2] + chains[3])
                if let bs { o = o + bs[u] }
                y[r * units + u] = relu && o < 0 ? 0 : o
            }
        }
        return Tensor(shape: [rows, units], scalars: y)
    }

    // MARK: Weight gradient

    /// Whether the weight gradient of a layer with `units` outputs takes the sparse path for its input x:
    /// `appliesTo(x)` (or `inputIsSparse`, its value) and at least `minimumGradientUnits` units.
    public static func gradientAppliesTo(_ x: Tensor, units: Int, inputIsSparse: Bool? = nil) -> Bool {
        gradientEnabled && units >= minimumGradientUnits && (inputIsSparse ?? appliesTo(x))
    }

    /// `dW = G^T x` (or `dW += G^T x`) of a linear layer whose input x is mostly zeros, by the sparse kernels, with
    /// no applicability check (callers ask `appliesTo(x)`; any CPU: the portable path where no vector path runs).
    ///
    /// x (`[rows, in]`) is compressed by columns (16 at a time, split over `threads`), then each part computes the
    /// weight rows of its units (whole blocks of 16): per output one fma chain from +0 over the rows where x is
    /// nonzero, in row order, then added to dW (accumulate) or stored. `before(units)` runs on each part first, for
    /// the units it is about to compute (the ReLU mask of G's columns). OpenBLAS's SkylakeX sgemm (AVX-512 CPUs) sums in
    /// the same order, so the bits match its dense product there (`Scripts/sparse_input_probe.c` counts them); its Zen
    /// kernel sums in another (every row differs in the last bits); MKL's order is not checked (its 10-epoch yardstick gave the same 163 errors before and after).
    /// - g: `[rows, units]` with row stride `ldg`; dw: `[units, in]`, row stride `in`.
    public static func weightGradient(g: UnsafePointer<Float>, ldg: Int, x: Tensor, units: Int,
                                      into dw: UnsafeMutablePointer<Float>, accumulate: Bool, threads: Int,
                                      before: ((Range<Int>) -> Void)? = nil) {
        precondition(x.rank == 2, "sparse weight gradient: input \(x.shape) should be [rows, in]")
        let rows = x.shape[0], cols = x.shape[1]
        guard units > 0, cols > 0 else { return }
        let columnBlocks = (cols + 15) / 16, unitBlocks = (units + 15) / 16
        let columnParts = Swift.max(1, Swift.min(threads, columnBlocks))
        let parts = Swift.max(1, Swift.min(threads, unitBlocks))
        func padded(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        // Scratch (4-byte elements, regions on 64 bytes): each column's row indices and values, the counts, and one
        // 16-column strip (transposed) per compressing part, from the calling thread's own buffer.
        let valueOffset = padded(rows * cols), countOffset = 2 * padded(rows * cols)
        let stripOffset = countOffset + padded(cols), elements = stripOffset + columnParts * 16 * padded(rows)
        x.withUnsafeBufferPointer { xb in
            guard let xp = xb.baseAddress else { return }
            guard let raw = distill_sparse_thread_scratch(elements * 4) else {
                // Out of memory: the reference's loop gives the same bits.
                naiveWeightGradient(g: g, ldg: ldg, x: xp, rows: rows, cols: cols, units: units, into: dw,
                                    accumulate: accumulate, before: before)
                return
            }
            let ip = raw.bindMemory(to: Int32.self, capacity: rows * cols)
            let vp = (raw + valueOffset * 4).bindMemory(to: Float.self, capacity: rows * cols)
            let cp = (raw + countOffset * 4).bindMemory(to: Int32.self, capacity: cols)
            let sp = (raw + stripOffset * 4).bindMemory(to: Float.self, capacity: columnParts * 16 * padded(rows))
            ComputeThreads.onWorkers(parts: columnParts) { p in
                let j0 = Swift.min(cols, 16 * (p * columnBlocks / columnParts))
                let j1 = Swift.min(cols, 16 * ((p + 1) * columnBlocks / columnParts))
                distill_sparse_compress_columns(xp, rows, cols, j0, j1, sp + p * 16 * padded(rows), ip, vp, cp)
            }
            ComputeThreads.onWorkers(parts: parts) { p in
                let u0 = Swift.min(units, 16 * (p * unitBlocks / parts))
                let u1 = Swift.min(units, 16 * ((p + 1) * unitBlocks / parts))
                guard u1 > u0 else { return }
                before?(u0..<u1)
                distill_sparse_weight_gradient(rows, ip, vp, cp, 0, cols, g, ldg, u0, u1, accumulate ? 1 : 0, dw, cols)
            }
        }
    }

    /// `weightGradient` on tensors: `G^T x` in a new tensor, or added to a copy of `accumulatingInto` (`[units, in]`).
    public static func weightGradient(_ g: Tensor, x: Tensor, accumulatingInto base: Tensor? = nil,
                                      threads: Int) -> Tensor {
        if var out = base {
            addWeightGradient(g, x: x, to: &out, threads: threads)
            return out
        }
        let units = checkedUnits(g, x: x)
        // Every element is stored (accumulate off), so the buffer needs no zeroing.
        return Tensor(shape: [units, x.shape[1]]) { ob in
            g.withUnsafeBufferPointer { gb in
                guard let gp = gb.baseAddress, let op = ob.baseAddress else { return }
                weightGradient(g: gp, ldg: units, x: x, units: units, into: op, accumulate: false, threads: threads)
            }
        }
    }

    /// `dw += G^T x` in place (`linear`'s backward accumulating into a weight's existing gradient).
    public static func addWeightGradient(_ g: Tensor, x: Tensor, to dw: inout Tensor, threads: Int) {
        let units = checkedUnits(g, x: x)
        precondition(dw.shape == [units, x.shape[1]],
                     "sparse weight gradient: dW \(dw.shape) should be [\(units), \(x.shape[1])]")
        g.withUnsafeBufferPointer { gb in
            dw.withUnsafeMutableBufferPointer { ob in
                guard let gp = gb.baseAddress, let op = ob.baseAddress else { return }
                weightGradient(g: gp, ldg: units, x: x, units: units, into: op, accumulate: true, threads: threads)
            }
        }
    }

    private static func checkedUnits(_ g: Tensor, x: Tensor) -> Int {
        precondition(g.rank == 2 && x.rank == 2 && g.shape[0] == x.shape[0],
                     "sparse weight gradient: G \(g.shape) and input \(x.shape) need the same rows")
        return g.shape[1]
    }

    /// Reference for `weightGradient`: the contract above, one output at a time, in plain Swift.
    public static func naiveWeightGradient(_ g: Tensor, x: Tensor, accumulatingInto base: Tensor? = nil) -> Tensor {
        let units = g.shape[1], cols = x.shape[1]
        var out = base ?? Tensor(shape: [units, cols], repeating: 0)
        g.withUnsafeBufferPointer { gb in
            x.withUnsafeBufferPointer { xb in
                out.withUnsafeMutableBufferPointer { ob in
                    guard let gp = gb.baseAddress, let xp = xb.baseAddress, let op = ob.baseAddress else { return }
                    naiveWeightGradient(g: gp, ldg: units, x: xp, rows: x.shape[0], cols: cols, units: units,
                                        into: op, accumulate: base != nil, before: nil)
                }
            }
        }
        return out
    }

    static func naiveWeightGradient(g: UnsafePointer<Float>, ldg: Int, x: UnsafePointer<Float>, rows: Int, cols: Int,
                                    units: Int, into dw: UnsafeMutablePointer<Float>, accumulate: Bool,
                                    before: ((Range<Int>) -> Void)?) {
        before?(0..<units)
        for u in 0..<units {
            for j in 0..<cols {
                var s: Float = 0
                for r in 0..<rows {
                    let v = x[r * cols + j]
                    guard v != 0 else { continue }   // -0 is skipped; NaN != 0, so it is kept
                    s = s.addingProduct(v, g[r * ldg + u])
                }
                dw[u * cols + j] = accumulate ? dw[u * cols + j] + s : s
            }
        }
    }
}
