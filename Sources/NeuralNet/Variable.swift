import TensorCore

/// A node of the reverse-mode autograd graph: a tensor value, its gradient, and how it was computed.
///
/// The graph is built as operations run (define-by-run, like PyTorch): an op whose inputs include a variable with
/// `requiresGrad` records its parents and a backward rule; an op on constants records nothing. `backward()` walks
/// the graph once in reverse topological order, *accumulates* into the `grad` of every leaf that requires a gradient
/// (call `zeroGradient()`, or an optimizer's `zeroGradients`, between steps) and then frees the graph.
///
/// Evaluation without a tape: layers also offer `infer(_:)` on plain tensors, which never builds a graph.
public final class Variable {
    /// The forward value.
    public var value: Tensor
    /// The accumulated gradient d(loss)/d(value) for leaves that require gradients; `nil` until the first backward
    /// (and after `zeroGradient()`, which, like PyTorch's `set_to_none=True`, drops the buffer).
    public var grad: Tensor?
    /// Whether gradients flow to (and are kept for) this variable.
    public let requiresGrad: Bool
    /// True for variables made by `init(_:requiresGrad:)` (parameters and inputs), false for op results.
    public let isLeaf: Bool

    @usableFromInline var parents: [Variable]
    /// Maps the upstream gradient to one gradient per parent (nil where a parent needs none).
    @usableFromInline var backwardRule: ((Tensor) -> [Tensor?])?
    var pendingGrad: Tensor?

    /// A leaf variable (a parameter when `requiresGrad` is true, a constant otherwise).
    public init(_ value: Tensor, requiresGrad: Bool = false) {
        self.value = value
        self.requiresGrad = requiresGrad
        self.isLeaf = true
        self.parents = []
        self.backwardRule = nil
    }

    /// An interior node produced by an op.
    @usableFromInline init(value: Tensor, parents: [Variable], backward: @escaping (Tensor) -> [Tensor?]) {
        self.value = value
        self.requiresGrad = true
        self.isLeaf = false
        self.parents = parents
        self.backwardRule = backward
    }

    public var shape: [Int] { value.shape }

    /// A constant holding the same value (no gradient flows through it).
    public func detached() -> Variable { Variable(value, requiresGrad: false) }

    /// Drops the accumulated gradient.
    public func zeroGradient() { grad = nil }

    /// Back-propagates from this variable. With no `seed` the variable must hold one element and the seed is 1.
    public func backward(seed: Tensor? = nil) {
        let seed = seed ?? {
            precondition(value.count == 1, "backward() without a seed needs a scalar, got shape \(value.shape)")
            return Tensor(shape: value.shape, repeating: 1)
        }()
        precondition(seed.shape == value.shape, "backward seed shape \(seed.shape) differs from value shape \(value.shape)")
        guard requiresGrad else { return }

        // Reverse topological order by an iterative depth-first search.
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            if !visited.insert(ObjectIdentifier(node)).inserted { continue }
            stack.append((node, true))
            for parent in node.parents where parent.requiresGrad && !visited.contains(ObjectIdentifier(parent)) {
                stack.append((parent, false))
            }
        }

        pendingGrad = seed
        for node in order.reversed() {
            guard let upstream = node.pendingGrad else { continue }
            node.pendingGrad = nil
            if node.isLeaf {
                if node.grad == nil { node.grad = upstream } else { node.grad! += upstream }
                continue
            }
            guard let rule = node.backwardRule else { continue }  // graph already freed by an earlier backward
            let parentGrads = rule(upstream)
            for (parent, g) in zip(node.parents, parentGrads) where parent.requiresGrad {
                guard let g else { continue }
                if parent.pendingGrad == nil { parent.pendingGrad = g } else { parent.pendingGrad! += g }
            }
            // Free the graph behind this node (PyTorch's retain_graph=False).
            node.parents = []
            node.backwardRule = nil
        }
    }
}

extension Variable: CustomStringConvertible {
    public var description: String { "Variable(\(value), requiresGrad: \(requiresGrad))" }
}
