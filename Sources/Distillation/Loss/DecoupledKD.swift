import Foundation
import NeuralNet
import TensorCore

/// Decoupled knowledge distillation (DKD; Zhao, Cui, Song, Qiu and Liang, "Decoupled Knowledge Distillation",
/// CVPR 2022), fused with its backward: one pass over each row computes the value and the gradient.
///
/// Inputs:
/// - `studentLogits`: `[B, C]` raw student scores z_s (C >= 2); the only input that receives a gradient.
/// - `teacherLogits`: `[B, C]` raw teacher scores z_t (logits, not probabilities). The teacher gets no gradient.
/// - `labels`: `B` target classes y in `0..<C`.
/// - `alpha`, `beta`: the weights of the two parts; `temperature` T > 0.
///
/// With q = softmax(z_s / T) and p = softmax(z_t / T) per row, the classical KD term splits (eq. 4 of the paper) into
///
/// - TCKD, target-class KD: the KL divergence of the binary distributions b = (p_y, 1 - p_y) of the target class
///   against all others, KL(b_t || b_s) = p_y log(p_y / q_y) + (1 - p_y) log((1 - p_y) / (1 - q_y));
/// - NCKD, non-target-class KD: the KL divergence of the distributions among the non-target classes,
///   KL(p^ || q^) = sum_{j != y} p^_j log(p^_j / q^_j), where q^_j = q_j / (1 - q_y) = softmax over {j != y} of
///   z_s / T (and p^ likewise).
///
/// Value (batch means, both parts scaled by T^2 as in the reference implementation, mdistiller's `dkd_loss`):
///
///     tckd = T^2 * mean_b KL(b_t || b_s),   nckd = T^2 * mean_b KL(p^ || q^),   loss = alpha * tckd + beta * nckd
///
/// Gradient, with s = z_s / T (the T^2 scale and the chain rule through z_s / T leave T / B):
///
///     dL/dz_s,y = (T / B) * alpha * (q_y - p_y)
///     dL/dz_s,j = (T / B) * (alpha * q^_j (p_y - q_y) + beta * (q^_j - p^_j))      for j != y
///
/// Each row's gradient sums to zero (a softmax loss does not see a shift of the logits).
///
/// The non-target distributions are the exact ones: the softmax over the C - 1 non-target classes. mdistiller
/// computes them as softmax(z / T - 1000 * onehot(y)), whose value differs from the exact one by a term of order
/// exp(z_y / T - 1000 - max_{j != y} z_j / T) (none at ordinary logits, but not bounded for logits that differ by
/// about 1000 T) and whose gradient leaks that much onto the target class; the exact form has no target-class NCKD
/// gradient. All probabilities come from log-sum-exps in Double (log q_y = s_y - lse(s),
/// log(1 - q_y) = lse_{j != y}(s) - lse(s), log q^_j = s_j - lse_{j != y}(s)), so a confident row (q_y or 1 - q_y
/// below the Float range) still gives finite values and gradients.
///
/// The returned `tckd` and `nckd` are the scaled parts above (unweighted), in Double; `loss` holds the Float total.
/// Shape, label and temperature problems are programmer errors (preconditions naming the shapes).
public func decoupledKDLoss(studentLogits: Variable, teacherLogits: Tensor, labels: [Int], alpha: Float, beta: Float,
                            temperature: Float) -> (loss: Variable, tckd: Double, nckd: Double) {
    let z = studentLogits.value
    precondition(z.rank == 2, "decoupledKDLoss: student logits must be [batch, classes], got \(z.shape)")
    precondition(teacherLogits.shape == z.shape,
                 "decoupledKDLoss: teacher logits \(teacherLogits.shape) must match student logits \(z.shape)")
    let rows = z.shape[0], cols = z.shape[1]
    precondition(rows > 0, "decoupledKDLoss: empty batch, shape \(z.shape)")
    precondition(cols >= 2, "decoupledKDLoss: needs at least 2 classes (a non-target class), shape \(z.shape)")
    precondition(labels.count == rows, "decoupledKDLoss: expected \(rows) labels, got \(labels.count)")
    for y in labels { precondition(y >= 0 && y < cols, "decoupledKDLoss: label \(y) out of range 0..<\(cols)") }
    let t = Double(temperature)
    precondition(t > 0 && t.isFinite, "decoupledKDLoss: temperature must be > 0, got \(temperature)")
    let a = Double(alpha), b = Double(beta)
    precondition(a.isFinite && b.isFinite, "decoupledKDLoss: alpha and beta must be finite, got \(alpha), \(beta)")
    let invT = 1 / t, invB = 1 / Double(rows)
    let gradientScale = t * invB  // T^2 / B times the 1/T of s = z / T

    var tckdSum = 0.0, nckdSum = 0.0
    var s = [Double](repeating: 0, count: cols), u = [Double](repeating: 0, count: cols)
    let gradient = Tensor(shape: z.shape) { grad in
        z.withUnsafeBufferPointer { zb in
            teacherLogits.withUnsafeBufferPointer { tb in
                for r in 0..<rows {
                    let base = r * cols, y = labels[r]
                    for j in 0..<cols {
                        s[j] = Double(zb[base + j]) * invT
                        u[j] = Double(tb[base + j]) * invT
                    }
                    let student = DecoupledRow(s, target: y), teacher = DecoupledRow(u, target: y)
                    // Binary distributions (target, rest) in log space.
                    let logQy = s[y] - student.lseAll, logQRest = student.lseRest - student.lseAll
                    let logPy = u[y] - teacher.lseAll, logPRest = teacher.lseRest - teacher.lseAll
                    let qy = Foundation.exp(logQy), py = Foundation.exp(logPy)
                    let qRest = Foundation.exp(logQRest), pRest = Foundation.exp(logPRest)
                    // p_y - q_y, from whichever side keeps its digits (1 - q_y is small when q_y is near 1).
                    let targetGap = Swift.max(qy, py) > 0.5 ? qRest - pRest : py - qy
                    tckdSum += py * (logPy - logQy) + pRest * (logPRest - logQRest)
                    var kl = 0.0
                    for j in 0..<cols where j != y {
                        let logQHat = s[j] - student.lseRest, logPHat = u[j] - teacher.lseRest
                        let qHat = Foundation.exp(logQHat), pHat = Foundation.exp(logPHat)
                        kl += pHat * (logPHat - logQHat)
                        grad[base + j] = Float(gradientScale * (a * qHat * targetGap + b * (qHat - pHat)))
                    }
                    nckdSum += kl
                    grad[base + y] = Float(-gradientScale * a * targetGap)
                }
            }
        }
    }
    let tckd = t * t * tckdSum * invB, nckd = t * t * nckdSum * invB
    let total = a * tckd + b * nckd
    let loss = customOperation(value: Tensor(scalar: Float(total)), inputs: [studentLogits]) { upstream in
        [gradient * upstream.scalar]
    }
    return (loss, tckd, nckd)
}

/// The two log-sum-exps of one row: over all classes and over the non-target classes, each shifted by its own
/// maximum.
private struct DecoupledRow {
    let lseAll: Double, lseRest: Double

    init(_ x: [Double], target y: Int) {
        var mAll = -Double.infinity, mRest = -Double.infinity
        for j in x.indices {
            mAll = Swift.max(mAll, x[j])
            if j != y { mRest = Swift.max(mRest, x[j]) }
        }
        var sumAll = 0.0, sumRest = 0.0
        for j in x.indices {
            sumAll += Foundation.exp(x[j] - mAll)
            if j != y { sumRest += Foundation.exp(x[j] - mRest) }
        }
        lseAll = mAll + Foundation.log(sumAll)
        lseRest = mRest + Foundation.log(sumRest)
    }
}
