import Foundation
import TensorCore

/// A fully connected layer, PyTorch's `nn.Linear`: y = x W^T + b.
///
/// - weight: `[outputCount, inputCount]`, bias: `[outputCount]`; input `[batch, inputCount]` -> `[batch, outputCount]`.
/// - Initialisation matches PyTorch's default (`kaiming_uniform_(a=sqrt(5))` for the weight and the bias rule):
///   every weight and bias element ~ U(-1/sqrt(inputCount), 1/sqrt(inputCount)). The numbers differ from PyTorch's
///   (different generator), the distribution is the same.
public final class Linear: Layer {
    public let weight: Variable
    public let bias: Variable
    public let inputCount: Int
    public let outputCount: Int

    public init(inputCount: Int, outputCount: Int, generator: inout RandomGenerator) {
        precondition(inputCount > 0 && outputCount > 0, "Linear needs positive sizes, got \(inputCount) -> \(outputCount)")
        self.inputCount = inputCount
        self.outputCount = outputCount
        let bound = 1 / Float(inputCount).squareRoot()
        weight = Variable(Tensor.uniform([outputCount, inputCount], low: -bound, high: bound, generator: &generator), requiresGrad: true)
        bias = Variable(Tensor.uniform([outputCount], low: -bound, high: bound, generator: &generator), requiresGrad: true)
    }

    /// A layer with the given weight `[out, in]` and bias `[out]`.
    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.rank == 2 && bias.shape == [weight.shape[0]], "Linear: weight \(weight.shape) and bias \(bias.shape) disagree")
        self.inputCount = weight.shape[1]
        self.outputCount = weight.shape[0]
        self.weight = Variable(weight, requiresGrad: true)
        self.bias = Variable(bias, requiresGrad: true)
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        linear(input, weight: weight, bias: bias)
    }

    /// The forward pass fused with a following ReLU (used by `Sequential`).
    public func forward(_ input: Variable, activation: Activation) -> Variable {
        linear(input, weight: weight, bias: bias, activation: activation)
    }

    public func infer(_ input: Tensor) -> Tensor { linearForward(input, weight: weight.value, bias: bias.value) }

    public var namedParameters: [(name: String, parameter: Variable)] { [("weight", weight), ("bias", bias)] }
    public var specification: LayerSpecification { .linear(inputCount: inputCount, outputCount: outputCount) }
}

/// max(x, 0), PyTorch's `nn.ReLU`.
public final class ReLU: Layer {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable { relu(input) }
    public func infer(_ input: Tensor) -> Tensor { input.relu() }
    public var specification: LayerSpecification { .relu }
}

/// Flattens `[batch, d1, d2, ...]` to `[batch, d1 * d2 * ...]`, PyTorch's `nn.Flatten`.
public final class Flatten: Layer {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        reshape(input, [input.shape.first ?? 1, -1])
    }
    public func infer(_ input: Tensor) -> Tensor { input.reshaped([input.shape.first ?? 1, -1]) }
    public var specification: LayerSpecification { .flatten }
}

/// Inverted dropout, PyTorch's `nn.Dropout(p)`: in training each element is zeroed with probability p and the
/// survivors are scaled by 1/(1-p); in evaluation it is the identity. The mask is `Kernels.dropoutMask`: one 64-bit
/// draw per 4 elements, each element keeping with probability round((1-p) * 65536) / 65536.
public final class Dropout: Layer {
    public let probability: Float

    public init(probability: Float) {
        precondition(probability >= 0 && probability < 1, "Dropout probability must be in [0, 1), got \(probability)")
        self.probability = probability
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        guard context.training, probability > 0 else { return input }
        let keep = 1 - probability, scale = 1 / keep
        let mask = Tensor(shape: input.shape) { m in
            Kernels.dropoutMask(m, keep: keep, scale: scale, generator: &context.generator)
        }
        return multiply(input, mask: mask)
    }

    public func infer(_ input: Tensor) -> Tensor { input }
    public var specification: LayerSpecification { .dropout(probability: probability) }
}
