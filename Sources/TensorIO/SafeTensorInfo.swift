/// The header entry of one tensor in a safetensors file.
public struct SafeTensorInfo: Equatable, Sendable {
    /// The element type.
    public let dtype: DType
    /// The shape (row-major; `[]` for a scalar).
    public let shape: [Int]
    /// Byte range `[begin, end)` relative to the start of the data region (the byte after the header).
    public let dataOffsets: Range<Int>

    /// Number of elements (product of `shape`).
    public var elementCount: Int { dataOffsets.count / dtype.byteSize }

    /// An entry; `dataOffsets.count` should equal the element count times `dtype.byteSize`.
    public init(dtype: DType, shape: [Int], dataOffsets: Range<Int>) {
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }
}
