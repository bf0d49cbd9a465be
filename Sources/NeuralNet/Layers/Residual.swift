import TensorCore

/// A residual block: `body(x) + shortcut(x)` (He et al. 2016), the shortcut the identity unless given (a 1x1
/// convolution with stride and a batch norm where the body changes the shape). An activation after the sum is a
/// separate layer that follows the block.
///
/// Settings: `body` (a layer list) and optionally `shortcut` (a layer list; absent or empty = identity). Both must
/// produce the same shape. Parameters are named `body.<i>.<name>` and `shortcut.<i>.<name>`: the state dict of a
/// PyTorch module with two `nn.Sequential` attributes `body` and `shortcut` (Scripts/torch_models.py).
public final class Residual: LayerKind {
    public let body: Sequential
    public let shortcut: Sequential?

    public init(body: Sequential, shortcut: Sequential? = nil) {
        self.body = body
        self.shortcut = shortcut
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        forward(input, context: &context, relu: false)
    }

    /// The block followed by ReLU when `relu` (sum and clamp in one pass).
    public func forward(_ input: Variable, context: inout ForwardContext, relu: Bool) -> Variable {
        let main = body.forward(input, context: &context)
        let side = shortcut?.forward(input, context: &context) ?? input
        return relu && main.shape == side.shape ? addReLU(main, side) : (relu ? NeuralNet.relu(main + side) : main + side)
    }

    public func infer(_ input: Tensor) -> Tensor { infer(input, relu: false) }

    /// Evaluation mode, followed by ReLU when `relu`.
    public func infer(_ input: Tensor, relu: Bool) -> Tensor {
        let main = body.infer(input, splittingUnits: 1)
        let side = shortcut?.infer(input, splittingUnits: 1) ?? input
        return relu ? (main + side).relu() : main + side
    }

    public var namedParameters: [(name: String, parameter: Variable)] {
        body.namedParameters.map { ("body.\($0.name)", $0.parameter) }
            + (shortcut?.namedParameters.map { ("shortcut.\($0.name)", $0.parameter) } ?? [])
    }

    public var namedBuffers: [(name: String, buffer: Variable)] {
        body.namedBuffers.map { ("body.\($0.name)", $0.buffer) }
            + (shortcut?.namedBuffers.map { ("shortcut.\($0.name)", $0.buffer) } ?? [])
    }

    public static let kind = "residual"

    public static func description(body: [LayerDescription], shortcut: [LayerDescription] = []) -> LayerDescription {
        var s: [String: LayerDescription.Value] = ["body": .layers(body)]
        if !shortcut.isEmpty { s["shortcut"] = .layers(shortcut) }
        return LayerDescription(kind: kind, settings: s)
    }

    public var layerDescription: LayerDescription {
        Residual.description(body: body.layers.map(\.layerDescription), shortcut: shortcut?.layers.map(\.layerDescription) ?? [])
    }

    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings(["body", "shortcut"])
        let bodyLayers = try description.layers("body")
        guard !bodyLayers.isEmpty else { throw ModelDescriptionError("layer 'residual': setting 'body' must list at least one layer") }
        let body: LayerPlan, shortcut: LayerPlan?
        do { body = try Sequential.plan(Sequential.description(layers: bodyLayers), inputShape: inputShape) } catch let error as ModelDescriptionError {
            throw ModelDescriptionError("residual body: \(error.description)")
        }
        let shortcutLayers = try description.optionalLayers("shortcut")
        if shortcutLayers.isEmpty { shortcut = nil } else {
            do { shortcut = try Sequential.plan(Sequential.description(layers: shortcutLayers), inputShape: inputShape) } catch let error as ModelDescriptionError {
                throw ModelDescriptionError("residual shortcut: \(error.description)")
            }
        }
        let sideShape = shortcut?.outputShape ?? inputShape
        guard body.outputShape == sideShape else {
            throw ModelDescriptionError("layer 'residual': the body gives shape \(body.outputShape), the shortcut \(sideShape); they must agree (add a shortcut that maps the input)")
        }
        let b = body.prefixed("body"), s = shortcut?.prefixed("shortcut")
        return LayerPlan(outputShape: body.outputShape, parameterShapes: b.parameterShapes + (s?.parameterShapes ?? []),
                         bufferShapes: b.bufferShapes + (s?.bufferShapes ?? []))
    }

    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Residual {
        _ = try plan(description, inputShape: inputShape)
        let body = try Sequential.make(Sequential.description(layers: try description.layers("body")), inputShape: inputShape,
                                       generator: &generator)
        let shortcutLayers = try description.optionalLayers("shortcut")
        let shortcut = shortcutLayers.isEmpty ? nil
            : try Sequential.make(Sequential.description(layers: shortcutLayers), inputShape: inputShape, generator: &generator)
        return Residual(body: body, shortcut: shortcut)
    }
}
