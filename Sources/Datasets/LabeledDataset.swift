import TensorCore

/// A classification dataset held in memory: one input row per example and its class label.
///
/// Example indices are positions `0..<count`; derived datasets (`subset`, `validationSplit`, `filter`) renumber
/// their examples from 0 and keep the parent's relative order.
///
/// Rows are stored either as Float32 values (`init(images:...)`, for general data) or as one byte per feature
/// (`init(pixels:...)`, how MNIST is loaded), decoded to Float through a 256-entry table only when rows are read.
/// Byte storage holds MNIST's 60,000 training images in 47 MB instead of 188 MB. Both storages behave identically:
/// the same values give the same rows, batches, subsets and `fingerprint`. Read rows with `images(rows:)` or
/// `images(at:)`, which decode only the rows asked for; `images` materialises the whole matrix.
public struct LabeledDataset: Sendable {
    /// The input rows, row-major, `count * featureCount` values.
    private enum Storage: Sendable {
        /// Float rows, shape `[count, featureCount]`.
        case floats(Tensor)
        /// One byte per feature; element `i` stands for `table[Int(bytes[i])]` (`table.count == 256`).
        case bytes([UInt8], table: [Float])
    }

    private let storage: Storage
    /// Class labels in `0..<classCount`, one per example.
    public let labels: [Int]
    /// Number of classes (10 for MNIST), also when some classes have no examples (after `excluding(classes:)`).
    public let classCount: Int
    /// Image height and width when rows are images, nil for plain feature vectors.
    public let imageShape: (height: Int, width: Int)?
    /// Length of one input row (for images, `height * width`, pixels row-major).
    public let featureCount: Int

    /// Number of examples.
    public var count: Int { labels.count }

    /// The decoding table `byte / 255` (bytes 0...255 to [0, 1]) used by `init(pixels:)` by default and by MNIST.
    public static let unitIntervalTable: [Float] = (0..<256).map { Float($0) / 255 }

    /// Validates and wraps Float rows.
    /// - Throws: `DataError.invalidArgument` unless `images` is `[labels.count, F]`, every label is in
    ///   `0..<classCount`, and `height * width == F` when `imageShape` is given.
    public init(images: Tensor, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)? = nil) throws {
        guard images.rank == 2, images.shape[0] == labels.count else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "images of shape [\(labels.count), features]",
                                            found: "shape \(images.shape)")
        }
        try Self.validate(labels: labels, classCount: classCount, imageShape: imageShape, featureCount: images.shape[1])
        self.init(storage: .floats(images), featureCount: images.shape[1], labels: labels, classCount: classCount,
                  imageShape: imageShape)
    }

    /// Validates and wraps byte rows (the array is kept as is, not copied): example `i`'s features are
    /// `pixels[i * featureCount ..< (i + 1) * featureCount]`, and a byte `b` stands for the value `table[Int(b)]`.
    /// - Parameter table: the Float value of each byte, 256 entries; by default `byte / 255`.
    /// - Throws: `DataError.invalidArgument` unless `featureCount >= 0`, `pixels.count == labels.count * featureCount`,
    ///   `table` has 256 entries, every label is in `0..<classCount`, and `height * width == featureCount` when
    ///   `imageShape` is given.
    public init(pixels: [UInt8], featureCount: Int, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)? = nil,
                table: [Float] = LabeledDataset.unitIntervalTable) throws {
        let (total, overflow) = labels.count.multipliedReportingOverflow(by: featureCount)
        guard featureCount >= 0, !overflow, pixels.count == total else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "\(labels.count) rows of \(featureCount) pixel bytes",
                                            found: "\(pixels.count) bytes")
        }
        guard table.count == 256 else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a decoding table of 256 values",
                                            found: "\(table.count) values")
        }
        try Self.validate(labels: labels, classCount: classCount, imageShape: imageShape, featureCount: featureCount)
        self.init(unchecked: pixels, featureCount: featureCount, labels: labels, classCount: classCount, imageShape: imageShape,
                  table: table)
    }

    /// Byte rows without validation (for loaders that have already checked their input).
    init(unchecked pixels: [UInt8], featureCount: Int, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)?,
         table: [Float] = LabeledDataset.unitIntervalTable) {
        self.init(storage: .bytes(pixels, table: table), featureCount: featureCount, labels: labels, classCount: classCount,
                  imageShape: imageShape)
    }

    private init(storage: Storage, featureCount: Int, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)?) {
        self.storage = storage
        self.featureCount = featureCount
        self.labels = labels
        self.classCount = classCount
        self.imageShape = imageShape
    }

    /// The checks shared by both initialisers.
    private static func validate(labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)?, featureCount: Int) throws {
        guard classCount > 0 else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a positive class count", found: "\(classCount)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classCount }) {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "labels in 0..<\(classCount)",
                                            found: "label \(labels[bad]) at index \(bad)")
        }
        if let s = imageShape, s.height <= 0 || s.width <= 0 || s.height.multipliedReportingOverflow(by: s.width) != (featureCount, false) {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "height*width == \(featureCount)",
                                            found: "\(s.height)x\(s.width)")
        }
    }

    /// Whether rows are stored as bytes (see `init(pixels:)`) rather than Float values.
    public var isByteStorage: Bool {
        if case .bytes = storage { return true }
        return false
    }

    /// The rows `range`, shape `[range.count, featureCount]`, as Float values (decoded when stored as bytes).
    /// The tensor's storage comes from TensorCore's buffer pool. `range` must lie in `0..<count` (precondition).
    public func images(rows range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows \(range) out of range 0..<\(count)")
        return gather(range)
    }

    /// The rows at `indices`, in that order (repeats allowed), shape `[indices.count, featureCount]`, as Float
    /// values. The tensor's storage comes from TensorCore's buffer pool. Indices must be in `0..<count`
    /// (precondition).
    public func images(at indices: [Int]) -> Tensor {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < count }, "row index out of range 0..<\(count)")
        return gather(indices)
    }

    /// Whether `images` (`[indices.count, featureCount]`) holds exactly, bit for bit, the rows at `indices` (as
    /// `images(at:)` would return them). False for another shape or an index outside `0..<count`. Compares in place,
    /// decoding byte rows on the fly: nothing is allocated.
    public func rowsEqual(_ images: Tensor, at indices: [Int]) -> Bool {
        let features = featureCount
        guard images.shape == [indices.count, features], indices.allSatisfy({ $0 >= 0 && $0 < count }) else { return false }
        return images.withUnsafeBufferPointer { given in
            guard features > 0, let given = given.baseAddress else { return true }
            // Parts of the batch on the compute threads (each part's verdict in its own slot), as in `gather`:
            // the check runs on every step of a cached-teacher distillation, where one thread cost ~10 % an epoch.
            let parts = Self.parts(rows: indices.count, features: features)
            return withUnsafeTemporaryAllocation(of: Bool.self, capacity: parts) { verdicts in
                ComputeThreads.parallelFor(chunks: parts) { p in
                    let rows = (p * indices.count / parts)..<((p + 1) * indices.count / parts)
                    verdicts[p] = rowsEqual(given, rows: rows, indices: indices, features: features)
                }
                return verdicts.allSatisfy { $0 }
            }
        }
    }

    /// `rowsEqual` for the rows `rows` of the batch `given`.
    private func rowsEqual(_ given: UnsafePointer<Float>, rows: Range<Int>, indices: [Int], features: Int) -> Bool {
        // Bit patterns are compared without a branch per element (a NaN pixel equals itself here).
        switch storage {
        case .floats(let tensor):
            return tensor.withUnsafeBufferPointer { source in
                rows.allSatisfy { r in
                    let row = given + r * features, expected = source.baseAddress! + indices[r] * features
                    var differ: UInt32 = 0
                    for j in 0..<features { differ |= row[j].bitPattern ^ expected[j].bitPattern }
                    return differ == 0
                }
            }
        case .bytes(let bytes, let table):
            return bytes.withUnsafeBufferPointer { source in
                table.withUnsafeBufferPointer { table in
                    rows.allSatisfy { r in
                        let row = given + r * features, expected = source.baseAddress! + indices[r] * features
                        var differ: UInt32 = 0
                        for j in 0..<features { differ |= row[j].bitPattern ^ table[Int(expected[j])].bitPattern }
                        return differ == 0
                    }
                }
            }
        }
    }

    /// How many parts `gather` and `rowsEqual` split a batch into: the compute threads for batches of at least
    /// 32K values (MNIST at batch 64 and up), else 1.
    private static func parts(rows: Int, features: Int) -> Int {
        rows &* features >= 1 << 15 ? Swift.max(1, Swift.min(ComputeThreads.count, rows)) : 1
    }

    /// Every row, shape `[count, featureCount]`.
    ///
    /// For byte storage this decodes the whole dataset into a new tensor of `count * featureCount` floats (188 MB for
    /// MNIST's training set, which then stays in the buffer pool); library code reads rows with `images(rows:)` or
    /// `images(at:)` instead. For Float storage it is the stored tensor itself (no copy).
    public var images: Tensor {
        switch storage {
        case .floats(let tensor): return tensor
        case .bytes: return gather(0..<count)
        }
    }

    /// The given rows (already checked) as a new pooled tensor.
    /// Batches are split into contiguous parts of rows over the compute threads (each part writes its own rows, so
    /// the result does not depend on the split).
    private func gather<Rows: RandomAccessCollection>(_ rows: Rows) -> Tensor where Rows.Element == Int, Rows.Index == Int {
        let features = featureCount
        return Tensor(shape: [rows.count, features]) { out in
            guard features > 0, let base = out.baseAddress else { return }
            let n = rows.count, parts = Self.parts(rows: n, features: features)
            ComputeThreads.parallelFor(chunks: parts) { p in
                let part = (rows.startIndex + p * n / parts)..<(rows.startIndex + (p + 1) * n / parts)
                var destination = base + (part.lowerBound - rows.startIndex) * features
                switch storage {
                case .floats(let tensor):
                    tensor.withUnsafeBufferPointer { source in
                        for row in rows[part] {
                            destination.update(from: source.baseAddress! + row * features, count: features)
                            destination += features
                        }
                    }
                case .bytes(let bytes, let table):
                    bytes.withUnsafeBufferPointer { source in
                        table.withUnsafeBufferPointer { table in
                            for row in rows[part] {
                                Self.decode(source.baseAddress! + row * features, count: features, table: table, into: destination)
                                destination += features
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes `table[Int(bytes[i])]` to `out[i]` for `i` in `0..<count`.
    private static func decode(_ bytes: UnsafePointer<UInt8>, count: Int, table: UnsafeBufferPointer<Float>,
                               into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { out[i] = table[Int(bytes[i])] }
    }

    /// Calls `body` with the values of every row in order, `chunk` values at a time (the last chunk may be
    /// shorter); byte storage is decoded into a scratch buffer of `chunk` floats, so nothing the size of the
    /// dataset is allocated.
    private func forEachChunk(of chunk: Int, _ body: (UnsafeBufferPointer<Float>) -> Void) {
        switch storage {
        case .floats(let tensor):
            tensor.withUnsafeBufferPointer { values in
                var start = 0
                while start < values.count {
                    let n = Swift.min(chunk, values.count - start)
                    body(UnsafeBufferPointer(rebasing: values[start..<(start + n)]))
                    start += n
                }
            }
        case .bytes(let bytes, let table):
            var scratch = [Float](repeating: 0, count: chunk)
            bytes.withUnsafeBufferPointer { source in
                table.withUnsafeBufferPointer { table in
                    scratch.withUnsafeMutableBufferPointer { scratch in
                        var start = 0
                        while start < source.count {
                            let n = Swift.min(chunk, source.count - start)
                            Self.decode(source.baseAddress! + start, count: n, table: table, into: scratch.baseAddress!)
                            body(UnsafeBufferPointer(rebasing: scratch[0..<n]))
                            start += n
                        }
                    }
                }
            }
        }
    }

    /// The examples at `indices`, in that order (repeats allowed), in the same storage (bytes stay bytes).
    /// Indices must be in `0..<count` (precondition).
    public func subset(indices: [Int]) -> LabeledDataset {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < count }, "subset index out of range 0..<\(count)")
        let rows: Storage
        switch storage {
        case .floats:
            rows = .floats(gather(indices))
        case .bytes(let bytes, let table):
            let features = featureCount
            var gathered = [UInt8]()
            gathered.reserveCapacity(indices.count * features)
            for i in indices { gathered.append(contentsOf: bytes[(i * features)..<((i + 1) * features)]) }
            rows = .bytes(gathered, table: table)
        }
        return LabeledDataset(storage: rows, featureCount: featureCount, labels: indices.map { labels[$0] },
                              classCount: classCount, imageShape: imageShape)
    }

    /// Splits off `count` random examples as a validation set.
    ///
    /// Draws one `generator.permutation(self.count)`; its first `count` entries are the validation examples. Both
    /// parts keep the original relative order, are disjoint and together cover every example.
    /// - Throws: `DataError.invalidArgument` unless `0 <= count <= self.count`.
    public func validationSplit(count validationCount: Int, generator: inout RandomGenerator) throws
        -> (train: LabeledDataset, validation: LabeledDataset) {
        guard validationCount >= 0, validationCount <= count else {
            throw DataError.invalidArgument(context: "validationSplit", expected: "a validation count in 0...\(count)",
                                            found: "\(validationCount)")
        }
        let order = generator.permutation(count)
        var isValidation = [Bool](repeating: false, count: count)
        for i in order.prefix(validationCount) { isValidation[i] = true }
        let train = (0..<count).filter { !isValidation[$0] }
        let validation = (0..<count).filter { isValidation[$0] }
        return (subset(indices: train), subset(indices: validation))
    }

    /// Splits off `round(fraction * count)` random examples as a validation set (see `validationSplit(count:)`).
    /// - Throws: `DataError.invalidArgument` unless `0 <= fraction <= 1`.
    public func validationSplit(fraction: Double, generator: inout RandomGenerator) throws
        -> (train: LabeledDataset, validation: LabeledDataset) {
        guard fraction >= 0, fraction <= 1 else {
            throw DataError.invalidArgument(context: "validationSplit", expected: "a fraction in 0...1", found: "\(fraction)")
        }
        return try validationSplit(count: Int((fraction * Double(count)).rounded()), generator: &generator)
    }

    /// Only the examples whose label is in `classes` (original order; `classCount` unchanged).
    public func filter(classes: Set<Int>) -> LabeledDataset {
        subset(indices: labels.indices.filter { classes.contains(labels[$0]) })
    }

    /// The examples whose label is not in `classes` (the "omitted class" transfer experiment).
    public func excluding(classes: Set<Int>) -> LabeledDataset {
        subset(indices: labels.indices.filter { !classes.contains(labels[$0]) })
    }

    /// Number of examples per class, indexed by label.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for l in labels { counts[l] += 1 }
        return counts
    }

    /// A content hash identifying exactly this data: SHA-256 (lowercase hex) over the tag `LabeledDataset/v1`, then
    /// as little-endian Int64 the class count, image height and width (0 when nil), the rank (2) and shape
    /// `[count, featureCount]` of the rows, every label, then every row value as its IEEE-754 bit pattern
    /// (little-endian UInt32).
    ///
    /// It depends only on the values, not on the storage: byte rows hash as the Float values they decode to, so a
    /// byte-backed dataset and a Float one holding the same values have the same fingerprint. Used to stamp stores
    /// of teacher logits so they are only reused on the same examples in the same order. Cost is one pass over the
    /// data (47 MB of bytes, or 188 MB of floats, for MNIST's training images), decoded a chunk at a time.
    public var fingerprint: String {
        var hasher = SHA256()
        hasher.update(Array("LabeledDataset/v1".utf8))
        var header: [Int64] = [Int64(classCount), Int64(imageShape?.height ?? 0), Int64(imageShape?.width ?? 0), 2,
                               Int64(count), Int64(featureCount)]
        header += labels.map { Int64($0) }
        let littleEndian = header.map { $0.littleEndian }
        littleEndian.withUnsafeBytes { hasher.update($0) }
        let chunk = 16384
        var bits = [UInt32](repeating: 0, count: chunk)
        forEachChunk(of: chunk) { values in
            for i in 0..<values.count { bits[i] = values[i].bitPattern.littleEndian }
            bits.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<(values.count * 4)])) }
        }
        return SHA256.hex(hasher.finalize())
    }
}
