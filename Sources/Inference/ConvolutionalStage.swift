import NeuralNet
import TensorCore

/// The convolutional front of a model compiled to one oneDNN network (``OneDNNNetwork``) whose tensors stay in
/// oneDNN's blocked layouts from the input to the last pooling: convolutions with their batch norm folded in and
/// their ReLU (and a residual block's sum and ReLU) fused, max and average pooling, global average pooling.
///
/// ``make(layers:inputShape:)`` takes the longest prefix of a layer list it supports:
/// - `Conv2d`, then optionally a batch norm (folded into the weights and bias, `Conv2d.folded`) and a `ReLU`;
/// - `MaxPool2d`, `AvgPool2d`;
/// - `Residual` whose body is supported and ends with a convolution without ReLU (the sum is fused into it) and whose
///   shortcut is supported or the identity, then optionally a `ReLU` (fused after the sum);
/// - `Dropout` and `Identity` (nothing in evaluation mode);
/// - `GlobalAvgPool` and `Flatten` end the segment (a `Flatten` right after it is taken too).
///
/// The stage's output has the shape the taken layers give: `[n, C, H, W]`, or `[n, C * H * W]` after a
/// `GlobalAvgPool` or `Flatten` (NCHW order either way).
public final class ConvolutionalStage: InferenceStage {
    /// The compiled network.
    public let network: OneDNNNetwork
    /// Per-example input `[C, H, W]` and output shapes.
    public let inputShape: [Int], outputShape: [Int]
    public let summary: String
    /// The layers the network computes, run by their own evaluation-mode pass if oneDNN fails on a batch (out of
    /// memory for its buffers).
    let fallback: Sequential

    private init(network: OneDNNNetwork, outputShape: [Int], layerCount: Int, fallback: Sequential) {
        self.network = network
        self.fallback = fallback
        inputShape = network.inputShape
        self.outputShape = outputShape
        summary = "oneDNN network of \(layerCount) layers (blocked layouts)"
    }

    /// The stage for the longest supported prefix of `layers` on examples `inputShape` (`[C, H, W]`) and the number
    /// of layers it took; nil when oneDNN is not loaded or the first layer is not supported.
    public static func make(layers: ArraySlice<Layer>, inputShape: [Int]) -> (stage: ConvolutionalStage, consumed: Int)? {
        guard inputShape.count == 3 else { return nil }
        var planner = Planner(shape: inputShape)
        let steps = planner.plan(layers, wholeList: false)
        guard planner.consumed > 0, !steps.isEmpty, let network = OneDNNNetwork(inputShape: inputShape) else { return nil }
        guard emit(steps, from: 0, into: network) != nil else { return nil }
        var outputShape = network.outputShape
        if planner.flattened { outputShape = [outputShape.reduce(1, *)] }
        // The primitives for one image, made here so that a network oneDNN cannot run is found before it is used.
        guard network.forward(Tensor(shape: [1] + inputShape, repeating: 0), threads: 1) != nil else { return nil }
        let fallback = Sequential(Array(layers.prefix(planner.consumed)), inputShape: inputShape)
        return (ConvolutionalStage(network: network, outputShape: outputShape, layerCount: planner.consumed, fallback: fallback),
                planner.consumed)
    }

    public func run(_ input: Tensor, threads: Int) -> Tensor {
        let n = input.rank >= 1 ? input.shape[0] : 0
        precondition(input.count == n * inputShape.reduce(1, *),
                     "ConvolutionalStage: input \(input.shape) for examples of shape \(inputShape)")
        let y = network.forward(input, threads: threads) ?? fallback.infer(input.reshaped([n] + inputShape))
        return y.reshaped([n] + outputShape)
    }

    /// What the network computes, before it is built.
    indirect enum Step {
        case convolution(Conv2d, BatchNormalization?, relu: Bool)
        case pooling(OneDNNNetwork.PoolingKind, PoolingGeometry)
        /// A residual block: its body (ending in a convolution), its shortcut (nil: the identity), the ReLU after it.
        case residual(body: [Step], shortcut: [Step]?, relu: Bool)
    }

    /// Appends `steps` reading value `input`; the last output's number, nil when oneDNN refused an op.
    static func emit(_ steps: [Step], from input: Int, into network: OneDNNNetwork, residualOfLast: Int? = nil,
                     reluOfLast: Bool = false) -> Int? {
        var value = input
        for (i, step) in steps.enumerated() {
            let last = i == steps.count - 1
            switch step {
            case let .convolution(conv, norm, relu):
                let (weight, bias) = norm.map { conv.folded($0) } ?? (conv.weight.value, conv.bias?.value)
                guard let v = network.convolution(input: value, geometry: conv.geometry, weight: weight, bias: bias,
                                                  residual: last ? residualOfLast : nil, relu: relu || (last && reluOfLast))
                else { return nil }
                value = v
            case let .pooling(kind, geometry):
                guard let v = network.pooling(input: value, kind: kind, geometry: geometry) else { return nil }
                value = v
            case let .residual(body, shortcut, relu):
                let side = shortcut.map { emit($0, from: value, into: network) } ?? value
                guard let side, let v = emit(body, from: value, into: network, residualOfLast: side, reluOfLast: relu)
                else { return nil }
                value = v
            }
        }
        return value
    }

    /// Chooses the supported prefix of a layer list, following the per-example shape.
    struct Planner {
        var shape: [Int]
        var consumed = 0
        /// Whether the prefix ends with a GlobalAvgPool or Flatten (the output is rows).
        var flattened = false

        /// The steps for the longest supported prefix of `layers` (`consumed` layers); with `wholeList`, nil unless
        /// every layer is supported.
        mutating func plan(_ layers: ArraySlice<Layer>, wholeList: Bool) -> [Step] {
            var steps: [Step] = []
            var i = layers.startIndex
            func isReLU(_ j: Int) -> Bool { j < layers.endIndex && (layers[j] as? ActivationLayer)?.activation == .relu }
            while i < layers.endIndex, !flattened {
                let layer = layers[i]
                if let conv = layer as? Conv2d {
                    let g = conv.geometry
                    guard shape == [g.inChannels, g.height, g.width] else { break }
                    var taken = 1
                    var norm: BatchNormalization? = nil
                    if i + 1 < layers.endIndex, let n = layers[i + 1] as? BatchNormalization, n.featureCount == g.outChannels {
                        norm = n
                        taken += 1
                    }
                    let relu = isReLU(i + taken)
                    if relu { taken += 1 }
                    steps.append(.convolution(conv, norm, relu: relu))
                    shape = [g.outChannels, g.outHeight, g.outWidth]
                    i += taken
                } else if let pool = layer as? MaxPool2d, let g = fitted(pool.geometry) {
                    steps.append(.pooling(.max, g))
                    i += 1
                } else if let pool = layer as? AvgPool2d, var g = fitted(pool.geometry) {
                    g.dilationHeight = 1
                    g.dilationWidth = 1
                    steps.append(.pooling(pool.countIncludePad ? .averageIncludingPadding : .averageExcludingPadding, g))
                    i += 1
                } else if layer is GlobalAvgPool {
                    let g = PoolingGeometry(height: shape[1], width: shape[2], kernel: (shape[1], shape[2]), stride: (1, 1))
                    steps.append(.pooling(.averageIncludingPadding, g))
                    shape = [shape[0], 1, 1]
                    flattened = true
                    i += 1
                    if i < layers.endIndex, layers[i] is Flatten { i += 1 }
                } else if layer is Flatten {
                    guard !steps.isEmpty else { break }
                    flattened = true
                    i += 1
                } else if layer is Dropout || layer is Identity {
                    i += 1
                } else if let block = layer as? Residual, let step = residual(block, relu: isReLU(i + 1)) {
                    steps.append(step)
                    i += isReLU(i + 1) ? 2 : 1
                } else {
                    break
                }
            }
            consumed = i - layers.startIndex
            if wholeList && i != layers.endIndex { return [] }
            return steps
        }

        /// `g` on the current shape, nil when its window does not fit.
        mutating func fitted(_ g: PoolingGeometry) -> PoolingGeometry? {
            var g = g
            g.height = shape[1]
            g.width = shape[2]
            guard g.outHeight >= 1, g.outWidth >= 1 else { return nil }
            shape = [shape[0], g.outHeight, g.outWidth]
            return g
        }

        /// The step of a residual block on the current shape; nil unless its body and shortcut are supported whole,
        /// the body ends with a convolution without ReLU and both give the same shape.
        mutating func residual(_ block: Residual, relu: Bool) -> Step? {
            var body = Planner(shape: shape)
            let bodySteps = body.plan(block.body.layers[...], wholeList: true)
            guard !bodySteps.isEmpty, !body.flattened, case .convolution(_, _, relu: false)? = bodySteps.last else { return nil }
            var shortcutSteps: [Step]? = nil
            var sideShape = shape
            if let shortcut = block.shortcut, !shortcut.layers.isEmpty {
                var side = Planner(shape: shape)
                let steps = side.plan(shortcut.layers[...], wholeList: true)
                guard !steps.isEmpty, !side.flattened else { return nil }
                shortcutSteps = steps
                sideShape = side.shape
            }
            guard body.shape == sideShape else { return nil }
            shape = body.shape
            return .residual(body: bodySteps, shortcut: shortcutSteps, relu: relu)
        }
    }
}
