import Foundation
import TensorCore

/// A 2-D convolution, PyTorch's `nn.Conv2d`: input `[batch, inChannels, H, W]`, output `[batch, outChannels, Ho, Wo]`.
///
/// Settings: `inChannels`, `outChannels`, `kernelSize`, and optionally `stride` (1), `padding` (0), `dilation` (1)
/// (each a whole number or `[h, w]`), `groups` (1) and `bias` (true). Weight `[outChannels, inChannels / groups,
/// kh, kw]`, bias `[outChannels]`. Initialisation as PyTorch's default (`kaiming_uniform_(a=sqrt(5))`): every
/// weight and bias element ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = inChannels / groups * kh * kw.
/// A following ReLU runs in the same pass (``FusesActivation``).
public final class Conv2d: LayerKind, FusesActivation {
    public let weight: Variable
    public let bias: Variable?
    public let geometry: ConvolutionGeometry

    public init(geometry: ConvolutionGeometry, bias: Bool = true, generator: inout RandomGenerator) {
        self.geometry = geometry
        let bound = 1 / Float(geometry.filterSize).squareRoot()
        weight = Variable(Tensor.uniform(geometry.weightShape, low: -bound, high: bound, generator: &generator), requiresGrad: true)
        self.bias = bias ? Variable(Tensor.uniform([geometry.outChannels], low: -bound, high: bound, generator: &generator), requiresGrad: true) : nil
    }

    /// A layer with the given weight and bias (shapes checked against `geometry`).
    public init(geometry: ConvolutionGeometry, weight: Tensor, bias: Tensor?) {
        precondition(weight.shape == geometry.weightShape, "Conv2d: weight \(weight.shape) should be \(geometry.weightShape)")
        self.geometry = geometry
        self.weight = Variable(weight, requiresGrad: true)
        self.bias = bias.map { Variable($0, requiresGrad: true) }
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        conv2d(input, weight: weight, bias: bias, geometry: geometry)
    }

    public func forward(_ input: Variable, fusedActivation activation: Activation) -> Variable {
        conv2d(input, weight: weight, bias: bias, geometry: geometry, activation: activation)
    }

    public func infer(_ input: Tensor) -> Tensor {
        Convolution.forward(input, weight: weight.value, bias: bias?.value, geometry: geometry)
    }

    public func infer(_ input: Tensor, fusedActivation activation: Activation, splittingUnits parts: Int) -> Tensor {
        Convolution.forward(input, weight: weight.value, bias: bias?.value, geometry: geometry, relu: activation == .relu)
    }

    /// Evaluation mode followed by `norm` in evaluation mode (and a ReLU when `relu`), as one convolution: the batch
    /// norm's scale `gamma / sqrt(var + eps)` folded into each output channel's filter and its shift into the bias
    /// (what ONNX Runtime and PyTorch's `fuse_conv_bn_eval` do). Equal to the two layers up to float rounding.
    public func infer(_ input: Tensor, foldingIn norm: BatchNormalization, relu: Bool) -> Tensor {
        let (w, b) = folded(norm)
        return Convolution.forward(input, weight: w, bias: b, geometry: geometry, relu: relu)
    }

    /// The weight and bias of this convolution with `norm` (evaluation mode) folded in.
    public func folded(_ norm: BatchNormalization) -> (weight: Tensor, bias: Tensor) {
        precondition(norm.featureCount == geometry.outChannels, "Conv2d: batch norm of \(norm.featureCount) channels after \(geometry.outChannels)")
        let channels = geometry.outChannels, perFilter = geometry.filterSize
        let mean = norm.runningMean.value.scalars, variance = norm.runningVariance.value.scalars
        let gamma = norm.weight?.value.scalars, beta = norm.bias?.value.scalars, b0 = bias?.value.scalars
        var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            // The same scale and shift as `batchNormInference`, the convolution's bias passed through them.
            let s = Float(1 / (Double(variance[c]) + Double(norm.epsilon)).squareRoot()) * (gamma?[c] ?? 1)
            scale[c] = s
            shift[c] = (beta?[c] ?? 0) + ((b0?[c] ?? 0) - mean[c]) * s
        }
        let w = weight.value.scalars
        let foldedWeight = Tensor(shape: geometry.weightShape) { out in
            for c in 0..<channels {
                for i in 0..<perFilter { out[c * perFilter + i] = w[c * perFilter + i] * scale[c] }
            }
        }
        return (foldedWeight, Tensor(shape: [channels], scalars: shift))
    }

    public var namedParameters: [(name: String, parameter: Variable)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    // MARK: Description

    public static let kind = "conv2d"

    public static func description(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                                   dilation: Int = 1, groups: Int = 1, bias: Bool = true) -> LayerDescription {
        var settings: [String: LayerDescription.Value] = [
            "inChannels": .integer(inChannels), "outChannels": .integer(outChannels), "kernelSize": .integer(kernelSize),
        ]
        if stride != 1 { settings["stride"] = .integer(stride) }
        if padding != 0 { settings["padding"] = .integer(padding) }
        if dilation != 1 { settings["dilation"] = .integer(dilation) }
        if groups != 1 { settings["groups"] = .integer(groups) }
        if !bias { settings["bias"] = .bool(false) }
        return LayerDescription(kind: kind, settings: settings)
    }

    public var layerDescription: LayerDescription {
        let g = geometry
        func value(_ p: (Int, Int)) -> LayerDescription.Value { p.0 == p.1 ? .integer(p.0) : .integers([p.0, p.1]) }
        var settings: [String: LayerDescription.Value] = [
            "inChannels": .integer(g.inChannels), "outChannels": .integer(g.outChannels),
            "kernelSize": value((g.kernelHeight, g.kernelWidth)),
        ]
        if (g.strideHeight, g.strideWidth) != (1, 1) { settings["stride"] = value((g.strideHeight, g.strideWidth)) }
        if (g.paddingHeight, g.paddingWidth) != (0, 0) { settings["padding"] = value((g.paddingHeight, g.paddingWidth)) }
        if (g.dilationHeight, g.dilationWidth) != (1, 1) { settings["dilation"] = value((g.dilationHeight, g.dilationWidth)) }
        if g.groups != 1 { settings["groups"] = .integer(g.groups) }
        if bias == nil { settings["bias"] = .bool(false) }
        return LayerDescription(kind: Conv2d.kind, settings: settings)
    }

    /// The geometry a description gives for per-example input `[C, H, W]`.
    static func geometry(_ d: LayerDescription, inputShape: [Int]) throws -> ConvolutionGeometry {
        try d.checkSettings(["inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups", "bias"])
        let inChannels = try d.integer("inChannels", minimum: 1), outChannels = try d.integer("outChannels", minimum: 1)
        let kernel = try d.pair("kernelSize", minimum: 1)
        let stride = try d.pair("stride", minimum: 1, default: (1, 1))
        let padding = try d.pair("padding", minimum: 0, default: (0, 0))
        let dilation = try d.pair("dilation", minimum: 1, default: (1, 1))
        let groups = try d.integer("groups", minimum: 1, default: 1)
        _ = try d.bool("bias", default: true)
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw ModelDescriptionError("layer 'conv2d': inChannels (\(inChannels)) and outChannels (\(outChannels)) must be divisible by groups (\(groups))")
        }
        guard inputShape.count == 3, inputShape[0] == inChannels else {
            throw ModelDescriptionError("layer 'conv2d' (\(inChannels) -> \(outChannels) channels) needs input shape [\(inChannels), height, width], got \(inputShape)")
        }
        let g = ConvolutionGeometry(inChannels: inChannels, outChannels: outChannels, height: inputShape[1], width: inputShape[2],
                                    kernel: kernel, stride: stride, padding: padding, dilation: dilation, groups: groups)
        guard g.filterSize <= 1 << 24, outChannels <= 1 << 20, g.outChannels * g.filterSize <= 1 << 30 else {
            throw ModelDescriptionError("layer 'conv2d': \(inChannels) -> \(outChannels) channels with a \(kernel.0)x\(kernel.1) kernel is too large")
        }
        guard g.outHeight >= 1, g.outWidth >= 1,
              inputShape[1] + 2 * padding.0 >= dilation.0 * (kernel.0 - 1) + 1,
              inputShape[2] + 2 * padding.1 >= dilation.1 * (kernel.1 - 1) + 1 else {
            throw ModelDescriptionError("layer 'conv2d': a \(kernel.0)x\(kernel.1) kernel (dilation \(dilation.0)x\(dilation.1), padding \(padding.0)x\(padding.1)) does not fit the \(inputShape[1])x\(inputShape[2]) input")
        }
        guard g.outHeight * g.outWidth <= 1 << 26 else {
            throw ModelDescriptionError("layer 'conv2d': output \(g.outHeight)x\(g.outWidth) is too large")
        }
        return g
    }

    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        let g = try geometry(description, inputShape: inputShape)
        var parameters: [LayerPlan.ParameterShape] = [.init(name: "weight", shape: g.weightShape)]
        if try description.bool("bias", default: true) { parameters.append(.init(name: "bias", shape: [g.outChannels])) }
        return LayerPlan(outputShape: [g.outChannels, g.outHeight, g.outWidth], parameterShapes: parameters)
    }

    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Conv2d {
        let g = try geometry(description, inputShape: inputShape)
        return Conv2d(geometry: g, bias: try description.bool("bias", default: true), generator: &generator)
    }
}
