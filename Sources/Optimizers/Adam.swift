import Foundation
import TensorCore
import NeuralNet

/// Adam and AdamW with PyTorch's semantics and defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8; weight decay 0 for
/// Adam, 0.01 for AdamW):
///
///     t += 1
///     Adam:  g = grad + weightDecay * p          AdamW: p = p * (1 - lr * weightDecay), g = grad
///     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  vmax = max(vmax, v) with AMSGrad
///     p = p - lr / (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    /// True for AdamW's decoupled weight decay.
    public let decoupledWeightDecay: Bool
    public let amsgrad: Bool
    var steps: [Int: Int] = [:]
    var firstMoments: [Int: Tensor] = [:]
    var secondMoments: [Int: Tensor] = [:]
    var maxSecondMoments: [Int: Tensor] = [:]

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, decoupledWeightDecay: Bool = false, amsgrad: Bool = false) {
        precondition(learningRate >= 0 && epsilon >= 0 && weightDecay >= 0, "Adam: learning rate, epsilon and weight decay must be >= 0")
        precondition((0..<1).contains(beta1) && (0..<1).contains(beta2), "Adam: betas must be in [0, 1), got \(beta1), \(beta2)")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        self.amsgrad = amsgrad
    }

    /// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay, default 0.01.
    public static func adamW(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                             weightDecay: Float = 0.01, amsgrad: Bool = false) -> Adam {
        Adam(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
             decoupledWeightDecay: true, amsgrad: amsgrad)
    }

    public func step(_ parameters: [Variable]) {
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            let n = grad.count
            let t = (steps[index] ?? 0) + 1
            steps[index] = t
            var m = firstMoments.removeValue(forKey: index) ?? Tensor(shape: grad.shape, repeating: 0)
            var v = secondMoments.removeValue(forKey: index) ?? Tensor(shape: grad.shape, repeating: 0)
            var vmax = amsgrad ? (maxSecondMoments.removeValue(forKey: index) ?? Tensor(shape: grad.shape, repeating: 0)) : Tensor(shape: [0])
            let bc1 = 1 - Foundation.pow(Double(b1), Double(t))
            let bc2Sqrt = Float((1 - Foundation.pow(Double(b2), Double(t))).squareRoot())
            let stepSize = Float(Double(lr) / bc1)
            let decoupled = decoupledWeightDecay, ams = amsgrad
            grad.withUnsafeBufferPointer { g in
                parameter.value.withUnsafeMutableBufferPointer { p in
                    m.withUnsafeMutableBufferPointer { mb in
                        v.withUnsafeMutableBufferPointer { vb in
                            vmax.withUnsafeMutableBufferPointer { xb in
                                for i in 0..<n {
                                    var gi = g[i]
                                    if decoupled { p[i] *= 1 - lr * wd } else { gi += wd * p[i] }
                                    mb[i] = b1 * mb[i] + (1 - b1) * gi
                                    vb[i] = b2 * vb[i] + (1 - b2) * gi * gi
                                    var second = vb[i]
                                    if ams { xb[i] = Swift.max(xb[i], vb[i]); second = xb[i] }
                                    p[i] -= stepSize * mb[i] / (second.squareRoot() / bc2Sqrt + eps)
                                }
                            }
                        }
                    }
                }
            }
            firstMoments[index] = m
            secondMoments[index] = v
            if amsgrad { maxSecondMoments[index] = vmax }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        storeBuffers(firstMoments, prefix: "exp_avg", into: &state)
        storeBuffers(secondMoments, prefix: "exp_avg_sq", into: &state)
        storeBuffers(maxSecondMoments, prefix: "max_exp_avg_sq", into: &state)
        for (index, t) in steps { state["step.\(index)"] = Tensor(scalar: Float(t)) }
        return state
    }

    public func loadState(_ state: [String: Tensor]) throws {
        firstMoments = loadBuffers(state, prefix: "exp_avg")
        secondMoments = loadBuffers(state, prefix: "exp_avg_sq")
        maxSecondMoments = loadBuffers(state, prefix: "max_exp_avg_sq")
        var loadedSteps: [Int: Int] = [:]
        for (index, t) in loadBuffers(state, prefix: "step") {
            // A step count is one whole number; anything else (a corrupted file) must not trap in Int(_:).
            guard t.count == 1, let v = t.scalars.first, v.isFinite, v >= 0, v <= 1e15, v == v.rounded() else {
                throw OptimizerStateError(description: "Adam state: step.\(index) must be one whole number >= 0, got shape \(t.shape) \(t.scalars.prefix(4))")
            }
            loadedSteps[index] = Int(v)
        }
        steps = loadedSteps
        if Set(firstMoments.keys) != Set(steps.keys) {
            throw OptimizerStateError(description: "Adam state: moment buffers and step counts name different parameters")
        }
    }
}
