import TensorCore

/// Settings shared by the pooling layers: `kernelSize`, `stride` (default: the kernel size), `padding` (0) and, for
/// max pooling, `dilation` (1); each a whole number or `[h, w]`. Input `[C, H, W]` per example.
enum PoolingSettings {
    static func geometry(_ d: LayerDescription, inputShape: [Int], dilation allowsDilation: Bool) throws -> PoolingGeometry {
        try d.checkSettings(allowsDilation ? ["kernelSize", "stride", "padding", "dilation"] : ["kernelSize", "stride", "padding", "countIncludePad"])
        let kernel = try d.pair("kernelSize", minimum: 1)
        let stride = try d.pair("stride", minimum: 1, default: kernel)
        let padding = try d.pair("padding", minimum: 0, default: (0, 0))
        let dilation = allowsDilation ? try d.pair("dilation", minimum: 1, default: (1, 1)) : (1, 1)
        guard inputShape.count == 3 else {
            throw ModelDescriptionError("layer '\(d.kind)' needs input shape [channels, height, width], got \(inputShape)")
        }
        // PyTorch: padding at most half the kernel, so every window holds at least one input.
        guard padding.0 * 2 <= kernel.0, padding.1 * 2 <= kernel.1 else {
            throw ModelDescriptionError("layer '\(d.kind)': padding [\(padding.0), \(padding.1)] must be at most half the kernel size [\(kernel.0), \(kernel.1)]")
        }
        let g = PoolingGeometry(height: inputShape[1], width: inputShape[2], kernel: kernel, stride: stride, padding: padding,
                                dilation: dilation)
        guard inputShape[1] + 2 * padding.0 >= dilation.0 * (kernel.0 - 1) + 1,
              inputShape[2] + 2 * padding.1 >= dilation.1 * (kernel.1 - 1) + 1, g.outHeight >= 1, g.outWidth >= 1 else {
            throw ModelDescriptionError("layer '\(d.kind)': a \(kernel.0)x\(kernel.1) window does not fit the \(inputShape[1])x\(inputShape[2]) input")
        }
        return g
    }

    static func settings(_ g: PoolingGeometry, dilation: Bool) -> [String: LayerDescription.Value] {
        func value(_ p: (Int, Int)) -> LayerDescription.Value { p.0 == p.1 ? .integer(p.0) : .integers([p.0, p.1]) }
        var s: [String: LayerDescription.Value] = ["kernelSize": value((g.kernelHeight, g.kernelWidth))]
        if (g.strideHeight, g.strideWidth) != (g.kernelHeight, g.kernelWidth) { s["stride"] = value((g.strideHeight, g.strideWidth)) }
        if (g.paddingHeight, g.paddingWidth) != (0, 0) { s["padding"] = value((g.paddingHeight, g.paddingWidth)) }
        if dilation, (g.dilationHeight, g.dilationWidth) != (1, 1) { s["dilation"] = value((g.dilationHeight, g.dilationWidth)) }
        return s
    }
}

/// Max pooling, PyTorch's `nn.MaxPool2d` (`ceil_mode=False`): `[C, H, W]` -> `[C, Ho, Wo]`.
public final class MaxPool2d: LayerKind {
    public let geometry: PoolingGeometry
    /// The geometry's input size is the one the layer was built for; other sizes get their own geometry.
    public init(geometry: PoolingGeometry) { self.geometry = geometry }

    func geometry(for shape: [Int]) -> PoolingGeometry {
        var g = geometry
        g.height = shape[2]
        g.width = shape[3]
        return g
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        maxPool2d(input, geometry: geometry(for: input.shape))
    }
    public func infer(_ input: Tensor) -> Tensor { Pooling.maxForward(input, geometry(for: input.shape)).output }

    public static let kind = "maxPool2d"
    public var layerDescription: LayerDescription {
        LayerDescription(kind: MaxPool2d.kind, settings: PoolingSettings.settings(geometry, dilation: true))
    }
    public static func description(kernelSize: Int, stride: Int? = nil) -> LayerDescription {
        var s: [String: LayerDescription.Value] = ["kernelSize": .integer(kernelSize)]
        if let stride, stride != kernelSize { s["stride"] = .integer(stride) }
        return LayerDescription(kind: kind, settings: s)
    }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        let g = try PoolingSettings.geometry(description, inputShape: inputShape, dilation: true)
        return LayerPlan(outputShape: [inputShape[0], g.outHeight, g.outWidth])
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> MaxPool2d {
        MaxPool2d(geometry: try PoolingSettings.geometry(description, inputShape: inputShape, dilation: true))
    }
}

/// Average pooling, PyTorch's `nn.AvgPool2d` (`ceil_mode=False`; `countIncludePad`, default true, divides by the
/// whole window including padding).
public final class AvgPool2d: LayerKind {
    public let geometry: PoolingGeometry
    public let countIncludePad: Bool
    public init(geometry: PoolingGeometry, countIncludePad: Bool = true) {
        self.geometry = geometry
        self.countIncludePad = countIncludePad
    }

    func geometry(for shape: [Int]) -> PoolingGeometry {
        var g = geometry
        g.height = shape[2]
        g.width = shape[3]
        return g
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        avgPool2d(input, geometry: geometry(for: input.shape), countIncludePad: countIncludePad)
    }
    public func infer(_ input: Tensor) -> Tensor {
        Pooling.averageForward(input, geometry(for: input.shape), countIncludePad: countIncludePad)
    }

    public static let kind = "avgPool2d"
    public var layerDescription: LayerDescription {
        var s = PoolingSettings.settings(geometry, dilation: false)
        if !countIncludePad { s["countIncludePad"] = .bool(false) }
        return LayerDescription(kind: AvgPool2d.kind, settings: s)
    }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        let g = try PoolingSettings.geometry(description, inputShape: inputShape, dilation: false)
        _ = try description.bool("countIncludePad", default: true)
        return LayerPlan(outputShape: [inputShape[0], g.outHeight, g.outWidth])
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> AvgPool2d {
        AvgPool2d(geometry: try PoolingSettings.geometry(description, inputShape: inputShape, dilation: false),
                  countIncludePad: try description.bool("countIncludePad", default: true))
    }
}

/// Global average pooling: the mean of each channel over all positions, `[C, H, W]` -> `[C]` (PyTorch:
/// `nn.AdaptiveAvgPool2d(1)` followed by `nn.Flatten()`, here one layer).
public final class GlobalAvgPool: LayerKind {
    public init() {}
    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable { globalAveragePool(input) }
    public func infer(_ input: Tensor) -> Tensor { globalAveragePool(Variable(input)).value }

    public static let kind = "globalAvgPool"
    public var layerDescription: LayerDescription { LayerDescription(kind: GlobalAvgPool.kind) }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings([])
        guard inputShape.count >= 2 else {
            throw ModelDescriptionError("layer 'globalAvgPool' needs input shape [channels, height, width], got \(inputShape)")
        }
        return LayerPlan(outputShape: [inputShape[0]])
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> GlobalAvgPool {
        _ = try plan(description, inputShape: inputShape)
        return GlobalAvgPool()
    }
}
