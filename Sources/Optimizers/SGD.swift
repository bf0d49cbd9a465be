import TensorCore
import NeuralNet

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics and defaults
/// (momentum 0, dampening 0, no Nesterov, no weight decay):
///
///     g = grad + weightDecay * p
///     b = g (first step) or momentum * b + (1 - dampening) * g
///     g = g + momentum * b (Nesterov) or b (plain momentum)
///     p = p - lr * g
public final class SGD: Optimizer {
    public var learningRate: Float
    /// The momentum used by the next `step` (a momentum ramp sets it per epoch).
    public var momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    public let weightDecay: Float
    var buffers: [Int: Tensor] = [:]

    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        precondition(learningRate >= 0 && momentum >= 0 && weightDecay >= 0, "SGD: learning rate, momentum and weight decay must be >= 0")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum requires a momentum and zero dampening")
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Variable]) {
        let lr = learningRate, mu = momentum, wd = weightDecay, damp = 1 - dampening, nesterov = self.nesterov
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            let n = grad.count
            if mu == 0 {
                grad.withUnsafeBufferPointer { g in
                    parameter.value.withUnsafeMutableBufferPointer { p in
                        for i in 0..<n { p[i] -= lr * (g[i] + wd * p[i]) }
                    }
                }
                continue
            }
            let first = buffers[index] == nil
            var buffer = buffers.removeValue(forKey: index) ?? Tensor(shape: grad.shape, repeating: 0)
            grad.withUnsafeBufferPointer { gBuffer in
                parameter.value.withUnsafeMutableBufferPointer { pBuffer in
                    buffer.withUnsafeMutableBufferPointer { bBuffer in
                        let g = gBuffer.baseAddress!, p = pBuffer.baseAddress!, b = bBuffer.baseAddress!
                        ComputeThreads.parallelRanges(count: n) { r in
                            SGD.momentumUpdate(p + r.lowerBound, b + r.lowerBound, g + r.lowerBound, count: r.count,
                                               lr: lr, mu: mu, damp: damp, wd: wd, first: first, nesterov: nesterov)
                        }
                    }
                }
            }
            buffers[index] = buffer
        }
    }

    /// The momentum update of `count` elements (the formula above; b is the momentum buffer, `first` on the step
    /// that creates it), eight elements at a time in SIMD registers, then one at a time. The same operations in the
    /// same order as `momentumReference`, so the same bits: a separate multiply and add each (no fused multiply-add).
    /// The pointers may not overlap; the scalar loops this replaces did not vectorise because the compiler could not
    /// rule that out (6 % of a student epoch in a profile; Benchmarks.md).
    @inline(__always)
    public static func momentumUpdate(_ p: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                               _ g: UnsafePointer<Float>, count: Int, lr: Float, mu: Float, damp: Float, wd: Float,
                               first: Bool, nesterov: Bool) {
        typealias V = SIMD8<Float>
        let lrv = V(repeating: lr), muv = V(repeating: mu), dampv = V(repeating: damp), wdv = V(repeating: wd)
        let pr = UnsafeMutableRawPointer(p), br = UnsafeMutableRawPointer(b), gr = UnsafeRawPointer(g)
        let vectors = count / 8
        // One loop per case (constant flags after inlining), branch-free inside.
        @inline(__always) func run(first: Bool, nesterov: Bool) {
            for k in 0..<vectors {
                let o = 32 * k
                let pv = pr.loadUnaligned(fromByteOffset: o, as: V.self)
                let d = gr.loadUnaligned(fromByteOffset: o, as: V.self) + wdv * pv
                let v = first ? d : muv * br.loadUnaligned(fromByteOffset: o, as: V.self) + dampv * d
                br.storeBytes(of: v, toByteOffset: o, as: V.self)
                pr.storeBytes(of: pv - lrv * (nesterov ? d + muv * v : v), toByteOffset: o, as: V.self)
            }
        }
        switch (first, nesterov) {
        case (true, false): run(first: true, nesterov: false)
        case (true, true): run(first: true, nesterov: true)
        case (false, false): run(first: false, nesterov: false)
        case (false, true): run(first: false, nesterov: true)
        }
        let done = 8 * vectors
        momentumReference(p + done, b + done, g + done, count: count - done, lr: lr, mu: mu, damp: damp, wd: wd,
                          first: first, nesterov: nesterov)
    }

    /// Reference for `momentumUpdate`: the formula above, one element at a time.
    public static func momentumReference(_ p: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                                  _ g: UnsafePointer<Float>, count: Int, lr: Float, mu: Float, damp: Float, wd: Float,
                                  first: Bool, nesterov: Bool) {
        for i in 0..<count {
            let d = g[i] + wd * p[i]
            let v = first ? d : mu * b[i] + damp * d
            b[i] = v
            p[i] -= lr * (nesterov ? d + mu * v : v)
        }
    }

    public func stateTensors() -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        storeBuffers(buffers, prefix: "momentum_buffer", into: &state)
        return state
    }

    public func loadState(_ state: [String: Tensor]) throws {
        buffers = loadBuffers(state, prefix: "momentum_buffer")
    }
}
