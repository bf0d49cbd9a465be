import TensorCore

/// What a forward pass needs besides its input: the training flag and the random generator (for dropout).
/// Both are passed in explicitly; nothing is global.
public struct ForwardContext {
    /// Training mode (dropout active) or evaluation mode.
    public var training: Bool
    /// Source of randomness for stochastic layers.
    public var generator: RandomGenerator
    /// Set when the input is a contiguous slice of rows of a larger batch (data-parallel training): stochastic
    /// layers then draw for the whole batch and keep this slice's rows, so every process draws what one process
    /// training on the whole batch draws. nil: the input is the whole batch.
    public var batchSlice: BatchSlice?

    public init(training: Bool, generator: RandomGenerator = RandomGenerator(seed: 0)) {
        self.training = training
        self.generator = generator
    }
}

/// Rows `offset ..< offset + count` of a batch of `total` rows.
public struct BatchSlice: Equatable, Sendable {
    public let offset: Int
    public let count: Int
    public let total: Int

    public init(offset: Int, count: Int, total: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= total, "slice \(offset)+\(count) outside a batch of \(total)")
        self.offset = offset
        self.count = count
        self.total = total
    }

    /// Part `index` of `parts` contiguous parts of a batch of `total` rows: rows `total * index / parts` up to
    /// `total * (index + 1) / parts` (sizes differ by at most one).
    public init(part index: Int, of parts: Int, total: Int) {
        let lo = total * index / parts, hi = total * (index + 1) / parts
        self.init(offset: lo, count: hi - lo, total: total)
    }

    /// The rows as a range.
    public var range: Range<Int> { offset ..< offset + count }
}

/// A differentiable layer (MLX/swift-apis style): `callAsFunction` on variables builds the autograd graph,
/// `infer` on tensors evaluates without one.
///
/// Shapes are per batch: `[batch, ...]` in and out. What a layer can do beyond that it declares by conforming to a
/// capability protocol: ``FusesActivation`` (absorbs a following ``ActivationLayer`` in one pass), ``RowWise`` (rows
/// independent, units splittable over threads for a few rows), ``UnitWeights`` (a weight matrix whose rows are the
/// units' incoming weights, for the max-norm constraint).
public protocol Layer: AnyObject {
    /// The training-time forward pass on `[batch, ...]` input.
    func forward(_ input: Variable, context: inout ForwardContext) -> Variable
    /// Evaluation-mode forward pass on plain tensors (dropout off, no graph).
    func infer(_ input: Tensor) -> Tensor
    /// Parameters with their local names (`weight`, `bias`), in PyTorch's order.
    var namedParameters: [(name: String, parameter: Variable)] { get }
    /// Buffers: state saved with the model but not trained (a batch norm's `running_mean`, `running_var` and
    /// `num_batches_tracked`), with local names as in PyTorch's state dict. Never given to an optimizer.
    var namedBuffers: [(name: String, buffer: Variable)] { get }
    /// The layer as a description (its kind and settings, not its weights): what checkpoints store.
    var layerDescription: LayerDescription { get }
    /// The per-example input shape the layer requires, when it fixes one (a Linear layer: `[inputCount]`).
    var requiredInputShape: [Int]? { get }
}

extension Layer {
    public func callAsFunction(_ input: Variable, context: inout ForwardContext) -> Variable {
        forward(input, context: &context)
    }
    public var namedParameters: [(name: String, parameter: Variable)] { [] }
    public var namedBuffers: [(name: String, buffer: Variable)] { [] }
    /// PyTorch's state dict: parameters and buffers by name (what model files hold).
    public var namedState: [(name: String, variable: Variable)] {
        namedParameters.map { ($0.name, $0.parameter) } + namedBuffers.map { ($0.name, $0.buffer) }
    }
    /// The parameters in order.
    public var parameters: [Variable] { namedParameters.map(\.parameter) }
    public var requiredInputShape: [Int]? { nil }
}

/// A pointwise activation that a preceding ``FusesActivation`` layer may apply in its own pass.
public protocol ActivationLayer: Layer {
    var activation: Activation { get }
}

/// A layer that can apply a following activation in the same pass (a Linear layer and ReLU: bias, activation and
/// mask in one sweep over the output).
public protocol FusesActivation: Layer {
    func forward(_ input: Variable, fusedActivation: Activation) -> Variable
    func infer(_ input: Tensor, fusedActivation: Activation, splittingUnits parts: Int) -> Tensor
}

/// A layer whose rows (examples) are independent, and whose output units can be computed in `parts` groups on as
/// many threads (``Sequential/infer(_:)`` does this for one image). Layers without parameters ignore `parts`.
public protocol RowWise: Layer {
    func infer(_ input: Tensor, splittingUnits parts: Int) -> Tensor
}

extension RowWise {
    public func infer(_ input: Tensor, splittingUnits parts: Int) -> Tensor { infer(input) }
}

/// A layer with a weight matrix `[units, fan-in]` whose rows are the units' incoming weights: what the max-norm
/// constraint of dropout nets bounds.
public protocol UnitWeights: Layer {
    var unitWeights: Variable { get }
}

/// The architecture of an MLP layer in the first checkpoint format (`distill-model/1`'s `architecture` list), and a
/// short way to write MLPs in code. ``description`` gives the general ``LayerDescription``.
public indirect enum LayerSpecification: Codable, Equatable, Sendable {
    case linear(inputCount: Int, outputCount: Int)
    case relu
    case dropout(probability: Float)
    case flatten
    case sequential([LayerSpecification])

    /// The same layer as a general description.
    public var description: LayerDescription {
        switch self {
        case let .linear(i, o): return Linear.description(inputCount: i, outputCount: o)
        case .relu: return LayerDescription(kind: ReLU.kind)
        case let .dropout(p): return Dropout.description(probability: p)
        case .flatten: return LayerDescription(kind: Flatten.kind)
        case let .sequential(inner): return Sequential.description(layers: inner.map(\.description))
        }
    }
}
