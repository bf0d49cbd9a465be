/// A dense, row-major Float32 tensor of any rank with value semantics (copy-on-write storage).
///
/// Shapes follow PyTorch: `[batch, features]` for a batch of vectors, `[rows, columns]` for a matrix. A rank-0
/// tensor (`shape == []`) holds one scalar.
public struct Tensor: @unchecked Sendable {
    @usableFromInline var _storage: TensorStorage
    /// The shared buffer (read-only access; mutate through `withUnsafeMutableBufferPointer`).
    public var storage: TensorStorage { _storage }
    public let shape: [Int]

    /// Number of elements (the product of `shape`).
    @inlinable public var count: Int { storage.count }
    @inlinable public var rank: Int { shape.count }

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape must be non-negative, got \(shape)")
        self.shape = shape
        self._storage = TensorStorage(repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor with the given row-major scalars; `scalars.count` must equal the product of `shape`.
    public init(shape: [Int], scalars: [Float]) {
        let count = shape.reduce(1, *)
        precondition(count == scalars.count, "Tensor(shape: \(shape)) needs \(count) scalars, got \(scalars.count)")
        self.shape = shape
        self._storage = TensorStorage(uninitializedCount: count)
        scalars.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// A rank-1 tensor.
    public init(_ scalars: [Float]) { self.init(shape: [scalars.count], scalars: scalars) }

    /// A rank-0 tensor.
    public init(scalar: Float) { self.init(shape: [], scalars: [scalar]) }

    /// A tensor whose storage is uninitialised; `body` must write all `count` elements.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.shape = shape
        self._storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
        try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self._storage = storage
    }

    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }

    /// All elements, row-major.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The single element of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "scalar needs a one-element tensor, got shape \(shape)")
        return storage.pointer[0]
    }

    /// Element access by flat row-major index.
    @inlinable public subscript(flat index: Int) -> Float {
        get { storage.pointer[index] }
        set { makeUnique(); storage.pointer[index] = newValue }
    }

    /// Element access by multi-index.
    public subscript(_ indices: Int...) -> Float {
        get { storage.pointer[flatIndex(indices)] }
        set { let i = flatIndex(indices); makeUnique(); storage.pointer[i] = newValue }
    }

    func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index \(indices) has rank \(indices.count), tensor has shape \(shape)")
        var flat = 0
        for (i, dim) in zip(indices, shape) {
            precondition(i >= 0 && i < dim, "index \(indices) out of range for shape \(shape)")
            flat = flat * dim + i
        }
        return flat
    }

    /// Ensures this tensor is the only owner of its storage (copy-on-write).
    @inlinable public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&_storage) { _storage = _storage.copy() }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// The same elements viewed with another shape of equal element count (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var newShape = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            newShape[inferred] = count / known
        }
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// Rows `range` of a tensor along its first axis, copied.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) out of range for shape \(shape)")
        let rowSize = count / Swift.max(shape[0], 1)
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape) { out in
            out.baseAddress!.update(from: storage.pointer + range.lowerBound * rowSize, count: range.count * rowSize)
        }
    }

    /// Tensors of equal trailing shape stacked along the first axis (`[a, ...]` and `[b, ...]` give `[a + b, ...]`).
    public init(concatenatingRows parts: [Tensor]) {
        precondition(!parts.isEmpty, "concatenating no tensors")
        let trailing = Array(parts[0].shape.dropFirst())
        precondition(parts.allSatisfy { $0.rank >= 1 && Array($0.shape.dropFirst()) == trailing },
                     "concatenating rows of different shapes \(parts.map(\.shape))")
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        self.init(shape: [rows] + trailing) { out in
            var at = 0
            for part in parts {
                part.withUnsafeBufferPointer { (out.baseAddress! + at).update(from: $0.baseAddress!, count: $0.count) }
                at += part.count
            }
        }
    }

    /// Rows gathered by index along the first axis.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let rowSize = count / Swift.max(shape[0], 1)
        var newShape = shape
        newShape[0] = indices.count
        return Tensor(shape: newShape) { out in
            for (r, i) in indices.enumerated() {
                precondition(i >= 0 && i < shape[0], "row index \(i) out of range for shape \(shape)")
                (out.baseAddress! + r * rowSize).update(from: storage.pointer + i * rowSize, count: rowSize)
            }
        }
    }

    /// Whether every element is finite (no NaN or infinity).
    public var isFinite: Bool {
        withUnsafeBufferPointer { b in
            var ok = true
            for v in b where !v.isFinite { ok = false; break }
            return ok
        }
    }
}

extension Tensor: Equatable {
    public static func == (a: Tensor, b: Tensor) -> Bool { a.shape == b.shape && a.scalars == b.scalars }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(16).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 16 ? ", ..." : "")])"
    }
}
