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
    public let momentum: Float
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
                        // Large tensors are split over the threads (elementwise, so the result is the same).
                        let chunks = n >= 1 << 18 ? 4 * ComputeThreads.count : 1
                        ComputeThreads.parallelFor(chunks: chunks) { c in
                            let lo = c * n / chunks, hi = (c + 1) * n / chunks
                            // Branch-free loops per case so the compiler vectorises them.
                            switch (first, nesterov) {
                            case (true, false):
                                for i in lo..<hi { let d = g[i] + wd * p[i]; b[i] = d; p[i] -= lr * d }
                            case (true, true):
                                for i in lo..<hi { let d = g[i] + wd * p[i]; b[i] = d; p[i] -= lr * (d + mu * d) }
                            case (false, false):
                                for i in lo..<hi { let d = g[i] + wd * p[i]; let v = mu * b[i] + damp * d; b[i] = v; p[i] -= lr * v }
                            case (false, true):
                                for i in lo..<hi { let d = g[i] + wd * p[i]; let v = mu * b[i] + damp * d; b[i] = v; p[i] -= lr * (d + mu * v) }
                            }
                        }
                    }
                }
            }
            buffers[index] = buffer
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
