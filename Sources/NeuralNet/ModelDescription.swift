import TensorCore

/// What a layer kind knows before any weight exists: the output shape for an input shape, and the parameters'
/// names and shapes. Shapes are per example (no batch dimension).
public struct LayerPlan: Equatable, Sendable {
    public var outputShape: [Int]
    public var parameterShapes: [ParameterShape]
    /// Buffers (state that is not trained, e.g. a batch norm's running statistics), named as in the state dict.
    public var bufferShapes: [ParameterShape]

    public struct ParameterShape: Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        public init(name: String, shape: [Int]) {
            self.name = name
            self.shape = shape
        }
        public var count: Int { shape.reduce(1, *) }
    }

    public init(outputShape: [Int], parameterShapes: [ParameterShape] = [], bufferShapes: [ParameterShape] = []) {
        self.outputShape = outputShape
        self.parameterShapes = parameterShapes
        self.bufferShapes = bufferShapes
    }

    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.count } }
    /// Elements of the parameters and buffers together (what a model file holds).
    public var stateCount: Int { parameterCount + bufferShapes.reduce(0) { $0 + $1.count } }

    /// The plan with every parameter and buffer name prefixed by `prefix` and a dot (a nested layer's names).
    public func prefixed(_ prefix: String) -> LayerPlan {
        LayerPlan(outputShape: outputShape,
                  parameterShapes: parameterShapes.map { .init(name: "\(prefix).\($0.name)", shape: $0.shape) },
                  bufferShapes: bufferShapes.map { .init(name: "\(prefix).\($0.name)", shape: $0.shape) })
    }
}

/// A kind of layer: the one place that knows how to read its description, check it against an input shape, and
/// build it. A new layer is a new file with a class conforming to this protocol, plus its line in
/// ``LayerKinds/all``.
public protocol LayerKind: Layer {
    /// The `kind` string of its descriptions ("linear").
    static var kind: String { get }
    /// Checks `description` for an input of per-example shape `inputShape`; throws a ``ModelDescriptionError`` that
    /// names the layer and the setting.
    static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan
    /// Builds the layer, drawing any initial weights from `generator`. Call only after `plan` succeeded.
    static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Self
}

/// The registry of layer kinds.
public enum LayerKinds {
    /// Every kind a description may name.
    public static let all: [any LayerKind.Type] = [
        Linear.self, ReLU.self, Dropout.self, Flatten.self, Identity.self, Sequential.self,
        Conv2d.self, MaxPool2d.self, AvgPool2d.self, GlobalAvgPool.self, BatchNorm1d.self, BatchNorm2d.self, Residual.self,
    ]

    /// The `kind` strings of `all`, in order.
    public static var names: [String] {
        var result: [String] = []
        for type in all { result.append(type.kind) }
        return result
    }

    public static func kind(named name: String) throws -> any LayerKind.Type {
        for type in all where type.kind == name { return type }
        throw ModelDescriptionError("unknown layer kind '\(name)' (known: \(names.joined(separator: ", ")))")
    }

    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try kind(named: description.kind).plan(description, inputShape: inputShape)
    }

    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Layer {
        try kind(named: description.kind).make(description, inputShape: inputShape, generator: &generator)
    }
}

/// A whole network as data: the per-example input shape and the layers, applied in order (PyTorch's
/// `nn.Sequential`). Codable; checkpoints carry it, and it builds the network it describes:
///
///     {"inputShape": [784], "layers": [{"kind": "linear", "inputCount": 784, "outputCount": 800},
///                                      {"kind": "relu"}, {"kind": "linear", "inputCount": 800, "outputCount": 10}]}
///
/// Parameter names follow PyTorch's state dict (`0.weight`, `2.bias`, nested `1.0.weight`).
public struct ModelDescription: Codable, Equatable, Sendable {
    public var inputShape: [Int]
    public var layers: [LayerDescription]

    public init(inputShape: [Int], layers: [LayerDescription]) {
        self.inputShape = inputShape
        self.layers = layers
    }

    /// The description of an MLP written as ``LayerSpecification``s.
    public init(inputShape: [Int], specifications: [LayerSpecification]) {
        self.init(inputShape: inputShape, layers: specifications.map(\.description))
    }

    /// Checks every layer in order against the shape flowing into it; the output shape and all parameters
    /// (state-dict names).
    public func plan() throws -> LayerPlan {
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelDescriptionError("the input shape must be a non-empty list of positive sizes, got \(inputShape)")
        }
        return try Sequential.plan(Sequential.description(layers: layers), inputShape: inputShape)
    }

    /// Builds the network with weights drawn from `generator` (PyTorch's default initialisation per layer).
    public func build(generator: inout RandomGenerator) throws -> Sequential {
        _ = try plan()
        return try Sequential.make(Sequential.description(layers: layers), inputShape: inputShape, generator: &generator)
    }
}

extension ModelDescription {
    /// The per-example output shape of every top-level layer, in order.
    public func layerOutputShapes() throws -> [[Int]] {
        var shape = inputShape
        var shapes: [[Int]] = []
        for (index, layer) in layers.enumerated() {
            do { shape = try LayerKinds.plan(layer, inputShape: shape).outputShape } catch let error as ModelDescriptionError {
                throw ModelDescriptionError("layer \(index): \(error.description)")
            }
            shapes.append(shape)
        }
        return shapes
    }
}
