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
    ///
    /// `onLeafReady` is called with each leaf as soon as its gradient of this pass is complete (every node that
    /// uses it has passed its gradient back), in the order that happens: a data-parallel step starts summing a
    /// group of parameters' gradients over the processes while the rest of the backward pass runs. The gradients
    /// themselves, and the order of every sum, are those of a pass without it.
    public func backward(seed: Tensor? = nil, onLeafReady: ((Variable) -> Void)? = nil) {
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

        // With `onLeafReady`: how many uses of each leaf have not passed their gradient back yet. The depth-first
        // order visits a leaf late (after everything its consumers' other inputs lead to); the count lets its
        // gradient be handed over as soon as the last use is done.
        var usesLeft: [ObjectIdentifier: Int] = [:]
        if onLeafReady != nil {
            for node in order where !node.isLeaf {
                for parent in node.parents where parent.isLeaf && parent.requiresGrad {
                    usesLeft[ObjectIdentifier(parent), default: 0] += 1
                }
            }
        }
        func settle(_ leaf: Variable) {
            guard let upstream = leaf.pendingGrad else { return }
            leaf.pendingGrad = nil
            if leaf.grad == nil { leaf.grad = upstream } else { leaf.grad! += upstream }
            onLeafReady?(leaf)
        }

        pendingGrad = seed
        for node in order.reversed() {
            if node.isLeaf { settle(node); continue }
            guard let upstream = node.pendingGrad else { continue }
            node.pendingGrad = nil
            guard let rule = node.backwardRule else { continue }  // graph already freed by an earlier backward
            let parentGrads = rule(upstream)
            for (parent, g) in zip(node.parents, parentGrads) where parent.requiresGrad {
                if let g {
                    if parent.pendingGrad == nil { parent.pendingGrad = g } else { parent.pendingGrad! += g }
                }
                if onLeafReady != nil, parent.isLeaf {
                    let id = ObjectIdentifier(parent)
                    usesLeft[id, default: 1] -= 1
                    if usesLeft[id] == 0 { settle(parent) }
                }
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
