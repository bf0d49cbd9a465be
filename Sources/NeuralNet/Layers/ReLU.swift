import TensorCore

/// max(x, 0), PyTorch's `nn.ReLU`. Any shape.
public final class ReLU: LayerKind, ActivationLayer, RowWise {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable { relu(input) }
    public func infer(_ input: Tensor) -> Tensor { input.relu() }
    public var activation: Activation { .relu }

    public static let kind = "relu"
    public var layerDescription: LayerDescription { LayerDescription(kind: ReLU.kind) }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings([])
        return LayerPlan(outputShape: inputShape)
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> ReLU {
        _ = try plan(description, inputShape: inputShape)
        return ReLU()
    }
}
