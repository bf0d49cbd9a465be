import Foundation
import NeuralNet
import TensorCore

/// Attention transfer (AT; Zagoruyko and Komodakis, "Paying More Attention to Attention: Improving the Performance
/// of Convolutional Neural Networks via Attention Transfer", ICLR 2017), fused with its backward.
///
/// Inputs:
/// - `studentFeatures`: `[B, C_s, H, W]` a student feature map (activations of one stage); the only input that
///   receives a gradient.
/// - `teacherFeatures`: `[B, C_t, H, W]` the teacher's map at the matching stage. The channel counts may differ; the
///   batch and the spatial size must match (resize one side first when they do not).
/// - `p`: the exponent of the attention map (p > 0; the paper and mdistiller use 2).
///
/// The attention map of a feature map F is the spatial map of channel-summed powers (the paper's F^p_sum), flattened
/// and L2-normalised per example:
///
///     a_k = sum_c |F_{c,k}|^p  (k over the H * W positions),   Q = a / max(||a||_2, 1e-12)
///
/// Value, a mean over the batch and the positions:
///
///     L = mean_{b,k} (Q_s,bk - Q_t,bk)^2
///
/// which is mdistiller's `(at(f_s) - at(f_t)).pow(2).mean()` for one stage (`single_stage_at_loss`). mdistiller
/// averages over channels where this sums; the factor 1/C cancels in the normalisation. Only the 1e-12 clamp of
/// `F.normalize` (reached by an all-zero map, which gives Q = 0) sees the difference. For odd or fractional p this
/// uses |F|, as the paper does; PyTorch's `pow` of a negative activation differs there (none after a ReLU).
///
/// Gradient, with g = 2 (Q_s - Q_t) / (B * H * W) and n = ||a_s||_2 per example:
///
///     dL/da_j = (g_j - Q_j * sum_k g_k Q_k) / n        (g_j / 1e-12 where the clamp applies)
///     dL/dF_{c,j} = dL/da_j * p * |F_{c,j}|^(p - 1) * sign(F_{c,j})        (0 at F = 0)
///
/// Sums accumulate in Double. Rank-2 features `[B, F]` are rejected: attention transfer needs spatial maps (use
/// ``hintLoss(studentFeatures:teacherFeatures:)`` for vectors). Shape problems are programmer errors (preconditions
/// naming both shapes).
public func attentionTransferLoss(studentFeatures: Variable, teacherFeatures: Tensor, p: Float = 2) -> Variable {
    let f = studentFeatures.value
    let studentShape = f.shape, teacherShape = teacherFeatures.shape
    precondition(studentShape.count == 4 && teacherShape.count == 4,
                 "attentionTransferLoss: needs spatial feature maps [batch, channels, height, width]; got student " +
                 "\(studentShape), teacher \(teacherShape) (for vectors [batch, features] use hintLoss)")
    precondition(studentShape[0] == teacherShape[0] && studentShape[2] == teacherShape[2] && studentShape[3] == teacherShape[3],
                 "attentionTransferLoss: student features \(studentShape) and teacher features \(teacherShape) must " +
                 "have the same batch and spatial size [B, _, H, W]")
    let rows = studentShape[0], positions = studentShape[2] * studentShape[3]
    precondition(rows > 0 && positions > 0 && studentShape[1] > 0 && teacherShape[1] > 0,
                 "attentionTransferLoss: empty features, student \(studentShape), teacher \(teacherShape)")
    let power = Double(p)
    precondition(power > 0 && power.isFinite, "attentionTransferLoss: p must be > 0, got \(p)")

    let studentMaps = attentionMaps(f, power: power), teacherMaps = attentionMaps(teacherFeatures, power: power)
    let invCount = 1 / Double(rows * positions)
    var total = 0.0
    var g = [Double](repeating: 0, count: positions)
    let channels = studentShape[1]
    let gradient = Tensor(shape: studentShape) { grad in
        f.withUnsafeBufferPointer { fb in
            for r in 0..<rows {
                let base = r * positions
                var dot = 0.0
                for k in 0..<positions {
                    let d = studentMaps.q[base + k] - teacherMaps.q[base + k]
                    total += d * d
                    g[k] = 2 * d * invCount
                    dot += g[k] * studentMaps.q[base + k]
                }
                let norm = studentMaps.norms[r]
                for k in 0..<positions {
                    // dL/da_k, then through a_k = sum_c |F_ck|^p.
                    let da = norm >= attentionNormFloor ? (g[k] - studentMaps.q[base + k] * dot) / norm : g[k] / attentionNormFloor
                    for c in 0..<channels {
                        let i = (r * channels + c) * positions + k
                        let x = Double(fb[i])
                        grad[i] = Float(da * powerDerivative(x, power))
                    }
                }
            }
        }
    }
    return customOperation(value: Tensor(scalar: Float(total * invCount)), inputs: [studentFeatures]) { upstream in
        [gradient * upstream.scalar]
    }
}

/// `F.normalize`'s clamp of the norm (its `eps`).
private let attentionNormFloor = 1e-12

/// d|x|^p / dx = p |x|^(p-1) sign(x), 0 at x = 0.
@inline(__always) private func powerDerivative(_ x: Double, _ p: Double) -> Double {
    if p == 2 { return 2 * x }
    if x == 0 { return 0 }
    return p * Foundation.pow(Swift.abs(x), p - 1) * (x < 0 ? -1 : 1)
}

/// The normalised attention maps Q `[B * H * W]` of a `[B, C, H, W]` feature map, and each example's ||a||_2.
private func attentionMaps(_ features: Tensor, power: Double) -> (q: [Double], norms: [Double]) {
    let rows = features.shape[0], channels = features.shape[1], positions = features.shape[2] * features.shape[3]
    var q = [Double](repeating: 0, count: rows * positions)
    var norms = [Double](repeating: 0, count: rows)
    features.withUnsafeBufferPointer { fb in
        for r in 0..<rows {
            let base = r * positions
            for c in 0..<channels {
                let offset = (r * channels + c) * positions
                for k in 0..<positions {
                    let x = Double(fb[offset + k])
                    q[base + k] += power == 2 ? x * x : Foundation.pow(Swift.abs(x), power)
                }
            }
            var squares = 0.0
            for k in 0..<positions { squares += q[base + k] * q[base + k] }
            let norm = squares.squareRoot()
            norms[r] = norm
            let scale = 1 / Swift.max(norm, attentionNormFloor)
            for k in 0..<positions { q[base + k] *= scale }
        }
    }
    return (q, norms)
}

/// The FitNets hint loss (Romero, Ballas, Kahou, Chassang, Gatta and Bengio, "FitNets: Hints for Thin Deep Nets",
/// ICLR 2015): the mean squared error between the student's (regressed) hint-layer features and the teacher's.
///
/// Inputs of the same shape, any rank: `studentFeatures` u (the output of the caller's regressor applied to the
/// student's guided layer; the only input that receives a gradient) and `teacherFeatures` v (the teacher's hint
/// layer). The regressor is an ordinary layer the caller applies first.
///
///     L = (1 / N) sum_i (u_i - v_i)^2,      dL/du_i = 2 (u_i - v_i) / N
///
/// over all N elements (PyTorch `F.mse_loss` with mean reduction; the paper's 1/2 ||.||^2 differs by a constant
/// factor). Sums accumulate in Double. A shape mismatch is a programmer error (a precondition naming both shapes).
public func hintLoss(studentFeatures: Variable, teacherFeatures: Tensor) -> Variable {
    let u = studentFeatures.value
    precondition(u.shape == teacherFeatures.shape,
                 "hintLoss: student features \(u.shape) must match teacher features \(teacherFeatures.shape) " +
                 "(apply the regressor to the student features first)")
    let count = u.count
    precondition(count > 0, "hintLoss: empty features, shape \(u.shape)")
    let invCount = 1 / Double(count)
    var total = 0.0
    let gradient = Tensor(shape: u.shape) { grad in
        u.withUnsafeBufferPointer { ub in
            teacherFeatures.withUnsafeBufferPointer { vb in
                for i in 0..<count {
                    let d = Double(ub[i]) - Double(vb[i])
                    total += d * d
                    grad[i] = Float(2 * d * invCount)
                }
            }
        }
    }
    return customOperation(value: Tensor(scalar: Float(total * invCount)), inputs: [studentFeatures]) { upstream in
        [gradient * upstream.scalar]
    }
}

/// Similarity-preserving KD (SP; Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019): the
/// student's batch similarity matrix matched to the teacher's, fused with its backward.
///
/// Inputs: `studentFeatures` `[B, ...]` (any rank from 2; flattened per example to F_s `[B, D_s]`; the only input
/// that receives a gradient) and `teacherFeatures` `[B, ...]` (F_t `[B, D_t]`). Only the batch must match: the
/// feature sizes may differ, and no regressor is needed.
///
///     G = F F^T  [B, B],   Q_i = G_i / max(||G_i||_2, 1e-12)  (each row L2-normalised, `F.normalize(G)`)
///     L = (1 / B^2) sum_{i,j} (Q_t,ij - Q_s,ij)^2
///
/// which is mdistiller's `similarity_loss` for one layer pair (its SP configuration weighs it 3000).
///
/// Gradient, with D = 2 (Q_s - Q_t) / B^2 and n_i = ||G_s,i||_2:
///
///     dL/dG_ij = (D_ij - Q_ij * sum_k D_ik Q_ik) / n_i       (D_ij / 1e-12 where the clamp applies)
///     dL/dF_s = (dL/dG + dL/dG^T) F_s
///
/// The two products run on BLAS in Float (as PyTorch's); the normalisation and the sums in Double. Shape problems
/// are programmer errors (preconditions naming both shapes).
public func similarityPreservingLoss(studentFeatures: Variable, teacherFeatures: Tensor) -> Variable {
    let f = studentFeatures.value
    let studentShape = f.shape, teacherShape = teacherFeatures.shape
    precondition(studentShape.count >= 2 && teacherShape.count >= 2 && studentShape[0] == teacherShape[0],
                 "similarityPreservingLoss: student features \(studentShape) and teacher features \(teacherShape) must " +
                 "be batches [B, ...] of the same B")
    let rows = studentShape[0]
    precondition(rows > 0 && f.count > 0 && teacherFeatures.count > 0,
                 "similarityPreservingLoss: empty features, student \(studentShape), teacher \(teacherShape)")
    let fs = f.reshaped([rows, f.count / rows])
    let ft = teacherFeatures.reshaped([rows, teacherFeatures.count / rows])
    let (qs, norms) = normalizedSimilarities(fs.matmul(fs, transposeOther: true))
    let (qt, _) = normalizedSimilarities(ft.matmul(ft, transposeOther: true))
    let scale = 1 / Double(rows * rows)
    var total = 0.0
    var dG = [Double](repeating: 0, count: rows * rows)
    var d = [Double](repeating: 0, count: rows)
    for i in 0..<rows {
        var dot = 0.0
        for j in 0..<rows {
            let diff = qs[i * rows + j] - qt[i * rows + j]
            total += diff * diff
            d[j] = 2 * diff * scale
            dot += d[j] * qs[i * rows + j]
        }
        let n = norms[i]
        for j in 0..<rows {
            dG[i * rows + j] = n >= similarityNormFloor ? (d[j] - qs[i * rows + j] * dot) / n : d[j] / similarityNormFloor
        }
    }
    // dL/dF = (dG + dG^T) F.
    let symmetric = Tensor(shape: [rows, rows]) { out in
        for i in 0..<rows { for j in 0..<rows { out[i * rows + j] = Float(dG[i * rows + j] + dG[j * rows + i]) } }
    }
    let gradient = symmetric.matmul(fs).reshaped(studentShape)
    return customOperation(value: Tensor(scalar: Float(total * scale)), inputs: [studentFeatures]) { upstream in
        [gradient * upstream.scalar]
    }
}

/// `F.normalize`'s clamp of the norm (its `eps`).
private let similarityNormFloor = 1e-12

/// The rows of a `[B, B]` similarity matrix L2-normalised (in Double), and each row's norm.
private func normalizedSimilarities(_ g: Tensor) -> (q: [Double], norms: [Double]) {
    let rows = g.shape[0]
    var q = g.scalars.map(Double.init)
    var norms = [Double](repeating: 0, count: rows)
    for i in 0..<rows {
        var squares = 0.0
        for j in 0..<rows { squares += q[i * rows + j] * q[i * rows + j] }
        norms[i] = squares.squareRoot()
        let inverse = 1 / Swift.max(norms[i], similarityNormFloor)
        for j in 0..<rows { q[i * rows + j] *= inverse }
    }
    return (q, norms)
}
