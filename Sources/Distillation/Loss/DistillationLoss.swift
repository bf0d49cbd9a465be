import Foundation
import NeuralNet
import TensorCore
import CLossKernels

/// The Hinton et al. (2015) distillation loss, fused with its backward: one pass over each row computes both student
/// softmaxes, the value and the gradient.
///
/// Inputs:
/// - `studentLogits`: `[B, C]` raw student scores z_s (logits, not probabilities); the only input that receives a
///   gradient.
/// - `teacherProbabilities`: `[B, C]` teacher soft targets p_t = softmax(z_t / T) (probabilities, rows summing to 1,
///   already softened at the configuration's temperature). A plain tensor: the teacher never gets a gradient.
/// - `labels`: `B` class indices in `0..<C`.
///
/// Value (batch mean, T = `temperature`, s = T^2 when `scaleSoftBySquaredTemperature` else 1):
///
///     L = hardWeight * mean_b H(onehot(y_b), softmax(z_sb))  +  softWeight * s * mean_b H(p_tb, softmax(z_sb / T))
///
/// Gradient:
///
///     dL/dz_s = hardWeight * (softmax(z_s) - onehot(y)) / B  +  softWeight * s * (softmax(z_s / T) - p_t) / (T * B)
///
/// Why T^2: the soft term's gradient carries a factor 1/T, and at high T (zero-mean logits) it approaches
/// (z_s - z_t) / (C * T^2 * B) (eq. 4 of the paper), so its size falls as 1/T^2. Multiplying by T^2 keeps the
/// relative weight of hard and soft targets roughly unchanged as T is varied.
///
/// The soft term is the cross-entropy, not the KL divergence; the two differ by the teacher's entropy, a constant
/// with no gradient (see ``DistillationLossParts``, which reports both). Softmaxes subtract the row maximum and
/// sums accumulate in Double.
///
/// Shape, label and temperature problems are programmer errors (preconditions naming the shapes); validate user
/// options first with ``DistillationLossConfiguration/validate()``.
public func distillationLoss(studentLogits: Variable, teacherProbabilities: Tensor, labels: [Int],
                             configuration: DistillationLossConfiguration) -> (loss: Variable, parts: DistillationLossParts) {
    let z = studentLogits.value
    precondition(z.rank == 2, "distillationLoss: student logits must be [batch, classes], got \(z.shape)")
    precondition(teacherProbabilities.shape == z.shape,
                 "distillationLoss: teacher probabilities \(teacherProbabilities.shape) must match student logits \(z.shape)")
    if z.shape[1] >= distillationLossVectorMinimumClasses {
        return vectorDistillationLoss(studentLogits: studentLogits, teacher: teacherProbabilities, teacherIsLogits: false,
                                      labels: labels, configuration: configuration)
    }
    return fusedDistillationLoss(studentLogits: studentLogits, teacher: teacherProbabilities.scalars.map { Double($0) },
                                 labels: labels, configuration: configuration)
}

/// From this many classes on, the loss runs in float with vector exp and log (`CLossKernels`, rows split over the
/// compute threads); below it, in the Double loop of `fusedDistillationLoss`, whose cost is negligible there (and
/// whose bits the MNIST results were made with). The Double loop is the reference the vector path is tested against.
public let distillationLossVectorMinimumClasses = 256

/// The checks and coefficients every loss path shares: a non-empty batch, labels in range, a valid temperature.
struct LossSetting {
    let temperature, hardWeight, softWeight, softScale, invB: Double

    init(_ shape: [Int], _ labels: [Int], _ configuration: DistillationLossConfiguration) {
        let rows = shape[0], cols = shape[1]
        precondition(rows > 0 && cols > 0, "distillationLoss: empty batch or no classes, shape \(shape)")
        precondition(labels.count == rows, "distillationLoss: expected \(rows) labels, got \(labels.count)")
        for y in labels { precondition(y >= 0 && y < cols, "distillationLoss: label \(y) out of range 0..<\(cols)") }
        temperature = Double(configuration.temperature)
        precondition(temperature > 0 && temperature.isFinite, "distillationLoss: temperature must be > 0, got \(temperature)")
        hardWeight = Double(configuration.hardWeight)
        softWeight = Double(configuration.softWeight)
        softScale = configuration.scaleSoftBySquaredTemperature ? temperature * temperature : 1
        invB = 1 / Double(rows)
    }
}

/// The loss through `distill_loss_rows`: the same value and gradient as `fusedDistillationLoss`, in float; sums per
/// row in double.
func vectorDistillationLoss(studentLogits: Variable, teacher: Tensor, teacherIsLogits: Bool, labels: [Int],
                            configuration: DistillationLossConfiguration) -> (loss: Variable, parts: DistillationLossParts) {
    let z = studentLogits.value
    let rows = z.shape[0], cols = z.shape[1]
    let setting = LossSetting(z.shape, labels, configuration)
    let temperature = setting.temperature, hardWeight = setting.hardWeight, softWeight = setting.softWeight
    let softScale = setting.softScale, invB = setting.invB
    let hardCoefficient = Float(hardWeight * invB), softCoefficient = Float(softWeight * softScale / temperature * invB)
    let labels32 = labels.map { Int32($0) }
    let chunks = Swift.min(rows, 4 * ComputeThreads.count)
    var partial = [distill_loss_sums](repeating: distill_loss_sums(hard: 0, cross_entropy: 0, entropy: 0), count: chunks)
    let gradient = Tensor(shape: z.shape) { grad in
        z.withUnsafeBufferPointer { zb in
            teacher.withUnsafeBufferPointer { tb in
                labels32.withUnsafeBufferPointer { lb in
                    partial.withUnsafeMutableBufferPointer { sums in
                        ComputeThreads.parallelFor(chunks: chunks) { c in
                            let r0 = c * rows / chunks, r1 = (c + 1) * rows / chunks
                            sums[c] = distill_loss_rows(zb.baseAddress, tb.baseAddress, teacherIsLogits ? 1 : 0, lb.baseAddress,
                                                        r0, r1, cols, Float(1 / temperature), hardCoefficient, softCoefficient,
                                                        grad.baseAddress)
                        }
                    }
                }
            }
        }
    }
    let hard = partial.reduce(0) { $0 + $1.hard } * invB
    let softCrossEntropy = partial.reduce(0) { $0 + $1.cross_entropy } * invB
    let softKL = softCrossEntropy - partial.reduce(0) { $0 + $1.entropy } * invB
    let softScaled = softScale * softCrossEntropy
    let total = hardWeight * hard + softWeight * softScaled
    let parts = DistillationLossParts(hard: hard, softCrossEntropy: softCrossEntropy, softKL: softKL,
                                      softScaled: softScaled, total: total)
    let loss = customOperation(value: Tensor(scalar: Float(total)), inputs: [studentLogits]) { upstream in
        [gradient * upstream.scalar]
    }
    return (loss, parts)
}

/// The shared kernel; `teacher` holds p_t row-major in Double (so the logits overload keeps full precision).
func fusedDistillationLoss(studentLogits: Variable, teacher: [Double], labels: [Int],
                           configuration: DistillationLossConfiguration) -> (loss: Variable, parts: DistillationLossParts) {
    let z = studentLogits.value
    let rows = z.shape[0], cols = z.shape[1]
    let setting = LossSetting(z.shape, labels, configuration)
    let temperature = setting.temperature, hardWeight = setting.hardWeight, softWeight = setting.softWeight
    let softScale = setting.softScale, invB = setting.invB
    let invT = 1 / temperature
    // Gradient coefficients of the two terms (per unit upstream gradient).
    let hardCoefficient = hardWeight * invB
    let softCoefficient = softWeight * softScale * invT * invB

    var hardSum = 0.0, crossEntropySum = 0.0, entropySum = 0.0
    var q1 = [Double](repeating: 0, count: cols), qT = [Double](repeating: 0, count: cols)
    let gradient = Tensor(shape: z.shape) { grad in
        z.withUnsafeBufferPointer { zb in
            teacher.withUnsafeBufferPointer { pb in
                for r in 0..<rows {
                    let base = r * cols
                    var m = -Double.infinity
                    for j in 0..<cols { m = Swift.max(m, Double(zb[base + j])) }
                    // Both softmaxes from the same shifted logits: exp(z - m) and exp((z - m) / T).
                    var s1 = 0.0, sT = 0.0
                    for j in 0..<cols {
                        let d = Double(zb[base + j]) - m
                        q1[j] = Foundation.exp(d)
                        qT[j] = Foundation.exp(d * invT)
                        s1 += q1[j]
                        sT += qT[j]
                    }
                    let logS1 = Foundation.log(s1), logST = Foundation.log(sT)
                    let y = labels[r]
                    hardSum += logS1 - (Double(zb[base + y]) - m)
                    for j in 0..<cols {
                        let p = pb[base + j]
                        if p > 0 {
                            // log q_T,j = (z_j - m)/T - log sT
                            crossEntropySum -= p * ((Double(zb[base + j]) - m) * invT - logST)
                            entropySum -= p * Foundation.log(p)
                        }
                        var g = softCoefficient * (qT[j] / sT - p) + hardCoefficient * (q1[j] / s1)
                        if j == y { g -= hardCoefficient }
                        grad[base + j] = Float(g)
                    }
                }
            }
        }
    }
    let hard = hardSum * invB
    let softCrossEntropy = crossEntropySum * invB
    let softKL = softCrossEntropy - entropySum * invB
    let softScaled = softScale * softCrossEntropy
    let total = hardWeight * hard + softWeight * softScaled
    let parts = DistillationLossParts(hard: hard, softCrossEntropy: softCrossEntropy, softKL: softKL,
                                      softScaled: softScaled, total: total)
    let loss = customOperation(value: Tensor(scalar: Float(total)), inputs: [studentLogits]) { upstream in
        [gradient * upstream.scalar]
    }
    return (loss, parts)
}

/// The distillation loss from teacher **logits** `[B, C]` (raw scores z_t, not probabilities): computes
/// p_t = softmax(z_t / T) at the configuration's temperature, then calls
/// ``distillationLoss(studentLogits:teacherProbabilities:labels:configuration:)``. The teacher gets no gradient.
public func distillationLoss(studentLogits: Variable, teacherLogits: Tensor, labels: [Int],
                             configuration: DistillationLossConfiguration) -> (loss: Variable, parts: DistillationLossParts) {
    precondition(teacherLogits.rank == 2, "distillationLoss: teacher logits must be [batch, classes], got \(teacherLogits.shape)")
    precondition(teacherLogits.shape == studentLogits.shape,
                 "distillationLoss: teacher logits \(teacherLogits.shape) must match student logits \(studentLogits.shape)")
    let temperature = Double(configuration.temperature)
    precondition(temperature > 0 && temperature.isFinite, "distillationLoss: temperature must be > 0, got \(temperature)")
    let cols = teacherLogits.shape[1]
    if cols >= distillationLossVectorMinimumClasses {
        return vectorDistillationLoss(studentLogits: studentLogits, teacher: teacherLogits, teacherIsLogits: true,
                                      labels: labels, configuration: configuration)
    }
    var probabilities = teacherLogits.scalars.map { Double($0) }
    for r in 0..<teacherLogits.shape[0] {
        let row = (r * cols)..<((r + 1) * cols)
        let m = probabilities[row].max() ?? 0
        var sum = 0.0
        for i in row { probabilities[i] = Foundation.exp((probabilities[i] - m) / temperature); sum += probabilities[i] }
        for i in row { probabilities[i] /= sum }
    }
    return fusedDistillationLoss(studentLogits: studentLogits, teacher: probabilities, labels: labels,
                                 configuration: configuration)
}

/// The distillation loss from **sparse** teacher soft targets (a top-k teacher, see ``SparseSoftTargets``): the
/// same value and gradient as the dense loss with the teacher that the targets stand for, without a `[B, C]` teacher
/// tensor. The student's softmaxes are still dense (its gradient touches every class); the teacher side costs
/// O(B k). With ``MissingMass/bucket`` the soft cross-entropy is -sum_i p_i log q_i - P log Q, where P is the
/// teacher's and Q the student's mass on the classes not kept.
///
/// Runs in float with vector exp (`distill_loss_sparse_rows`), rows split over the compute threads, at every class
/// count. The teacher's entropy (for the KL part) comes from the targets alone.
public func distillationLoss(studentLogits: Variable, sparseTargets: SparseSoftTargets, labels: [Int],
                             configuration: DistillationLossConfiguration) -> (loss: Variable, parts: DistillationLossParts) {
    let z = studentLogits.value
    precondition(z.rank == 2, "distillationLoss: student logits must be [batch, classes], got \(z.shape)")
    let rows = z.shape[0], cols = z.shape[1]
    precondition(sparseTargets.rowCount == rows && sparseTargets.classCount == cols,
                 "distillationLoss: sparse targets for [\(sparseTargets.rowCount), \(sparseTargets.classCount)], student logits \(z.shape)")
    let setting = LossSetting(z.shape, labels, configuration)
    let temperature = setting.temperature, hardWeight = setting.hardWeight, softWeight = setting.softWeight
    let softScale = setting.softScale, invB = setting.invB
    let hardCoefficient = Float(hardWeight * invB), softCoefficient = Float(softWeight * softScale / temperature * invB)
    let labels32 = labels.map { Int32($0) }
    let k = sparseTargets.keptCount, bucket: Int32 = sparseTargets.missingMass == .bucket ? 1 : 0
    let chunks = Swift.min(rows, 4 * ComputeThreads.count)
    var partial = [distill_loss_sums](repeating: distill_loss_sums(hard: 0, cross_entropy: 0, entropy: 0), count: chunks)
    let gradient = Tensor(shape: z.shape) { grad in
        z.withUnsafeBufferPointer { zb in
            labels32.withUnsafeBufferPointer { lb in
                sparseTargets.classes.withUnsafeBufferPointer { cb in
                    sparseTargets.probabilities.withUnsafeBufferPointer { pb in
                        sparseTargets.tailPerClass.withUnsafeBufferPointer { ub in
                            sparseTargets.tailMass.withUnsafeBufferPointer { mb in
                                partial.withUnsafeMutableBufferPointer { sums in
                                    ComputeThreads.parallelFor(chunks: chunks) { c in
                                        let r0 = c * rows / chunks, r1 = (c + 1) * rows / chunks
                                        sums[c] = distill_loss_sparse_rows(
                                            zb.baseAddress, lb.baseAddress, cb.baseAddress, pb.baseAddress, k,
                                            ub.baseAddress, mb.baseAddress, bucket, r0, r1, cols, Float(1 / temperature),
                                            hardCoefficient, softCoefficient, grad.baseAddress)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let hard = partial.reduce(0) { $0 + $1.hard } * invB
    let softCrossEntropy = partial.reduce(0) { $0 + $1.cross_entropy } * invB
    let softKL = softCrossEntropy - sparseTargets.entropySum * invB
    let softScaled = softScale * softCrossEntropy
    let total = hardWeight * hard + softWeight * softScaled
    let parts = DistillationLossParts(hard: hard, softCrossEntropy: softCrossEntropy, softKL: softKL,
                                      softScaled: softScaled, total: total)
    let loss = customOperation(value: Tensor(scalar: Float(total)), inputs: [studentLogits]) { upstream in
        [gradient * upstream.scalar]
    }
    return (loss, parts)
}
