import TensorCore

/// Layers applied in order, PyTorch's `nn.Sequential`. Parameters are named `<index>.<name>` exactly as PyTorch's
/// state dict names them (`0.weight`, `0.bias`, `3.weight`, ...), so checkpoints load into `nn.Sequential`.
///
/// A layer that ``FusesActivation`` directly followed by an ``ActivationLayer`` runs as one fused op (a Linear
/// layer and ReLU: bias, activation and mask in one pass).
public final class Sequential: LayerKind, RowWise {
    public let layers: [Layer]
    /// The per-example input shape: given, or the shape the first shape-fixing layer requires when only
    /// shape-preserving layers (dropout, activations, identity, and a Flatten before a layer that takes rows) come
    /// before it; nil when unknown.
    public let inputShape: [Int]?

    public init(_ layers: [Layer], inputShape: [Int]? = nil) {
        self.layers = layers
        self.inputShape = inputShape ?? Sequential.inferInputShape(layers)
    }

    /// Builds the layers described by `specifications` (an MLP), initialising weights from `generator`.
    public convenience init(specifications: [LayerSpecification], generator: inout RandomGenerator) {
        var layers: [Layer] = []
        for spec in specifications {
            switch spec {
            case let .linear(i, o): layers.append(Linear(inputCount: i, outputCount: o, generator: &generator))
            case .relu: layers.append(ReLU())
            case let .dropout(p): layers.append(Dropout(probability: p))
            case .flatten: layers.append(Flatten())
            case let .sequential(inner): layers.append(Sequential(specifications: inner, generator: &generator))
            }
        }
        self.init(layers)
    }

    static func inferInputShape(_ layers: [Layer]) -> [Int]? {
        var flattens = false
        for layer in layers {
            if let shape = layer.requiredInputShape { return flattens && shape.count != 1 ? nil : shape }
            if layer is Flatten { flattens = true; continue }
            guard layer is ActivationLayer || layer is Dropout || layer is Identity else { return nil }
        }
        return nil
    }

    public var requiredInputShape: [Int]? { inputShape }

    /// The shape a batch of `batch` examples takes for this model: `[batch] + inputShape`, when `shape` holds as many
    /// values per example in another shape (an image batch `[B, 1, 28, 28]` for a model on rows `[784]`); nil when
    /// no reshape is needed or possible.
    func conformingShape(_ shape: [Int]) -> [Int]? { Sequential.conformingShape(shape, to: inputShape) }

    /// `[batch] + inputShape` when `shape` (`[batch, ...]`) holds as many values per example in another shape; nil
    /// when no reshape is needed or possible.
    public static func conformingShape(_ shape: [Int], to inputShape: [Int]?) -> [Int]? {
        guard let inputShape, shape.count >= 1, Array(shape.dropFirst()) != inputShape,
              shape.dropFirst().reduce(1, *) == inputShape.reduce(1, *) else { return nil }
        return [shape[0]] + inputShape
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        var x = input
        if let shape = conformingShape(input.shape) { x = reshape(input, shape) }
        var i = 0
        while i < layers.count {
            let nextIsReLU = i + 1 < layers.count && (layers[i + 1] as? ActivationLayer)?.activation == .relu
            if let fusing = layers[i] as? FusesActivation, i + 1 < layers.count, let next = layers[i + 1] as? ActivationLayer {
                x = fusing.forward(x, fusedActivation: next.activation)
                i += 2
            } else if nextIsReLU, let norm = layers[i] as? BatchNormalization {
                // Batch norm and ReLU in one pass (`batchNormTraining(relu:)`).
                x = norm.forward(x, context: &context, relu: true)
                i += 2
            } else if nextIsReLU, let block = layers[i] as? Residual {
                x = block.forward(x, context: &context, relu: true)
                i += 2
            } else {
                x = layers[i].forward(x, context: &context)
                i += 1
            }
        }
        return x
    }

    /// The forward pass that also returns the outputs of the top-level layers in `capturing` (their indices): the
    /// intermediate features that feature distillation compares. A captured layer is not fused with the activation
    /// after it, so its own output exists; capturing that activation's output keeps the fusion.
    public func forward(_ input: Variable, context: inout ForwardContext, capturing: Set<Int>) -> (output: Variable, captured: [Int: Variable]) {
        guard !capturing.isEmpty else { return (forward(input, context: &context), [:]) }
        var x = input
        if let shape = conformingShape(input.shape) { x = reshape(input, shape) }
        var captured: [Int: Variable] = [:]
        var i = 0
        while i < layers.count {
            if !capturing.contains(i), let fusing = layers[i] as? FusesActivation, i + 1 < layers.count,
               let next = layers[i + 1] as? ActivationLayer {
                x = fusing.forward(x, fusedActivation: next.activation)
                i += 2
            } else {
                x = layers[i].forward(x, context: &context)
                i += 1
            }
            if capturing.contains(i - 1) { captured[i - 1] = x }
        }
        return (x, captured)
    }

    /// Evaluation-mode forward pass returning the outputs of the top-level layers in `capturing` as well.
    public func infer(_ input: Tensor, capturing: Set<Int>) -> (output: Tensor, captured: [Int: Tensor]) {
        guard !capturing.isEmpty else { return (infer(input), [:]) }
        var x = conformingShape(input.shape).map { input.reshaped($0) } ?? input
        var captured: [Int: Tensor] = [:]
        var i = 0
        while i < layers.count {
            if !capturing.contains(i), let conv = layers[i] as? Conv2d, i + 1 < layers.count,
               let norm = layers[i + 1] as? BatchNormalization, norm.featureCount == conv.geometry.outChannels {
                // As `infer`: the batch norm folded into the convolution (and a ReLU after it, unless the batch
                // norm's output is captured).
                let relu = !capturing.contains(i + 1) && i + 2 < layers.count && (layers[i + 2] as? ActivationLayer)?.activation == .relu
                x = conv.infer(x, foldingIn: norm, relu: relu)
                i += relu ? 3 : 2
            } else if !capturing.contains(i), let fusing = layers[i] as? FusesActivation, i + 1 < layers.count,
               let next = layers[i + 1] as? ActivationLayer {
                x = fusing.infer(x, fusedActivation: next.activation, splittingUnits: 1)
                i += 2
            } else {
                x = layers[i].infer(x)
                i += 1
            }
            if capturing.contains(i - 1) { captured[i - 1] = x }
        }
        return (x, captured)
    }

    /// The per-example output shape of every top-level layer for the model's input shape (nil when unknown).
    public var layerOutputShapes: [[Int]]? { try? modelDescription?.layerOutputShapes() }

    /// Evaluation-mode forward pass. A few rows (at most `unitSplitMaxRows`, e.g. one image) on several compute
    /// threads run with each layer's units split over the threads (``RowWise``): one image through 784-800-800-10
    /// takes about half the time of one thread (Benchmarks.md, latency). Larger batches use the threaded BLAS product.
    /// A convolution followed by a batch norm runs as one convolution with the batch norm folded in
    /// (``Conv2d/infer(_:foldingIn:relu:)``), equal to the graph's evaluation-mode forward pass up to rounding.
    public func infer(_ input: Tensor) -> Tensor {
        let input = conformingShape(input.shape).map { input.reshaped($0) } ?? input
        let threads = ComputeThreads.count
        if threads > 1, input.rank == 2, input.shape[0] <= Sequential.unitSplitMaxRows, isRowWise {
            return ComputeThreads.withOneThread { infer(input, splittingUnits: threads) }
        }
        // Feature maps: a large batch runs `spatialChunkRows` examples at a time, so its activations (50 MB per
        // ResNet-8 layer for 1,000 images) never all exist at once.
        let rows = input.rank >= 1 ? input.shape[0] : 0
        if input.rank >= 3, rows > Sequential.spatialChunkRows {
            var parts: [Tensor] = []
            var start = 0
            while start < rows {
                let end = Swift.min(start + Sequential.spatialChunkRows, rows)
                parts.append(infer(input.rows(start..<end), splittingUnits: 1))
                start = end
            }
            return Tensor(concatenatingRows: parts)
        }
        return infer(input, splittingUnits: 1)
    }

    /// Examples per pass when `infer` evaluates a large batch of feature maps (image input).
    nonisolated(unsafe) public static var spatialChunkRows = 250

    /// Largest batch `infer` runs with the units split over the threads.
    nonisolated(unsafe) public static var unitSplitMaxRows = 4

    /// Whether every layer declares ``RowWise`` (nested sequences: all of theirs).
    var isRowWise: Bool {
        layers.allSatisfy { layer in
            if let inner = layer as? Sequential { return inner.isRowWise }
            return layer is RowWise
        }
    }

    public func infer(_ input: Tensor, splittingUnits parts: Int) -> Tensor {
        var x = conformingShape(input.shape).map { input.reshaped($0) } ?? input
        var i = 0
        while i < layers.count {
            if let conv = layers[i] as? Conv2d, i + 1 < layers.count, let norm = layers[i + 1] as? BatchNormalization,
               norm.featureCount == conv.geometry.outChannels {
                // Convolution, batch norm (and ReLU) as one convolution with the batch norm folded in.
                let relu = i + 2 < layers.count && (layers[i + 2] as? ActivationLayer)?.activation == .relu
                x = conv.infer(x, foldingIn: norm, relu: relu)
                i += relu ? 3 : 2
            } else if let fusing = layers[i] as? FusesActivation {
                let activation = (i + 1 < layers.count ? layers[i + 1] as? ActivationLayer : nil)?.activation
                x = fusing.infer(x, fusedActivation: activation ?? .identity, splittingUnits: parts)
                i += activation == nil ? 1 : 2
            } else if i + 1 < layers.count, (layers[i + 1] as? ActivationLayer)?.activation == .relu,
                      let norm = layers[i] as? BatchNormalization {
                x = norm.infer(x, relu: true)
                i += 2
            } else {
                x = parts > 1 ? ((layers[i] as? RowWise)?.infer(x, splittingUnits: parts) ?? layers[i].infer(x)) : layers[i].infer(x)
                i += 1
            }
        }
        return x
    }

    public var namedParameters: [(name: String, parameter: Variable)] {
        layers.enumerated().flatMap { index, layer in
            layer.namedParameters.map { ("\(index).\($0.name)", $0.parameter) }
        }
    }

    public var namedBuffers: [(name: String, buffer: Variable)] {
        layers.enumerated().flatMap { index, layer in
            layer.namedBuffers.map { ("\(index).\($0.name)", $0.buffer) }
        }
    }

    /// Whether any layer, nested ones included, is a convolution.
    public var containsConvolution: Bool {
        layers.contains { layer in
            if layer is Conv2d { return true }
            if let inner = layer as? Sequential { return inner.containsConvolution }
            if let block = layer as? Residual { return block.body.containsConvolution || (block.shortcut?.containsConvolution ?? false) }
            return false
        }
    }

    /// Number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Drops every parameter's gradient.
    public func zeroGradients() { for p in parameters { p.zeroGradient() } }

    /// Every layer in order, nested sequences expanded.
    public var flattenedLayers: [Layer] {
        layers.flatMap { layer -> [Layer] in (layer as? Sequential)?.flattenedLayers ?? [layer] }
    }

    /// The layers with unit weight matrices (``UnitWeights``), in order, nested sequences included.
    public var unitWeightLayers: [UnitWeights] { flattenedLayers.compactMap { $0 as? UnitWeights } }

    /// The bias of the last layer that has one: the output layer's, whose entries shift the logits of single classes.
    public var outputBias: Variable? {
        flattenedLayers.reversed().lazy.compactMap { layer in layer.namedParameters.first { $0.name == "bias" }?.parameter }.first
    }

    /// The whole network as a description (nil when the input shape is unknown).
    public var modelDescription: ModelDescription? {
        inputShape.map { ModelDescription(inputShape: $0, layers: layers.map(\.layerDescription)) }
    }

    /// The per-example output shape for the model's input shape (nil when unknown or inconsistent).
    public var outputShape: [Int]? {
        guard let description = modelDescription else { return nil }
        return try? description.plan().outputShape
    }

    // MARK: Description

    public static let kind = "sequential"

    public static func description(layers: [LayerDescription]) -> LayerDescription {
        LayerDescription(kind: kind, settings: ["layers": .layers(layers)])
    }

    public var layerDescription: LayerDescription { Sequential.description(layers: layers.map(\.layerDescription)) }

    /// Plans each layer on the shape the previous one produces; parameters are named `<index>.<name>`.
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings(["layers"])
        var shape = inputShape
        var parameters: [LayerPlan.ParameterShape] = []
        var buffers: [LayerPlan.ParameterShape] = []
        for (index, layer) in try description.layers("layers").enumerated() {
            let plan: LayerPlan
            do { plan = try LayerKinds.plan(layer, inputShape: shape) } catch let error as ModelDescriptionError {
                throw ModelDescriptionError("layer \(index): \(error.description)")
            }
            let named = plan.prefixed(String(index))
            parameters += named.parameterShapes
            buffers += named.bufferShapes
            shape = plan.outputShape
        }
        return LayerPlan(outputShape: shape, parameterShapes: parameters, bufferShapes: buffers)
    }

    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Sequential {
        _ = try plan(description, inputShape: inputShape)
        var shape = inputShape
        var layers: [Layer] = []
        for layer in try description.layers("layers") {
            layers.append(try LayerKinds.make(layer, inputShape: shape, generator: &generator))
            shape = try LayerKinds.plan(layer, inputShape: shape).outputShape
        }
        return Sequential(layers, inputShape: inputShape)
    }
}
