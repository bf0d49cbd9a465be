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
            let constants = UpdateConstants(learningRate: lr, weightDecay: wd, beta1: b1, beta2: b2, epsilon: eps,
                                            stepSize: stepSize, bc2Sqrt: bc2Sqrt,
                                            decoupledWeightDecay: decoupledWeightDecay, amsgrad: amsgrad)
            grad.withUnsafeBufferPointer { gBuffer in
                parameter.value.withUnsafeMutableBufferPointer { pBuffer in
                    m.withUnsafeMutableBufferPointer { mBuffer in
                        v.withUnsafeMutableBufferPointer { vBuffer in
                            vmax.withUnsafeMutableBufferPointer { xBuffer in
                                guard let g = gBuffer.baseAddress, let p = pBuffer.baseAddress,
                                      let mp = mBuffer.baseAddress, let vp = vBuffer.baseAddress else { return }
                                let xp = amsgrad ? xBuffer.baseAddress : nil
                                ComputeThreads.parallelRanges(count: n) { r in
                                    let lo = r.lowerBound
                                    Adam.update(p + lo, m: mp + lo, v: vp + lo, vmax: xp.map { $0 + lo }, g: g + lo,
                                                count: r.count, constants)
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

    /// One step's constants of the update (the formula above): `stepSize` = lr / (1 - b1^t), `bc2Sqrt` =
    /// sqrt(1 - b2^t).
    public struct UpdateConstants {
        public var learningRate, weightDecay, beta1, beta2, epsilon, stepSize, bc2Sqrt: Float
        public var decoupledWeightDecay, amsgrad: Bool
        public init(learningRate: Float, weightDecay: Float, beta1: Float, beta2: Float, epsilon: Float,
                    stepSize: Float, bc2Sqrt: Float, decoupledWeightDecay: Bool, amsgrad: Bool) {
            self.learningRate = learningRate; self.weightDecay = weightDecay; self.beta1 = beta1; self.beta2 = beta2
            self.epsilon = epsilon; self.stepSize = stepSize; self.bc2Sqrt = bc2Sqrt
            self.decoupledWeightDecay = decoupledWeightDecay; self.amsgrad = amsgrad
        }
    }

    /// The update of `count` elements: parameters p, moments m and v, and with AMSGrad the running maximum `vmax`
    /// (nil without), eight elements at a time in SIMD registers, then one at a time. The same operations in the same
    /// order as `updateReference` (separate multiplies and adds, a correctly rounded square root and division), so
    /// the same bits. The one-element loop it replaces did not vectorise (overlapping pointers could not be ruled
    /// out) and ran on one thread: Adam took a student epoch from 2.4-2.7 s to 5.2-5.6 s (Benchmarks.md, Adam's update).
    @inline(__always)
    public static func update(_ p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                              v: UnsafeMutablePointer<Float>, vmax: UnsafeMutablePointer<Float>?,
                              g: UnsafePointer<Float>, count: Int, _ c: UpdateConstants) {
        typealias V = SIMD8<Float>
        let decay = V(repeating: 1 - c.learningRate * c.weightDecay), wd = V(repeating: c.weightDecay)
        let b1 = V(repeating: c.beta1), b2 = V(repeating: c.beta2)
        let b1c = V(repeating: 1 - c.beta1), b2c = V(repeating: 1 - c.beta2)
        let step = V(repeating: c.stepSize), bc2 = V(repeating: c.bc2Sqrt), eps = V(repeating: c.epsilon)
        let pr = UnsafeMutableRawPointer(p), mr = UnsafeMutableRawPointer(m), vr = UnsafeMutableRawPointer(v)
        let gr = UnsafeRawPointer(g), xr = vmax.map { UnsafeMutableRawPointer($0) }
        let vectors = count / 8
        @inline(__always) func run(decoupled: Bool, ams: Bool) {
            for k in 0..<vectors {
                let o = 32 * k
                var pv = pr.loadUnaligned(fromByteOffset: o, as: V.self)
                var gv = gr.loadUnaligned(fromByteOffset: o, as: V.self)
                if decoupled { pv = pv * decay } else { gv = gv + wd * pv }
                let mv = b1 * mr.loadUnaligned(fromByteOffset: o, as: V.self) + b1c * gv
                let vv = b2 * vr.loadUnaligned(fromByteOffset: o, as: V.self) + b2c * gv * gv
                mr.storeBytes(of: mv, toByteOffset: o, as: V.self)
                vr.storeBytes(of: vv, toByteOffset: o, as: V.self)
                var second = vv
                if ams, let xr {
                    // Swift.max(x, v): v where v >= x, else x (NaN and signed zeros as the scalar path).
                    var x = xr.loadUnaligned(fromByteOffset: o, as: V.self)
                    x.replace(with: vv, where: vv .>= x)
                    xr.storeBytes(of: x, toByteOffset: o, as: V.self)
                    second = x
                }
                pv = pv - step * mv / (second.squareRoot() / bc2 + eps)
                pr.storeBytes(of: pv, toByteOffset: o, as: V.self)
            }
        }
        // One loop per case, branch-free inside.
        switch (c.decoupledWeightDecay, c.amsgrad && vmax != nil) {
        case (false, false): run(decoupled: false, ams: false)
        case (false, true): run(decoupled: false, ams: true)
        case (true, false): run(decoupled: true, ams: false)
        case (true, true): run(decoupled: true, ams: true)
        }
        let done = 8 * vectors
        updateReference(p + done, m: m + done, v: v + done, vmax: vmax.map { $0 + done }, g: g + done,
                        count: count - done, c)
    }

    /// Reference for `update`: the formula above, one element at a time.
    public static func updateReference(_ p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                                       v: UnsafeMutablePointer<Float>, vmax: UnsafeMutablePointer<Float>?,
                                       g: UnsafePointer<Float>, count: Int, _ c: UpdateConstants) {
        let lr = c.learningRate, wd = c.weightDecay, b1 = c.beta1, b2 = c.beta2
        for i in 0..<count {
            var gi = g[i]
            if c.decoupledWeightDecay { p[i] *= 1 - lr * wd } else { gi += wd * p[i] }
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            var second = v[i]
            if c.amsgrad, let vmax { vmax[i] = Swift.max(vmax[i], v[i]); second = vmax[i] }
            p[i] -= c.stepSize * m[i] / (second.squareRoot() / c.bc2Sqrt + c.epsilon)
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
