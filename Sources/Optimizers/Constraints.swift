import Foundation
import TensorCore
import NeuralNet

/// Gradient and weight constraints.
public enum Constraints {
    /// Rescales all gradients together so their global L2 norm is at most `maximumNorm`, as
    /// `torch.nn.utils.clip_grad_norm_`: coefficient = min(1, maximumNorm / (norm + 1e-6)). Returns the norm before
    /// clipping.
    @discardableResult
    public static func clipGradientNorm(_ parameters: [Variable], maximumNorm: Float) -> Float {
        var total: Double = 0
        for p in parameters {
            guard let g = p.grad else { continue }
            g.withUnsafeBufferPointer { b in for v in b { total += Double(v) * Double(v) } }
        }
        let norm = Float(total.squareRoot())
        let coefficient = Swift.min(1, maximumNorm / (norm + 1e-6))
        if coefficient < 1 {
            for p in parameters where p.grad != nil { p.grad! *= coefficient }
        }
        return norm
    }

    /// The max-norm constraint of Hinton et al.'s dropout nets: each row of a weight `[out, in]` (the incoming
    /// weights of one unit) whose L2 norm exceeds `maximumNorm` is scaled back to norm `maximumNorm`.
    /// (`torch.renorm(w, p=2, dim=0, maxnorm=c)` does the same with c / (norm + 1e-7).)
    public static func applyMaxNorm(_ weight: Variable, maximumNorm: Float) {
        let rows = weight.shape[0], cols = weight.value.count / Swift.max(weight.shape[0], 1)
        weight.value.withUnsafeMutableBufferPointer { w in
            guard let base = w.baseAddress else { return }
            // Rows are independent: spread them over the threads when the matrix is large.
            let chunks = rows * cols >= 1 << 18 ? Swift.min(rows, 4 * ComputeThreads.count) : 1
            ComputeThreads.parallelFor(chunks: chunks) { c in
                for r in (c * rows / chunks)..<((c + 1) * rows / chunks) {
                    let row = base + r * cols
                    let norm = Float(rowSquaredNorm(row, count: cols).squareRoot())
                    if norm > maximumNorm {
                        let scale = maximumNorm / norm
                        for j in 0..<cols { row[j] *= scale }
                    }
                }
            }
        }
    }

    /// Sum of squares of `count` floats, accumulated in Double in 8 lanes (vectorised; the lane order differs from
    /// a sequential sum only in the Double rounding, far below Float precision).
    @inline(__always)
    static func rowSquaredNorm(_ p: UnsafeMutablePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>()
        var j = 0
        let raw = UnsafeRawPointer(p)
        while j + 8 <= count {
            let v = SIMD8<Double>(raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self))
            acc += v * v
            j += 8
        }
        var s = acc.sum()
        while j < count { s += Double(p[j]) * Double(p[j]); j += 1 }
        return s
    }

    /// Reference for `applyMaxNorm`: sequential Double sums, one row at a time.
    public static func naiveApplyMaxNorm(_ weight: Variable, maximumNorm: Float) {
        let rows = weight.shape[0], cols = weight.value.count / Swift.max(weight.shape[0], 1)
        weight.value.withUnsafeMutableBufferPointer { w in
            for r in 0..<rows {
                var s: Double = 0
                for j in 0..<cols { s += Double(w[r * cols + j]) * Double(w[r * cols + j]) }
                let norm = Float(s.squareRoot())
                if norm > maximumNorm {
                    let scale = maximumNorm / norm
                    for j in 0..<cols { w[r * cols + j] *= scale }
                }
            }
        }
    }
}
