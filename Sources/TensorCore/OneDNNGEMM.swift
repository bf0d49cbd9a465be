import Foundation
import CDNNL

/// oneDNN's sgemm (`dnnl_sgemm`: JIT kernels for the widest vectors the CPU has), opened at run time when
/// Debian's `libdnnl2` is installed. Inference uses it for dense layers: on this project's Zen 5 machine, where the
/// environment holds OpenBLAS to its AVX2 kernels (`OPENBLAS_CORETYPE=Haswell`), a 1000 x 800 x 800 product took
/// 2.58 ms on 2 threads against OpenBLAS's 5.02 ms (497 against 255 GFLOP/s; one thread on 500 rows 2.5 against
/// 4.7 ms). Training keeps the BLAS library (runs record it; the two differ in the last bits of their sums).
public enum OneDNNGEMM {
    /// Whether oneDNN's sgemm loaded (`DISTILL_INFERENCE_GEMM=blas` turns it off).
    public static let isAvailable: Bool = {
        if ProcessInfo.processInfo.environment["DISTILL_INFERENCE_GEMM"]?.lowercased() == "blas" { return false }
        return distill_dnnl_gemm_load() != 0
    }()

    /// `y = act(x W^T + b)` for x `[rows, in]`, weight `[out, in]`, bias `[out]` (nil: none): the rows split over
    /// `threads` helpers, each one single-threaded oneDNN call on its rows after the bias is copied into them, then
    /// ReLU on them while they are in its cache. nil when oneDNN is not available or a call fails.
    public static func linearForward(_ x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, threads: Int) -> Tensor? {
        guard isAvailable else { return nil }
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
        let rows = x.shape[0], units = weight.shape[0], inputs = weight.shape[1]
        if let bias { precondition(bias.shape == [units], "linear: bias \(bias.shape) should be [\(units)]") }
        // Parts of at least 16 rows (a small product on one thread beats the hand-off).
        let parts = Swift.max(1, Swift.min(threads, rows / 16))
        var failed = false
        let y = Tensor(shape: [rows, units]) { out in
            guard let yp = out.baseAddress else { return }
            x.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let xp = xb.baseAddress, let wp = wb.baseAddress else { return }
                    let bp = bias.map { UnsafePointer($0.storage.pointer) }
                    var status = [Int32](repeating: 0, count: parts)
                    status.withUnsafeMutableBufferPointer { status in
                        ComputeThreads.onWorkers(parts: parts) { p in
                            let r0 = p * rows / parts, r1 = (p + 1) * rows / parts
                            guard r1 > r0 else { return }
                            let c = yp + r0 * units
                            if let bp { for r in 0..<(r1 - r0) { (c + r * units).update(from: bp, count: units) } }
                            status[p] = distill_dnnl_sgemm(0, 1, r1 - r0, units, inputs, 1, xp + r0 * inputs, inputs, wp, inputs,
                                                           bp == nil ? 0 : 1, c, units)
                            if relu { Kernels.relu(c, stride: units, block: GEMM.Block(rows: 0..<(r1 - r0), columns: 0..<units)) }
                        }
                    }
                    failed = status.contains { $0 != 0 }
                }
            }
        }
        return failed ? nil : y
    }
}
