import TensorCore

/// What a forward pass needs besides its input: the training flag and the random generator (for dropout).
/// Both are passed in explicitly; nothing is global.
public struct ForwardContext {
    /// Training mode (dropout active) or evaluation mode.
    public var training: Bool
    /// Source of randomness for stochastic layers.
    public var generator: RandomGenerator

    public init(training: Bool, generator: RandomGenerator = RandomGenerator(seed: 0)) {
        self.training = training
        self.generator = generator
    }
}

/// A differentiable layer (MLX/swift-apis style): `callAsFunction` on variables builds the autograd graph,
/// `infer` on tensors evaluates without one.
public protocol Layer: AnyObject {
    /// The training-time forward pass on `[batch, ...]` input.
    func forward(_ input: Variable, context: inout ForwardContext) -> Variable
    /// Evaluation-mode forward pass on plain tensors (dropout off, no graph).
    func infer(_ input: Tensor) -> Tensor
    /// Parameters with their local names (`weight`, `bias`), in PyTorch's order.
    var namedParameters: [(name: String, parameter: Variable)] { get }
    /// A serialisable description of the layer (its architecture, not its weights).
    var specification: LayerSpecification { get }
}

extension Layer {
    public func callAsFunction(_ input: Variable, context: inout ForwardContext) -> Variable {
        forward(input, context: &context)
    }
    public var namedParameters: [(name: String, parameter: Variable)] { [] }
}

/// The architecture of one layer, as stored in checkpoint metadata.
public indirect enum LayerSpecification: Codable, Equatable, Sendable {
    case linear(inputCount: Int, outputCount: Int)
    case relu
    case dropout(probability: Float)
    case flatten
    case sequential([LayerSpecification])
}
