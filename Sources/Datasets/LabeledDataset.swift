import TensorCore

/// A classification dataset held in memory: one row of `images` per example and its class label.
///
/// Example indices are positions `0..<count`; derived datasets (`subset`, `validationSplit`, `filter`) renumber
/// their examples from 0 and keep the parent's relative order.
public struct LabeledDataset: Sendable {
    /// Inputs, shape `[count, featureCount]` (for images, `featureCount == height * width`, pixels row-major).
    public let images: Tensor
    /// Class labels in `0..<classCount`, one per row of `images`.
    public let labels: [Int]
    /// Number of classes (10 for MNIST), also when some classes have no examples (after `excluding(classes:)`).
    public let classCount: Int
    /// Image height and width when rows are images, nil for plain feature vectors.
    public let imageShape: (height: Int, width: Int)?

    /// Number of examples.
    public var count: Int { labels.count }
    /// Length of one input row.
    public var featureCount: Int { images.rank == 2 ? images.shape[1] : 0 }

    /// Validates and wraps the arrays.
    /// - Throws: `DataError.invalidArgument` unless `images` is `[labels.count, F]`, every label is in
    ///   `0..<classCount`, and `height * width == F` when `imageShape` is given.
    public init(images: Tensor, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)? = nil) throws {
        guard images.rank == 2, images.shape[0] == labels.count else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "images of shape [\(labels.count), features]",
                                            found: "shape \(images.shape)")
        }
        guard classCount > 0 else {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "a positive class count", found: "\(classCount)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classCount }) {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "labels in 0..<\(classCount)",
                                            found: "label \(labels[bad]) at index \(bad)")
        }
        if let s = imageShape, s.height <= 0 || s.width <= 0 || s.height.multipliedReportingOverflow(by: s.width) != (images.shape[1], false) {
            throw DataError.invalidArgument(context: "LabeledDataset", expected: "height*width == \(images.shape[1])",
                                            found: "\(s.height)x\(s.width)")
        }
        self.init(unchecked: images, labels: labels, classCount: classCount, imageShape: imageShape)
    }

    init(unchecked images: Tensor, labels: [Int], classCount: Int, imageShape: (height: Int, width: Int)?) {
        self.images = images
        self.labels = labels
        self.classCount = classCount
        self.imageShape = imageShape
    }

    /// The examples at `indices`, in that order (repeats allowed). Indices must be in `0..<count` (precondition).
    public func subset(indices: [Int]) -> LabeledDataset {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < count }, "subset index out of range 0..<\(count)")
        return LabeledDataset(unchecked: images.gatherRows(indices), labels: indices.map { labels[$0] },
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
    /// as little-endian Int64 the class count, image height and width (0 when nil), the images' rank and shape,
    /// every label, then every image element as its IEEE-754 bit pattern (little-endian UInt32).
    ///
    /// Used to stamp stores of teacher logits so they are only reused on the same examples in the same order.
    /// Cost is one pass over the data (about 190 MB for MNIST training images).
    public var fingerprint: String {
        var hasher = SHA256()
        hasher.update(Array("LabeledDataset/v1".utf8))
        var header: [Int64] = [Int64(classCount), Int64(imageShape?.height ?? 0), Int64(imageShape?.width ?? 0), Int64(images.rank)]
        header += images.shape.map { Int64($0) }
        header += labels.map { Int64($0) }
        let littleEndian = header.map { $0.littleEndian }
        littleEndian.withUnsafeBytes { hasher.update($0) }
        images.withUnsafeBufferPointer { floats in
            let chunk = 16384
            var bits = [UInt32](repeating: 0, count: chunk)
            var start = 0
            while start < floats.count {
                let n = min(chunk, floats.count - start)
                for i in 0..<n { bits[i] = floats[start + i].bitPattern.littleEndian }
                bits.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)])) }
                start += n
            }
        }
        return SHA256.hex(hasher.finalize())
    }
}
