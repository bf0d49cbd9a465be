import TensorCore

/// Flattens `[batch, d1, d2, ...]` to `[batch, d1 * d2 * ...]`, PyTorch's `nn.Flatten`.
public final class Flatten: LayerKind, RowWise {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        reshape(input, [input.shape.first ?? 1, -1])
    }
    public func infer(_ input: Tensor) -> Tensor { input.reshaped([input.shape.first ?? 1, -1]) }

    public static let kind = "flatten"
    public var layerDescription: LayerDescription { LayerDescription(kind: Flatten.kind) }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings([])
        return LayerPlan(outputShape: [inputShape.reduce(1, *)])
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Flatten {
        _ = try plan(description, inputShape: inputShape)
        return Flatten()
    }
}

