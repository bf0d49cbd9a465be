/// Elementwise arithmetic with NumPy/PyTorch broadcasting: shapes are aligned from the right and a dimension of 1
/// stretches to match. Fast paths cover equal shapes, a scalar on either side and a trailing row vector (bias).
public enum BinaryOperator: Sendable {
    case add, subtract, multiply, divide, maximum, minimum

    @inline(__always) @usableFromInline func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        case .maximum: return Swift.max(a, b)
        case .minimum: return Swift.min(a, b)
        }
    }
}

/// The broadcast shape of two shapes, or nil when they are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { result[i] = da } else if da == 1 { result[i] = db } else { return nil }
    }
    return result
}

extension Tensor {
    /// Applies `op` elementwise with broadcasting.
    public func binary(_ op: BinaryOperator, _ other: Tensor) -> Tensor {
        guard let outShape = broadcastShape(shape, other.shape) else {
            preconditionFailure("shapes \(shape) and \(other.shape) cannot be broadcast together")
        }
        let a = storage.pointer, b = other.storage.pointer
        let n = outShape.reduce(1, *)
        if shape == other.shape {
            return Tensor(shape: outShape) { out in
                let o = out.baseAddress!
                switch op {
                case .add: for i in 0..<n { o[i] = a[i] + b[i] }
                case .subtract: for i in 0..<n { o[i] = a[i] - b[i] }
                case .multiply: for i in 0..<n { o[i] = a[i] * b[i] }
                default: for i in 0..<n { o[i] = op.apply(a[i], b[i]) }
                }
            }
        }
        if other.count == 1 {
            let s = b[0]
            return Tensor(shape: outShape) { out in for i in 0..<n { out[i] = op.apply(a[i], s) } }
        }
        if count == 1 {
            let s = a[0]
            return Tensor(shape: outShape) { out in for i in 0..<n { out[i] = op.apply(s, b[i]) } }
        }
        // Trailing row broadcast: [..., N] op [N] (a bias).
        if shape == outShape, let last = shape.last, other.count == last, other.shape.dropLast().allSatisfy({ $0 == 1 }) {
            let rows = n / Swift.max(last, 1)
            return Tensor(shape: outShape) { out in
                let o = out.baseAddress!
                for r in 0..<rows {
                    let base = r * last
                    for j in 0..<last { o[base + j] = op.apply(a[base + j], b[j]) }
                }
            }
        }
        // General path: strides of 0 along broadcast dimensions.
        let rank = outShape.count
        let sa = Tensor.broadcastStrides(shape, to: outShape)
        let sb = Tensor.broadcastStrides(other.shape, to: outShape)
        return Tensor(shape: outShape) { out in
            var index = [Int](repeating: 0, count: rank)
            var ia = 0, ib = 0
            for k in 0..<n {
                out[k] = op.apply(a[ia], b[ib])
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    ia += sa[d]; ib += sb[d]
                    if index[d] < outShape[d] { break }
                    ia -= sa[d] * outShape[d]; ib -= sb[d] * outShape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }

    /// Row-major strides of `shape` placed inside `target` (right-aligned), 0 where the dimension broadcasts.
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: target.count)
        var step = 1
        for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
            let t = i + target.count - shape.count
            strides[t] = shape[i] == 1 && target[t] != 1 ? 0 : step
            step *= shape[i]
        }
        return strides
    }

    /// Sums this tensor down to `target` shape (the adjoint of broadcasting `target` up to `shape`).
    public func sumToShape(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let rank = shape.count
        let strides = Tensor.broadcastStrides(target, to: shape)
        var result = Tensor(shape: target, repeating: 0)
        let a = storage.pointer
        result.withUnsafeMutableBufferPointer { out in
            var index = [Int](repeating: 0, count: rank)
            var io = 0
            for k in 0..<count {
                out[io] += a[k]
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    io += strides[d]
                    if index[d] < shape[d] { break }
                    io -= strides[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return result
    }

    /// Applies `transform` to every element.
    @inlinable public func map(_ transform: (Float) -> Float) -> Tensor {
        let a = storage.pointer
        return Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = transform(a[i]) } }
    }

    /// Combines two tensors of identical shape elementwise.
    @inlinable public func zipMap(_ other: Tensor, _ transform: (Float, Float) -> Float) -> Tensor {
        precondition(shape == other.shape, "zipMap needs equal shapes, got \(shape) and \(other.shape)")
        let a = storage.pointer, b = other.storage.pointer
        return Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = transform(a[i], b[i]) } }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.binary(.add, b) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.binary(.subtract, b) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.binary(.multiply, b) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.binary(.divide, b) }
    public static func + (a: Tensor, s: Float) -> Tensor { a.map { $0 + s } }
    public static func - (a: Tensor, s: Float) -> Tensor { a.map { $0 - s } }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s } }
    public static func / (a: Tensor, s: Float) -> Tensor { a.map { $0 / s } }
    public static func * (s: Float, a: Tensor) -> Tensor { a.map { s * $0 } }
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }

    /// In place `self += other` (same shape), reusing this tensor's storage when uniquely owned.
    public static func += (a: inout Tensor, b: Tensor) {
        precondition(a.shape == b.shape, "+= needs equal shapes, got \(a.shape) and \(b.shape)")
        let pb = b.storage.pointer
        a.withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] += pb[i] } }
    }

    /// In place `self *= s`.
    public static func *= (a: inout Tensor, s: Float) {
        a.withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] *= s } }
    }

    /// In place `self += alpha * x` (BLAS axpy semantics).
    public mutating func addScaled(_ x: Tensor, by alpha: Float) {
        precondition(shape == x.shape, "addScaled needs equal shapes, got \(shape) and \(x.shape)")
        let px = x.storage.pointer
        withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] += alpha * px[i] } }
    }

    /// Sets every element to `value` in place.
    public mutating func fill(_ value: Float) {
        withUnsafeMutableBufferPointer { o in o.update(repeating: value) }
    }
}
