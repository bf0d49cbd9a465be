import Foundation
import TensorCore

/// A fully connected layer, PyTorch's `nn.Linear`: y = x W^T + b.
///
/// - weight: `[outputCount, inputCount]`, bias: `[outputCount]`; input `[batch, inputCount]` -> `[batch, outputCount]`.
/// - Initialisation matches PyTorch's default (`kaiming_uniform_(a=sqrt(5))` for the weight and the bias rule):
///   every weight and bias element ~ U(-1/sqrt(inputCount), 1/sqrt(inputCount)). The numbers differ from PyTorch's
///   (different generator), the distribution is the same.
public final class Linear: LayerKind, FusesActivation, RowWise, UnitWeights {
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

    /// The forward pass fused with a following activation (ReLU), used by `Sequential`.
    public func forward(_ input: Variable, fusedActivation activation: Activation) -> Variable {
        linear(input, weight: weight, bias: bias, activation: activation)
    }

    public func infer(_ input: Tensor) -> Tensor { linearForward(input, weight: weight.value, bias: bias.value) }

    public func infer(_ input: Tensor, splittingUnits parts: Int) -> Tensor {
        infer(input, fusedActivation: .identity, splittingUnits: parts)
    }

    public func infer(_ input: Tensor, fusedActivation activation: Activation, splittingUnits parts: Int) -> Tensor {
        parts > 1
            ? linearForwardSplittingUnits(input, weight: weight.value, bias: bias.value, activation: activation, parts: parts)
            : linearForward(input, weight: weight.value, bias: bias.value, activation: activation)
    }

    public var namedParameters: [(name: String, parameter: Variable)] { [("weight", weight), ("bias", bias)] }
    public var unitWeights: Variable { weight }
    public var requiredInputShape: [Int]? { [inputCount] }

    // MARK: Description

    public static let kind = "linear"

    public static func description(inputCount: Int, outputCount: Int) -> LayerDescription {
        LayerDescription(kind: kind, settings: ["inputCount": .integer(inputCount), "outputCount": .integer(outputCount)])
    }

    public var layerDescription: LayerDescription { Linear.description(inputCount: inputCount, outputCount: outputCount) }

    /// Input `[inputCount]` (a Flatten layer first turns images into rows), output `[outputCount]`; weight
    /// `[outputCount, inputCount]` and bias `[outputCount]`.
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings(["inputCount", "outputCount"])
        let i = try description.integer("inputCount", minimum: 1), o = try description.integer("outputCount", minimum: 1)
        guard i <= 1 << 28, o <= 1 << 28, i.multipliedReportingOverflow(by: o).overflow == false, i * o <= 1 << 34 else {
            throw ModelDescriptionError("layer 'linear': \(i) -> \(o) is too large")
        }
        guard inputShape == [i] else {
            throw ModelDescriptionError("layer 'linear' (\(i) -> \(o)) needs input shape [\(i)], got \(inputShape)")
        }
        return LayerPlan(outputShape: [o], parameterShapes: [.init(name: "weight", shape: [o, i]), .init(name: "bias", shape: [o])])
    }

    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Linear {
        _ = try plan(description, inputShape: inputShape)
        return Linear(inputCount: try description.integer("inputCount"), outputCount: try description.integer("outputCount"),
                      generator: &generator)
    }
}

