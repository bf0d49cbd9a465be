import CSparseKernels

extension SparseKernels {
    /// Number of elements of x (of its first `rows` rows, when given) that are not zero (NaN counts).
    public static func countNonzero(_ x: Tensor, rows limit: Int? = nil) -> Int {
        guard x.count > 0 else { return 0 }
        let cols = x.shape.last ?? 1, rows = Swift.min(x.count / Swift.max(1, cols), limit ?? Int.max)
        return x.withUnsafeBufferPointer { xb in
            guard let xp = xb.baseAddress else { return 0 }
            return Int(distill_sparse_count_nonzero(xp, 0, rows, cols, cols))
        }
    }

    /// A linear layer's weights packed once for inference (`distill_sparse_pack_weights`: blocks of 64 units, each
    /// transposed), multiplied by the products that skip zero inputs: on AVX-512 the grouped product
    /// (`groupedForward`, reference `naiveGroupedForward`), elsewhere the four-chain sparse product of
    /// `SparseKernels.forward` without its per-call transposition (`chainedForward`, reference
    /// `naiveLinearForward`, the same bits). A single row reads only the weights of its nonzero inputs (a hidden
    /// layer's activations after ReLU as much as image pixels). The weights are a copy: later changes to the source
    /// do not reach it.
    public final class PackedWeights: @unchecked Sendable {
        public let units: Int
        public let inputs: Int
        let packed: UnsafeMutablePointer<Float>

        /// Packs `weight` (`[out, in]`, PyTorch's layout).
        public init(_ weight: Tensor) {
            precondition(weight.rank == 2, "packed weights: \(weight.shape) should be [out, in]")
            units = weight.shape[0]
            inputs = weight.shape[1]
            let size = Int(distill_sparse_packed_size(units, inputs))
            packed = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, size) * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: Swift.max(1, size))
            weight.withUnsafeBufferPointer { w in
                guard let wp = w.baseAddress else { return }
                distill_sparse_pack_weights(wp, inputs, units, inputs, packed)
            }
        }

        deinit { packed.deallocate() }

        /// Rows prepared per round (their compressed form, or their groups' column lists and panels, live in the
        /// calling thread's scratch: about `rowsPerRound * in * 8` bytes).
        public static let rowsPerRound = 256

        /// Whether `forward` takes the row groups (one fma chain per output over its row's nonzeros, AVX-512), else
        /// the four-chain sparse product of `SparseKernels.forward` on the packed weights.
        public static var groupsRows: Bool { distill_sparse_grouped_path() != 0 }

        /// `act(x W^T + b)` for x `[rows, in]`, any density. On AVX-512, rows in groups of 6 (`groupedForward`:
        /// each weight vector loaded once for the group's rows; one chain per output, so an example's result does
        /// not depend on the batch it comes in); elsewhere the sparse product of `SparseKernels.forward` (four chains
        /// per output) without its per-call transposition. Either way: rows prepared (split over `threads`), then
        /// the units split over them (the grouped product: in vectors of 16, or the rows when a layer has fewer than
        /// 4 vectors per thread), each part keeping its share of the weights in its cache for the round's rows.
        public func forward(_ x: Tensor, bias: Tensor?, relu: Bool, threads: Int) -> Tensor {
            precondition(x.rank == 2 && x.shape[1] == inputs, "packed linear: input \(x.shape) does not match [rows, \(inputs)]")
            if let bias { precondition(bias.shape == [units], "packed linear: bias \(bias.shape) should be [\(units)]") }
            return PackedWeights.groupsRows ? groupedForward(x, bias: bias, relu: relu, threads: threads)
                : chainedForward(x, bias: bias, relu: relu, threads: threads)
        }

        /// Rows per group of the grouped product: at most 6 (the kernel's registers hold 6 rows x 64 units).
        public static let maximumGroupRows = 6

        /// The grouped product (any CPU: the portable loop where AVX-512 is missing), for tests and `forward`.
        /// `groupRows`: rows per group (1 to 6): fewer rows list fewer columns where inputs are mostly zero, more
        /// rows share each weight load.
        public func groupedForward(_ x: Tensor, bias: Tensor?, relu: Bool, threads: Int,
                                   groupRows: Int = PackedWeights.maximumGroupRows) -> Tensor {
            let rows = x.shape[0], cols = inputs, units = self.units
            let g6 = Swift.max(1, Swift.min(PackedWeights.maximumGroupRows, groupRows))
            let round = Swift.max(1, Swift.min(rows, PackedWeights.rowsPerRound))
            let maxGroups = (round + g6 - 1) / g6
            // Units split over the threads in vectors of 16 where there are at least 4 per thread; else the rows.
            let vectors = (units + 15) / 16
            let splitUnits = vectors >= 4 * threads
            let parts = Swift.max(1, Swift.min(threads, vectors))
            let ldi = padded(cols + 16), ldp = padded(cols + 16), stride = g6 * ldp
            // Scratch (4-byte elements, regions on 64 bytes): per group its column list and panel, then the groups'
            // row and column counts.
            let panelOffset = maxGroups * ldi, rowsOffset = panelOffset + maxGroups * stride
            let usedOffset = rowsOffset + padded(maxGroups), elements = usedOffset + padded(maxGroups)
            guard let raw = distill_sparse_thread_scratch(elements * 4) else {
                return PackedWeights.naiveGroupedForward(x, weight: unpacked(), bias: bias, relu: relu)
            }
            let ip = raw.bindMemory(to: Int32.self, capacity: elements)
            let pp = (raw + panelOffset * 4).bindMemory(to: Float.self, capacity: maxGroups * stride)
            let rp = ip + rowsOffset, up = ip + usedOffset
            let w = UnsafePointer(packed), bp = bias.map { UnsafePointer($0.storage.pointer) }
            return SparseKernels.rounds(of: x, units: units, round: round) { n, xr, yr in
                let groups = (n + g6 - 1) / g6
                let groupParts = Swift.min(threads, groups)
                ComputeThreads.onWorkers(parts: groupParts) { p in
                    for g in (p * groups / groupParts)..<((p + 1) * groups / groupParts) {
                        let count = Swift.min(g6, n - g * g6)
                        rp[g] = Int32(count)
                        distill_sparse_group_rows_fast(xr + g * g6 * cols, cols, count, cols, ip + g * ldi,
                                                       pp + g * stride, ldp, up + g)
                    }
                }
                if splitUnits {
                    // Each part its share of the units (whole vectors of 16) for all the round's groups.
                    ComputeThreads.onWorkers(parts: parts) { p in
                        let u0 = Swift.min(units, 16 * (p * vectors / parts))
                        let u1 = Swift.min(units, 16 * ((p + 1) * vectors / parts))
                        distill_sparse_linear_forward_grouped(groups, g6, rp, up, ip, ldi, pp, ldp, stride, w, cols, u0, u1,
                                                              bp, relu ? 1 : 0, yr, units)
                    }
                } else {
                    // Few units (an output layer): each part all of them for its share of the groups.
                    ComputeThreads.onWorkers(parts: groupParts) { p in
                        let g0 = p * groups / groupParts, g1 = (p + 1) * groups / groupParts
                        guard g1 > g0 else { return }
                        distill_sparse_linear_forward_grouped(g1 - g0, g6, rp + g0, up + g0, ip + g0 * ldi, ldi,
                                                              pp + g0 * stride, ldp, stride, w, cols, 0, units,
                                                              bp, relu ? 1 : 0, yr + g0 * g6 * units, units)
                    }
                }
            }
        }

        /// The four-chain sparse product on the packed weights (the AVX2 and portable paths).
        public func chainedForward(_ x: Tensor, bias: Tensor?, relu: Bool, threads: Int) -> Tensor {
            let rows = x.shape[0], cols = inputs, units = self.units
            let round = Swift.max(1, Swift.min(rows, PackedWeights.rowsPerRound))
            let blocks = (units + 63) / 64
            let parts = Swift.max(1, Swift.min(threads, blocks))
            guard let raw = distill_sparse_thread_scratch(compressedScratchElements(round: round, cols: cols) * 4) else {
                return naiveLinearForward(x, weight: unpacked(), bias: bias, relu: relu)
            }
            let w = UnsafePointer(packed), bp = bias.map { UnsafePointer($0.storage.pointer) }
            return SparseKernels.compressedRounds(x, units: units, round: round, parts: parts, scratch: raw) { p, n, ip, vp, cp, yr in
                let u0 = Swift.min(units, 64 * (p * blocks / parts))
                let u1 = Swift.min(units, 64 * ((p + 1) * blocks / parts))
                distill_sparse_linear_forward_packed(n, cols, ip, vp, cp, w, u0, u1, bp, relu ? 1 : 0, yr, units)
            }
        }

        /// Reference of the grouped product: per output one fma chain from +0 over the input's nonzero columns
        /// (NaN counts) in increasing order, plus the bias, then ReLU (for finite weights what the groups compute).
        public static func naiveGroupedForward(_ x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool) -> Tensor {
            let rows = x.shape[0], cols = x.shape[1], units = weight.shape[0]
            let xs = x.scalars, ws = weight.scalars, bs = bias?.scalars
            var y = [Float](repeating: 0, count: rows * units)
            for r in 0..<rows {
                for u in 0..<units {
                    var c: Float = 0
                    for j in 0..<cols where xs[r * cols + j] != 0 { c = c.addingProduct(xs[r * cols + j], ws[u * cols + j]) }
                    if let bs { c = c + bs[u] }
                    y[r * units + u] = relu && c < 0 ? 0 : c
                }
            }
            return Tensor(shape: [rows, units], scalars: y)
        }

        /// The weights back in `[out, in]` (for the reference path).
        public func unpacked() -> Tensor {
            Tensor(shape: [units, inputs]) { out in
                for u in 0..<units {
                    for j in 0..<inputs { out[u * inputs + j] = packed[(u / 64) * 64 * inputs + j * 64 + u % 64] }
                }
            }
        }
    }
}
