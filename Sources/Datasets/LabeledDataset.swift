import TensorCore

/// A classification dataset held in memory: one input per example, of shape `sampleShape` (`[784]` for a feature
/// vector, `[1, 28, 28]` for a grey image, `[3, 32, 32]` for a colour one), and its class label.
///
/// Example indices are positions `0..<count`; derived datasets (`subset`, `validationSplit`, `filter`) renumber
/// their examples from 0 and keep the parent's relative order.
///
/// Inputs are stored either as Float32 values (`init(inputs:...)`, for general data) or as one byte per value
/// (`init(bytes:...)`, how MNIST is loaded), decoded to Float through a 256-entry table only when inputs are read.
/// Byte storage holds MNIST's 60,000 training images in 47 MB instead of 188 MB. Both storages behave identically:
/// the same values give the same batches, subsets and `fingerprint`. Read examples with `inputs(rows:)` or
/// `inputs(at:)`, which decode only the examples asked for, as `[n] + sampleShape` tensors; `inputs` materialises
/// them all.
public struct LabeledDataset: Sendable {
    /// The inputs, row-major, `count * featureCount` values.
    private enum Storage: Sendable {
        /// Float values, shape `[count, featureCount]`.
        case floats(Tensor)
        /// One byte per value; element `i` stands for `table[Int(bytes[i])]` (`table.count == 256`).
        case bytes([UInt8], table: [Float])
    }

    private let storage: Storage
    /// Class labels in `0..<classCount`, one per example.
    public let labels: [Int]
    /// Number of classes (10 for MNIST), also when some classes have no examples (after `excluding(classes:)`).
    public let classCount: Int
    /// The shape of one example's input (no batch dimension).
    public let sampleShape: [Int]
    /// Values per example: the product of `sampleShape`.
    public let featureCount: Int

    /// Channels, height and width when examples are images (`sampleShape` `[height, width]` or
    /// `[channels, height, width]`); nil for feature vectors. Image augmentation (jitter) needs it.
    public var imageShape: (channels: Int, height: Int, width: Int)? {
        switch sampleShape.count {
        case 2: return (1, sampleShape[0], sampleShape[1])
        case 3: return (sampleShape[0], sampleShape[1], sampleShape[2])
        default: return nil
        }
    }

    /// Number of examples.
    public var count: Int { labels.count }

    /// The decoding table `byte / 255` (bytes 0...255 to [0, 1]) used by `init(bytes:)` by default and by MNIST.
    public static let unitIntervalTable: [Float] = (0..<256).map { Float($0) / 255 }

    /// Validates and wraps Float inputs.
    /// - Parameters:
    ///   - inputs: `[labels.count, ...]`; its trailing dimensions are the sample shape unless `sampleShape` is given,
    ///     which must then have as many values per example.
    /// - Throws: `DataError.invalidArgument` unless the shapes agree and every label is in `0..<classCount`.
    public init(inputs: Tensor, labels: [Int], classCount: Int, sampleShape: [Int]? = nil) throws {
        guard inputs.rank >= 2, inputs.shape[0] == labels.count else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "inputs of shape [\(labels.count), ...]",
                                            found: "shape \(inputs.shape)")
        }
        let shape = sampleShape ?? Array(inputs.shape.dropFirst())
        let features = inputs.shape.dropFirst().reduce(1, *)
        try Self.validate(labels: labels, classCount: classCount, sampleShape: shape, featureCount: features)
        self.init(storage: .floats(inputs.rank == 2 ? inputs : inputs.reshaped([labels.count, features])),
                  sampleShape: shape, labels: labels, classCount: classCount)
    }

    /// Validates and wraps byte inputs (the array is kept as is, not copied): example `i`'s values are
    /// `bytes[i * featureCount ..< (i + 1) * featureCount]`, and a byte `b` stands for the value `table[Int(b)]`.
    /// - Parameter table: the Float value of each byte, 256 entries; by default `byte / 255`.
    /// - Throws: `DataError.invalidArgument` unless `bytes.count == labels.count * featureCount`, `table` has 256
    ///   entries, the sample shape is positive and every label is in `0..<classCount`.
    public init(bytes: [UInt8], sampleShape: [Int], labels: [Int], classCount: Int,
                table: [Float] = LabeledDataset.unitIntervalTable) throws {
        guard !sampleShape.isEmpty, sampleShape.allSatisfy({ $0 > 0 }) else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a sample shape of positive sizes", found: "\(sampleShape)")
        }
        var featureCount = 1
        for d in sampleShape {
            let (product, overflow) = featureCount.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw DataError.invalidArgument(context: "LabeledDataset", expected: "a sample shape that fits in memory", found: "\(sampleShape)")
            }
            featureCount = product
        }
        let (total, overflow) = labels.count.multipliedReportingOverflow(by: featureCount)
        guard !overflow, bytes.count == total else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "\(labels.count) examples of \(featureCount) bytes",
                                            found: "\(bytes.count) bytes")
        }
        guard table.count == 256 else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a decoding table of 256 values",
                                            found: "\(table.count) values")
        }
        try Self.validate(labels: labels, classCount: classCount, sampleShape: sampleShape, featureCount: featureCount)
        self.init(unchecked: bytes, sampleShape: sampleShape, labels: labels, classCount: classCount, table: table)
    }

    /// Byte inputs without validation (for loaders that have already checked their input).
    init(unchecked bytes: [UInt8], sampleShape: [Int], labels: [Int], classCount: Int,
         table: [Float] = LabeledDataset.unitIntervalTable) {
        self.init(storage: .bytes(bytes, table: table), sampleShape: sampleShape, labels: labels, classCount: classCount)
    }

    private init(storage: Storage, sampleShape: [Int], labels: [Int], classCount: Int) {
        self.storage = storage
        self.sampleShape = sampleShape
        self.featureCount = sampleShape.reduce(1, *)
        self.labels = labels
        self.classCount = classCount
    }

    /// The checks shared by both initialisers.
    private static func validate(labels: [Int], classCount: Int, sampleShape: [Int], featureCount: Int) throws {
        guard classCount > 0 else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a positive class count", found: "\(classCount)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classCount }) {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "labels in 0..<\(classCount)",
                                            found: "label \(labels[bad]) at index \(bad)")
        }
        guard !sampleShape.isEmpty, sampleShape.allSatisfy({ $0 >= 0 }), sampleShape.reduce(1, *) == featureCount else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a sample shape of \(featureCount) values",
                                            found: "\(sampleShape)")
        }
    }

    /// Whether rows are stored as bytes (see `init(pixels:)`) rather than Float values.
    public var isByteStorage: Bool {
        if case .bytes = storage { return true }
        return false
    }

    /// The examples `range`, shape `[range.count] + sampleShape`, as Float values (decoded when stored as bytes).
    /// The tensor's storage comes from TensorCore's buffer pool. `range` must lie in `0..<count` (precondition).
    public func inputs(rows range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows \(range) out of range 0..<\(count)")
        return gather(range)
    }

    /// The examples at `indices`, in that order (repeats allowed), shape `[indices.count] + sampleShape`, as Float
    /// values. The tensor's storage comes from TensorCore's buffer pool. Indices must be in `0..<count`
    /// (precondition).
    public func inputs(at indices: [Int]) -> Tensor {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < count }, "row index out of range 0..<\(count)")
        return gather(indices)
    }

    /// Whether `inputs` (`[indices.count] + sampleShape`, or the same values as rows `[indices.count, featureCount]`)
    /// holds exactly, bit for bit, the examples at `indices` (as `inputs(at:)` would return them). False for another
    /// shape or an index outside `0..<count`. Compares in place, decoding byte inputs on the fly: nothing is allocated.
    public func rowsEqual(_ inputs: Tensor, at indices: [Int]) -> Bool {
        let features = featureCount
        guard inputs.shape == [indices.count] + sampleShape || inputs.shape == [indices.count, features],
              indices.allSatisfy({ $0 >= 0 && $0 < count }) else { return false }
        return inputs.withUnsafeBufferPointer { given in
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

    /// Every example, shape `[count] + sampleShape`.
    ///
    /// For byte storage this decodes the whole dataset into a new tensor of `count * featureCount` floats (188 MB for
    /// MNIST's training set, which then stays in the buffer pool); library code reads examples with `inputs(rows:)` or
    /// `inputs(at:)` instead. For Float storage it is the stored tensor itself (no copy).
    public var inputs: Tensor {
        switch storage {
        case .floats(let tensor): return tensor.reshaped([count] + sampleShape)
        case .bytes: return gather(0..<count)
        }
    }

    /// The given rows (already checked) as a new pooled tensor.
    /// Batches are split into contiguous parts of rows over the compute threads (each part writes its own rows, so
    /// the result does not depend on the split).
    private func gather<Rows: RandomAccessCollection>(_ rows: Rows) -> Tensor where Rows.Element == Int, Rows.Index == Int {
        let features = featureCount
        return Tensor(shape: [rows.count] + sampleShape) { out in
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
            rows = .floats(gather(indices).reshaped([indices.count, featureCount]))
        case .bytes(let bytes, let table):
            let features = featureCount
            var gathered = [UInt8]()
            gathered.reserveCapacity(indices.count * features)
            for i in indices { gathered.append(contentsOf: bytes[(i * features)..<((i + 1) * features)]) }
            rows = .bytes(gathered, table: table)
        }
        return LabeledDataset(storage: rows, sampleShape: sampleShape, labels: indices.map { labels[$0] },
                              classCount: classCount)
    }

    /// The same inputs (same storage, nothing copied) with other labels, e.g. renumbered to another list of class
    /// names. `labels` must have one entry per example in `0..<classCount` (precondition).
    public func relabelled(_ labels: [Int], classCount: Int) -> LabeledDataset {
        precondition(labels.count == count && labels.allSatisfy { $0 >= 0 && $0 < classCount }, "relabelled: labels out of range")
        return LabeledDataset(storage: storage, sampleShape: sampleShape, labels: labels, classCount: classCount)
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
    /// as little-endian Int64 the class count, image height and width (0 for feature vectors), the rank (2) and shape
    /// `[count, featureCount]` of the values, every label, then every value as its IEEE-754 bit pattern
    /// (little-endian UInt32). Images of several channels hash under the tag `LabeledDataset/v2` with the channel
    /// count appended to the height and width.
    ///
    /// It depends only on the values, not on the storage: byte rows hash as the Float values they decode to, so a
    /// byte-backed dataset and a Float one holding the same values have the same fingerprint. Used to stamp stores
    /// of teacher logits so they are only reused on the same examples in the same order. Cost is one pass over the
    /// data (47 MB of bytes, or 188 MB of floats, for MNIST's training images), decoded a chunk at a time.
    public var fingerprint: String {
        var hasher = SHA256()
        let image = imageShape
        let channels = image?.channels ?? 1
        hasher.update(Array((channels == 1 ? "LabeledDataset/v1" : "LabeledDataset/v2").utf8))
        var header: [Int64] = [Int64(classCount), Int64(image?.height ?? 0), Int64(image?.width ?? 0)]
        if channels != 1 { header.append(Int64(channels)) }
        header += [2, Int64(count), Int64(featureCount)]
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
