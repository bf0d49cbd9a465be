import TensorCore

/// The identity, PyTorch's `nn.Identity`: a placeholder slot (it keeps the state-dict indices of the layers after it).
public final class Identity: LayerKind, RowWise {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable { input }
    public func infer(_ input: Tensor) -> Tensor { input }

    public static let kind = "identity"
    public var layerDescription: LayerDescription { LayerDescription(kind: Identity.kind) }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings([])
        return LayerPlan(outputShape: inputShape)
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Identity {
        _ = try plan(description, inputShape: inputShape)
        return Identity()
    }
}
