import Foundation
import TensorCore

/// How a per-example loss is reduced over the batch.
public enum Reduction: String, Codable, Sendable {
    /// Mean over the batch (PyTorch's default `reduction='mean'`).
    case mean
    /// Sum over the batch.
    case sum
}

/// Row-wise, numerically stable softmax kernels on `[batch, classes]` logits (shared by losses and metrics).
public enum Softmax {
    /// log softmax(z / T) of each row: (z - max)/T - log(sum exp((z - max)/T)). Accumulates in Double.
    public static func logSoftmax(_ logits: Tensor, temperature: Float = 1) -> Tensor {
        precondition(logits.rank == 2, "logSoftmax expects [batch, classes], got \(logits.shape)")
        let rows = logits.shape[0], cols = logits.shape[1]
        let invT = 1 / temperature
        return Tensor(shape: logits.shape) { out in
            logits.withUnsafeBufferPointer { z in
                for r in 0..<rows {
                    let base = r * cols
                    var m = -Float.infinity
                    for j in 0..<cols { m = Swift.max(m, z[base + j]) }
                    var s: Float = 0
                    for j in 0..<cols {
                        let v = (z[base + j] - m) * invT
                        out[base + j] = v
                        s += Foundation.exp(v)
                    }
                    let logSum = Foundation.log(s)
                    for j in 0..<cols { out[base + j] -= logSum }
                }
            }
        }
    }

    /// softmax(z / T) of each row.
    public static func softmax(_ logits: Tensor, temperature: Float = 1) -> Tensor {
        logSoftmax(logits, temperature: temperature).exp()
    }
}

/// Checks labels against a class count, naming the offending value.
func validateLabels(_ labels: [Int], classes: Int, batch: Int) {
    precondition(labels.count == batch, "expected \(batch) labels, got \(labels.count)")
    for y in labels { precondition(y >= 0 && y < classes, "label \(y) out of range 0..<\(classes)") }
}

/// log softmax(z / T) along the last axis of `[batch, classes]` logits, differentiable.
/// Backward: dz = (g - softmax(z/T) * sum_j g_j) / T.
public func logSoftmax(_ logits: Variable, temperature: Float = 1) -> Variable {
    precondition(temperature > 0, "temperature must be > 0, got \(temperature)")
    let y = Softmax.logSoftmax(logits.value, temperature: temperature)
    let rows = logits.shape[0], cols = logits.shape[1]
    return record(y, [logits]) { g in
        [Tensor(shape: [rows, cols]) { out in
            g.withUnsafeBufferPointer { gb in
                y.withUnsafeBufferPointer { yb in
                    for r in 0..<rows {
                        let base = r * cols
                        var s: Float = 0
                        for j in 0..<cols { s += gb[base + j] }
                        for j in 0..<cols { out[base + j] = (gb[base + j] - Foundation.exp(yb[base + j]) * s) / temperature }
                    }
                }
            }
        }]
    }
}

/// Cross-entropy of integer labels against softmax(z / T), fused with its backward.
///
/// - logits: `[batch, classes]` raw scores (not probabilities); labels: `batch` class indices in `0..<classes`.
/// - Value: reduce_b( -log softmax(z_b / T)[y_b] ). With T = 1 and `.mean` this is PyTorch's
///   `F.cross_entropy(z, y)`; for other T it equals `F.cross_entropy(z / T, y)`.
/// - Gradient: dz = (softmax(z/T) - onehot(y)) / T, divided by the batch size for `.mean`.
public func crossEntropy(logits: Variable, labels: [Int], temperature: Float = 1, reduction: Reduction = .mean) -> Variable {
    precondition(logits.value.rank == 2, "crossEntropy expects [batch, classes] logits, got \(logits.shape)")
    precondition(temperature > 0, "temperature must be > 0, got \(temperature)")
    let rows = logits.shape[0], cols = logits.shape[1]
    validateLabels(labels, classes: cols, batch: rows)
    let logProbabilities = Softmax.logSoftmax(logits.value, temperature: temperature)
    var total: Double = 0
    logProbabilities.withUnsafeBufferPointer { lp in
        for r in 0..<rows { total -= Double(lp[r * cols + labels[r]]) }
    }
    let scale: Float = reduction == .mean ? 1 / Float(rows) : 1
    let value = Float(total) * scale
    return record(Tensor(scalar: value), [logits]) { g in
        let factor = g.scalar * scale / temperature
        return [Tensor(shape: [rows, cols]) { out in
            logProbabilities.withUnsafeBufferPointer { lp in
                for r in 0..<rows {
                    let base = r * cols
                    for j in 0..<cols { out[base + j] = Foundation.exp(lp[base + j]) * factor }
                    out[base + labels[r]] -= factor
                }
            }
        }]
    }
}

/// Cross-entropy of soft targets (probabilities, rows summing to 1) against softmax(z / T).
///
/// - logits: `[batch, classes]` raw scores; targets: `[batch, classes]` probabilities (treated as constants).
/// - Value: reduce_b( -sum_j p_bj log softmax(z_b / T)_j ). This is PyTorch's `F.cross_entropy(z / T, p)` with
///   probability targets; it exceeds `kl_div(..., reduction='batchmean')` by the targets' entropy.
/// - Gradient: dz = (softmax(z/T) - p) / T, divided by the batch size for `.mean`.
public func softCrossEntropy(logits: Variable, targets: Tensor, temperature: Float = 1, reduction: Reduction = .mean) -> Variable {
    precondition(logits.shape == targets.shape && logits.value.rank == 2,
                 "softCrossEntropy: logits \(logits.shape) and targets \(targets.shape) must both be [batch, classes]")
    precondition(temperature > 0, "temperature must be > 0, got \(temperature)")
    let rows = logits.shape[0], cols = logits.shape[1]
    let logProbabilities = Softmax.logSoftmax(logits.value, temperature: temperature)
    var total: Double = 0
    logProbabilities.withUnsafeBufferPointer { lp in
        targets.withUnsafeBufferPointer { p in
            for i in 0..<(rows * cols) where p[i] != 0 { total -= Double(p[i]) * Double(lp[i]) }
        }
    }
    let scale: Float = reduction == .mean ? 1 / Float(rows) : 1
    return record(Tensor(scalar: Float(total) * scale), [logits]) { g in
        let factor = g.scalar * scale / temperature
        return [Tensor(shape: [rows, cols]) { out in
            logProbabilities.withUnsafeBufferPointer { lp in
                targets.withUnsafeBufferPointer { p in
                    for i in 0..<(rows * cols) { out[i] = (Foundation.exp(lp[i]) - p[i]) * factor }
                }
            }
        }]
    }
}

/// Mean squared error, mean over all elements (PyTorch's `F.mse_loss`). d/dx = 2 (x - t) / n.
public func meanSquaredError(_ x: Variable, target: Tensor) -> Variable {
    precondition(x.shape == target.shape, "meanSquaredError: \(x.shape) vs target \(target.shape)")
    let diff = x.value - target
    let n = Float(diff.count)
    return record(Tensor(scalar: diff.squared().sum() / n), [x]) { g in [diff * (2 * g.scalar / n)] }
}
