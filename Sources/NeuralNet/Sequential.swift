import TensorCore

/// Layers applied in order, PyTorch's `nn.Sequential`. Parameters are named `<index>.<name>` exactly as PyTorch's
/// state dict names them (`0.weight`, `0.bias`, `3.weight`, ...), so checkpoints load into `nn.Sequential`.
///
/// A `Linear` directly followed by `ReLU` runs as one fused op (bias, activation and mask in one pass).
public final class Sequential: Layer {
    public let layers: [Layer]

    public init(_ layers: [Layer]) { self.layers = layers }

    /// Builds the layers described by `specifications`, initialising weights from `generator`.
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

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        var x = input
        var i = 0
        while i < layers.count {
            if let dense = layers[i] as? Linear, i + 1 < layers.count, layers[i + 1] is ReLU {
                x = dense.forward(x, activation: .relu)
                i += 2
            } else {
                x = layers[i].forward(x, context: &context)
                i += 1
            }
        }
        return x
    }

    /// Evaluation-mode forward pass. A few rows (at most `unitSplitMaxRows`, e.g. one image) on several compute
    /// threads run with each layer's units split over the threads (`linearForwardSplittingUnits`): one image
    /// through 784-800-800-10 takes about half the time of one thread (Benchmarks.md, latency). Larger batches use
    /// the threaded BLAS product.
    public func infer(_ input: Tensor) -> Tensor {
        let threads = ComputeThreads.count
        if threads > 1, input.rank == 2, input.shape[0] <= Sequential.unitSplitMaxRows, isRowWise {
            return ComputeThreads.withOneThread { inferLayers(input, splittingUnits: threads) }
        }
        return inferLayers(input, splittingUnits: 1)
    }

    /// Largest batch `infer` runs with the units split over the threads.
    nonisolated(unsafe) public static var unitSplitMaxRows = 4

    /// Whether every layer is a built-in one (rows independent, units of a `Linear` independent).
    var isRowWise: Bool {
        layers.allSatisfy { layer in
            if let inner = layer as? Sequential { return inner.isRowWise }
            return layer is Linear || layer is ReLU || layer is Dropout || layer is Flatten
        }
    }

    func inferLayers(_ input: Tensor, splittingUnits parts: Int) -> Tensor {
        var x = input
        var i = 0
        while i < layers.count {
            let fuseReLU = i + 1 < layers.count && layers[i + 1] is ReLU
            if let dense = layers[i] as? Linear {
                let activation: Activation = fuseReLU ? .relu : .identity
                x = parts > 1
                    ? linearForwardSplittingUnits(x, weight: dense.weight.value, bias: dense.bias.value, activation: activation, parts: parts)
                    : linearForward(x, weight: dense.weight.value, bias: dense.bias.value, activation: activation)
                i += fuseReLU ? 2 : 1
            } else if let inner = layers[i] as? Sequential {
                x = inner.inferLayers(x, splittingUnits: parts)
                i += 1
            } else {
                x = layers[i].infer(x)
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

    public var specification: LayerSpecification { .sequential(specifications) }
    public var specifications: [LayerSpecification] { layers.map(\.specification) }

    /// All parameters in order.
    public var parameters: [Variable] { namedParameters.map(\.parameter) }

    /// Number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Drops every parameter's gradient.
    public func zeroGradients() { for p in parameters { p.zeroGradient() } }

    /// The `Linear` layers in order (the weight matrices), including those of nested `Sequential`s.
    public var linearLayers: [Linear] {
        layers.flatMap { layer -> [Linear] in
            if let linear = layer as? Linear { return [linear] }
            return (layer as? Sequential)?.linearLayers ?? []
        }
    }
}
