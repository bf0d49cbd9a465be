import CSparseKernels

extension SparseKernels {
    /// Number of elements of x that are not zero (NaN counts).
    public static func countNonzero(_ x: Tensor) -> Int {
        guard x.count > 0 else { return 0 }
        let cols = x.shape.last ?? 1, rows = x.count / Swift.max(1, cols)
        return x.withUnsafeBufferPointer { xb in
            guard let xp = xb.baseAddress else { return 0 }
            return Int(distill_sparse_count_nonzero(xp, 0, rows, cols, cols))
        }
    }

    /// A linear layer's weights packed once for the sparse product (`distill_sparse_pack_weights`: blocks of 64
    /// units, each transposed), for inference: `forward` skips the transposition that `SparseKernels.forward` does
    /// per call and per 128 rows, and a single row reads only the weights of its nonzero inputs (a hidden layer's
    /// activations after ReLU as much as image pixels). Same contract and bits as `SparseKernels.forward`
    /// (`naiveLinearForward` is the reference). The weights are a copy: later changes to the source do not reach it.
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

        /// Rows compressed per round (the compressed rows of a round live in the calling thread's scratch:
        /// `rowsPerRound * in * 8` bytes).
        public static let rowsPerRound = 256

        /// `act(x W^T + b)` for x `[rows, in]`, any density: rows compressed (split over `threads`), then the units
        /// split over them in whole blocks of 64 (each part keeps its share of the weights in its cache for all the
        /// round's rows).
        public func forward(_ x: Tensor, bias: Tensor?, relu: Bool, threads: Int) -> Tensor {
            precondition(x.rank == 2 && x.shape[1] == inputs, "packed linear: input \(x.shape) does not match [rows, \(inputs)]")
            if let bias { precondition(bias.shape == [units], "packed linear: bias \(bias.shape) should be [\(units)]") }
            let rows = x.shape[0], cols = inputs
            let round = Swift.max(1, Swift.min(rows, PackedWeights.rowsPerRound))
            let blocks = (units + 63) / 64
            let parts = Swift.max(1, Swift.min(threads, blocks))
            func padded(_ n: Int) -> Int { (n + 15) / 16 * 16 }
            let valueOffset = padded(round * cols), countOffset = 2 * padded(round * cols)
            let elements = countOffset + padded(round)
            guard let raw = distill_sparse_thread_scratch(elements * 4) else {
                return naiveLinearForward(x, weight: unpacked(), bias: bias, relu: relu)
            }
            let ip = raw.bindMemory(to: Int32.self, capacity: elements)
            let vp = (raw + valueOffset * 4).bindMemory(to: Float.self, capacity: round * cols)
            let cp = (raw + countOffset * 4).bindMemory(to: Int32.self, capacity: round)
            let w = UnsafePointer(packed), units = self.units
            return Tensor(shape: [rows, units]) { out in
                guard let y = out.baseAddress else { return }
                x.withUnsafeBufferPointer { xb in
                    guard let xp = xb.baseAddress else { return }
                    let bp = bias.map { UnsafePointer($0.storage.pointer) }
                    var r0 = 0
                    while r0 < rows {
                        let n = Swift.min(round, rows - r0)
                        let xr = xp + r0 * cols, yr = y + r0 * units
                        if parts == 1 {
                            distill_sparse_compress_rows(xr, 0, n, cols, cols, ip, vp, cp)
                            distill_sparse_linear_forward_packed(n, cols, ip, vp, cp, w, 0, units, bp, relu ? 1 : 0, yr, units)
                        } else {
                            let rowParts = Swift.min(parts, n)
                            ComputeThreads.onWorkers(parts: rowParts) { p in
                                distill_sparse_compress_rows(xr, p * n / rowParts, (p + 1) * n / rowParts, cols, cols, ip, vp, cp)
                            }
                            ComputeThreads.onWorkers(parts: parts) { p in
                                let u0 = Swift.min(units, 64 * (p * blocks / parts))
                                let u1 = Swift.min(units, 64 * ((p + 1) * blocks / parts))
                                distill_sparse_linear_forward_packed(n, cols, ip, vp, cp, w, u0, u1, bp, relu ? 1 : 0, yr, units)
                            }
                        }
                        r0 += n
                    }
                }
            }
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
