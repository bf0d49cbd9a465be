import TensorCore
import NeuralNet

/// A first-order optimizer: one `step` updates every parameter from its accumulated `grad`.
///
/// Parameters without a gradient (`grad == nil`) are skipped, as in PyTorch. State (momentum buffers, moment
/// estimates, step counts) is keyed by the parameter's position in the list passed to `step`, so always pass the
/// same list in the same order (e.g. `model.parameters`).
public protocol Optimizer: AnyObject {
    /// The learning rate used by the next `step` (schedules set it).
    var learningRate: Float { get set }
    /// Applies one update to `parameters`.
    func step(_ parameters: [Variable])
    /// The optimizer's state as named tensors (for checkpoints).
    func stateTensors() -> [String: Tensor]
    /// Restores state written by `stateTensors()`; throws when names or shapes disagree.
    func loadState(_ state: [String: Tensor]) throws
}

/// Errors from restoring optimizer state.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

extension Optimizer {
    /// Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    public func zeroGradients(_ parameters: [Variable]) { for p in parameters { p.zeroGradient() } }
}

/// Helpers for per-parameter state dictionaries.
func loadBuffers(_ state: [String: Tensor], prefix: String) -> [Int: Tensor] {
    var result: [Int: Tensor] = [:]
    for (name, tensor) in state where name.hasPrefix(prefix + ".") {
        if let index = Int(name.dropFirst(prefix.count + 1)) { result[index] = tensor }
    }
    return result
}

func storeBuffers(_ buffers: [Int: Tensor], prefix: String, into state: inout [String: Tensor]) {
    for (index, tensor) in buffers { state["\(prefix).\(index)"] = tensor }
}
