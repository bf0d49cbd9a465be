/// Reductions along one axis (the axis is removed from the shape, as PyTorch's `keepdim=False`), or over all elements.
extension Tensor {
    /// Splits the shape around `axis` into (outer, axis length, inner) for strided loops.
    func axisLayout(_ axis: Int) -> (outer: Int, length: Int, inner: Int, resultShape: [Int]) {
        let axis = axis < 0 ? axis + rank : axis
        precondition(axis >= 0 && axis < rank, "axis \(axis) out of range for shape \(shape)")
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var resultShape = shape
        resultShape.remove(at: axis)
        return (outer, shape[axis], inner, resultShape)
    }

    /// Reduces along `axis` with `combine`, starting from `initial`.
    func reduce(axis: Int, initial: Float, _ combine: (Float, Float) -> Float) -> Tensor {
        let (outer, length, inner, resultShape) = axisLayout(axis)
        let a = storage.pointer
        return Tensor(shape: resultShape) { out in
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = initial
                    var p = o * length * inner + i
                    for _ in 0..<length { acc = combine(acc, a[p]); p += inner }
                    out[o * inner + i] = acc
                }
            }
        }
    }

    /// Sum along `axis`.
    public func sum(axis: Int) -> Tensor { reduce(axis: axis, initial: 0, +) }
    /// Arithmetic mean along `axis`.
    public func mean(axis: Int) -> Tensor {
        let length = Float(axisLayout(axis).length)
        return sum(axis: axis) / length
    }
    /// Maximum along `axis` (NaN-propagating as PyTorch's `amax` is not guaranteed; NaN inputs give unspecified results).
    public func max(axis: Int) -> Tensor { reduce(axis: axis, initial: -.infinity) { Swift.max($0, $1) } }

    /// Index of the first maximum along `axis`, as Int (PyTorch returns int64).
    public func argmax(axis: Int) -> [Int] {
        let (outer, length, inner, _) = axisLayout(axis)
        let a = storage.pointer
        var result = [Int](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = -Float.infinity, bestIndex = 0
                var p = o * length * inner + i
                for k in 0..<length {
                    if a[p] > best { best = a[p]; bestIndex = k }
                    p += inner
                }
                result[o * inner + i] = bestIndex
            }
        }
        return result
    }

    /// Sum of all elements, accumulated in Double.
    public func sum() -> Float {
        withUnsafeBufferPointer { b in
            var acc: Double = 0
            for v in b { acc += Double(v) }
            return Float(acc)
        }
    }

    /// Mean of all elements.
    public func mean() -> Float { count == 0 ? .nan : sum() / Float(count) }

    /// Column sums of a matrix `[rows, columns]` -> `[columns]` (the bias gradient).
    public func sumRows() -> Tensor {
        guard rank == 2 else { return sum(axis: 0) }
        let rows = shape[0], cols = shape[1]
        return Tensor(shape: [cols]) { out in Kernels.columnSums(storage.pointer, rows: rows, cols: cols, into: out.baseAddress!) }
    }
}

extension Tensor {
    /// (outer, axis length, inner) sizes around `axis`, for strided loops in other modules.
    public func axisLayoutPublic(_ axis: Int) -> (outer: Int, length: Int, inner: Int) {
        let l = axisLayout(axis)
        return (l.outer, l.length, l.inner)
    }
}
