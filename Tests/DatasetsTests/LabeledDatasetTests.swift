import TensorCore
import XCTest
import Datasets

final class LabeledDatasetTests: XCTestCase {
    /// Example `i` has every feature equal to `i` and label `i % 3`.
    static func toy(_ n: Int = 10, features: Int = 4) -> LabeledDataset {
        let images = Tensor(shape: [n, features], scalars: (0..<n).flatMap { i in [Float](repeating: Float(i), count: features) })
        return try! LabeledDataset(inputs: images, labels: (0..<n).map { $0 % 3 }, classCount: 3, sampleShape: [2, features / 2])
    }

    func testValidation() {
        let images = Tensor.zeros([2, 4])
        XCTAssertTrue(TestSupport.errorMessage { try LabeledDataset(inputs: images, labels: [0], classCount: 3) }
            .hasPrefix("LabeledDataset: expected inputs of shape [1, ...]"))
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(inputs: images, labels: [0, 3], classCount: 3) },
                       "LabeledDataset: expected labels in 0..<3, found label 3 at index 1")
        XCTAssertNotNil(try? LabeledDataset(inputs: images, labels: [0, 2], classCount: 3, sampleShape: [2, 2]))
        XCTAssertNil(try? LabeledDataset(inputs: images, labels: [0, 2], classCount: 3, sampleShape: [3, 2]))
    }

    func testSubsetAndClassFilters() {
        let data = Self.toy()
        let sub = data.subset(indices: [7, 2])
        XCTAssertEqual(sub.labels, [1, 2])
        XCTAssertEqual(sub.inputs[flat: 1 * sub.featureCount], 2)
        let noTwos = data.excluding(classes: [2])
        XCTAssertEqual(noTwos.labels, [0, 1, 0, 1, 0, 1, 0])
        XCTAssertEqual(noTwos.classCount, 3)
        XCTAssertEqual(data.filter(classes: [2]).inputs[flat: 0], 2)
        XCTAssertEqual(data.filter(classes: [2]).count + noTwos.count, data.count)
    }

    func testValidationSplitIsDisjointCoveringAndSeeded() throws {
        let data = Self.toy(100, features: 2)
        var g1 = RandomGenerator(seed: 1), g2 = RandomGenerator(seed: 1), g3 = RandomGenerator(seed: 2)
        let a = try data.validationSplit(fraction: 0.2, generator: &g1)
        let b = try data.validationSplit(count: 20, generator: &g2)
        let c = try data.validationSplit(count: 20, generator: &g3)
        XCTAssertEqual(a.validation.count, 20)
        XCTAssertEqual(a.train.count, 80)
        let trainIDs = a.train.inputs.sum(axis: 1).scalars.map { Int($0) / 2 }
        let validationIDs = a.validation.inputs.sum(axis: 1).scalars.map { Int($0) / 2 }
        XCTAssertTrue(Set(trainIDs).isDisjoint(with: validationIDs))
        XCTAssertEqual(Set(trainIDs + validationIDs), Set(0..<100))
        XCTAssertEqual(trainIDs, trainIDs.sorted(), "original order kept")
        XCTAssertEqual(a.validation.inputs, b.validation.inputs)
        XCTAssertNotEqual(a.validation.inputs, c.validation.inputs)
        XCTAssertNil(try? data.validationSplit(count: 101, generator: &g1))
        XCTAssertNil(try? data.validationSplit(fraction: 1.5, generator: &g1))
    }

    func testFingerprint() throws {
        let data = Self.toy()
        XCTAssertEqual(data.fingerprint.count, 64)
        XCTAssertEqual(data.fingerprint, Self.toy().fingerprint)
        var images = data.inputs
        images[flat: 5] += 0.5
        let changedPixel = try LabeledDataset(inputs: images, labels: data.labels, classCount: 3, sampleShape: [2, 2])
        XCTAssertNotEqual(changedPixel.fingerprint, data.fingerprint)
        var labels = data.labels
        labels[0] = 1
        let changedLabel = try LabeledDataset(inputs: data.inputs, labels: labels, classCount: 3, sampleShape: [2, 2])
        XCTAssertNotEqual(changedLabel.fingerprint, data.fingerprint)
        XCTAssertNotEqual(data.subset(indices: Array((0..<10).reversed())).fingerprint, data.fingerprint)
    }
}

/// Byte rows (`init(pixels:)`, how MNIST is stored) must behave exactly like Float rows holding the decoded values.
final class ByteStorageTests: XCTestCase {
    /// 37 examples of 6 features (2x3 images) using every byte value, labels `i % 4`; and the Float twin holding
    /// `table[byte]` for each byte.
    static func pair(table: [Float] = LabeledDataset.unitIntervalTable) throws -> (bytes: LabeledDataset, floats: LabeledDataset) {
        let n = 37, features = 6
        let pixels = (0..<(n * features)).map { UInt8(truncatingIfNeeded: $0 * 71 + $0 / 5) }
        let labels = (0..<n).map { $0 % 4 }
        let bytes = try LabeledDataset(bytes: pixels, sampleShape: [2, 3], labels: labels, classCount: 4,
                                       table: table)
        let floats = try LabeledDataset(inputs: Tensor(shape: [n, features], scalars: pixels.map { table[Int($0)] }),
                                        labels: labels, classCount: 4, sampleShape: [2, 3])
        return (bytes, floats)
    }

    func assertSame(_ a: LabeledDataset, _ b: LabeledDataset, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        XCTAssertEqual(a.featureCount, b.featureCount, file: file, line: line)
        XCTAssertEqual(a.labels, b.labels, file: file, line: line)
        XCTAssertEqual(a.classCount, b.classCount, file: file, line: line)
        XCTAssertEqual(a.imageShape?.height, b.imageShape?.height, file: file, line: line)
        XCTAssertEqual(a.imageShape?.width, b.imageShape?.width, file: file, line: line)
        XCTAssertEqual(a.inputs, b.inputs, file: file, line: line)
        XCTAssertEqual(a.fingerprint, b.fingerprint, file: file, line: line)
    }

    func testRowsMatchTheDecodedFloats() throws {
        let (bytes, floats) = try Self.pair()
        XCTAssertTrue(bytes.isByteStorage)
        XCTAssertFalse(floats.isByteStorage)
        assertSame(bytes, floats)
        XCTAssertEqual(bytes.inputs(rows: 5..<12), floats.inputs(rows: 5..<12))
        XCTAssertEqual(bytes.inputs(rows: 5..<12).shape, [7, 2, 3])
        XCTAssertEqual(bytes.inputs(rows: 0..<0).shape, [0, 2, 3])
        XCTAssertEqual(bytes.inputs(rows: 5..<12).reshaped([7, 6]), floats.inputs.reshaped([floats.count, 6]).rows(5..<12))
        let picks = [36, 0, 3, 3, 17]
        XCTAssertEqual(bytes.inputs(at: picks), floats.inputs(at: picks))
        XCTAssertEqual(bytes.inputs(at: picks), floats.inputs.gatherRows(picks))
        XCTAssertEqual(bytes.inputs[flat: 1], Float(71) / 255)
    }

    /// Batches of at least 32K values are gathered and checked in parts on the compute threads: the same rows as
    /// one row at a time (the reference here), and a change in any part is seen.
    func testBigBatchesInPartsOnTwoThreads() throws {
        var g = RandomGenerator(seed: 3)
        let features = 300, count = 500
        let pixels = (0..<(count * features)).map { _ in UInt8(truncatingIfNeeded: g.nextUInt64()) }
        let bytes = try LabeledDataset(bytes: pixels, sampleShape: [features], labels: Array(repeating: 0, count: count), classCount: 2)
        let floats = try LabeledDataset(inputs: bytes.inputs, labels: bytes.labels, classCount: 2)
        let picks = (0..<257).map { _ in g.next(below: count) }
        ComputeThreads.set(2)
        defer { ComputeThreads.set(1) }
        for data in [bytes, floats] {
            let batch = data.inputs(at: picks)
            let reference = picks.flatMap { data.inputs(rows: $0..<($0 + 1)).scalars }   // one row at a time
            XCTAssertEqual(batch.scalars.map(\.bitPattern), reference.map(\.bitPattern))
            XCTAssertEqual(data.inputs(rows: 100..<300).scalars, data.inputs.rows(100..<300).scalars)
            XCTAssertTrue(data.rowsEqual(batch, at: picks))
            for row in [0, 128, 129, 256] {                                   // first part, boundary, last part
                var changed = batch
                changed[row, features - 1] = batch[row, features - 1].nextUp
                XCTAssertFalse(data.rowsEqual(changed, at: picks), "row \(row)")
            }
        }
    }

    /// `rowsEqual` (the cached teacher's check) in both storages: exact rows match, any change does not.
    func testRowsEqual() throws {
        let (bytes, floats) = try Self.pair()
        let picks = [36, 0, 3, 3, 17]
        for data in [bytes, floats] {
            let rows = data.inputs(at: picks)
            XCTAssertTrue(data.rowsEqual(rows, at: picks))
            XCTAssertTrue(data.rowsEqual(data.inputs(at: []), at: []))
            var changed = rows
            changed[flat: 4 * 6 + 5] = rows[flat: 4 * 6 + 5].nextUp            // one ulp in the last value
            XCTAssertFalse(data.rowsEqual(changed, at: picks))
            XCTAssertFalse(data.rowsEqual(rows, at: [36, 0, 3, 3, 16]))        // another example
            XCTAssertFalse(data.rowsEqual(rows, at: [36, 0, 3, 3, 37]))        // out of range
            XCTAssertFalse(data.rowsEqual(rows, at: [36, 0, 3, 3]))            // row count
            XCTAssertFalse(data.rowsEqual(rows.reshaped([5, 3, 2]), at: picks)) // shape
        }
    }

    func testFingerprintDependsOnValuesNotStorage() throws {
        let (bytes, floats) = try Self.pair()
        XCTAssertEqual(bytes.fingerprint, floats.fingerprint)
        // More values than one hashing chunk (16,384), so chunk boundaries fall inside rows.
        let n = 50, features = 784
        let pixels = (0..<(n * features)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let big = try LabeledDataset(bytes: pixels, sampleShape: [features], labels: [Int](repeating: 1, count: n), classCount: 10)
        let bigFloats = try LabeledDataset(inputs: big.inputs, labels: big.labels, classCount: 10)
        XCTAssertEqual(big.fingerprint, bigFloats.fingerprint)
        // Another table means other values.
        let shifted = try Self.pair(table: (0..<256).map { Float($0) - 128 })
        XCTAssertEqual(shifted.bytes.fingerprint, shifted.floats.fingerprint)
        XCTAssertNotEqual(shifted.bytes.fingerprint, bytes.fingerprint)
    }

    func testBatchesMatch() throws {
        let (bytes, floats) = try Self.pair()
        for (shuffle, dropLast) in [(true, false), (false, true)] {
            var a = BatchIterator(dataset: bytes, batchSize: 8, shuffle: shuffle, dropLast: dropLast, generator: RandomGenerator(seed: 9))
            var b = BatchIterator(dataset: floats, batchSize: 8, shuffle: shuffle, dropLast: dropLast, generator: RandomGenerator(seed: 9))
            for _ in 0..<2 {
                var batches = 0
                while let x = a.next() {
                    let y = try XCTUnwrap(b.next())
                    XCTAssertEqual(x.indices, y.indices)
                    XCTAssertEqual(x.inputs, y.inputs)
                    XCTAssertEqual(x.labels, y.labels)
                    batches += 1
                }
                XCTAssertNil(b.next())
                XCTAssertEqual(batches, a.batchesPerEpoch)
                a.startNextEpoch()
                b.startNextEpoch()
            }
        }
    }

    /// Decoded batches come from the buffer pool, so a steady-state loop over byte rows allocates nothing.
    func testSteadyStateBatchesDoNotAllocate() throws {
        let pixels = (0..<(50 * 784)).map { UInt8(truncatingIfNeeded: $0) }
        let data = try LabeledDataset(bytes: pixels, sampleShape: [784], labels: [Int](repeating: 0, count: 50), classCount: 1)
        var iterator = BatchIterator(dataset: data, batchSize: 8, shuffle: true, dropLast: false, generator: RandomGenerator(seed: 2))
        while iterator.next() != nil {}
        let before = BufferPool.shared.systemAllocations
        for _ in 0..<3 {
            iterator.startNextEpoch()
            while let batch = iterator.next() { XCTAssertEqual(batch.inputs.shape, [batch.count, 784]) }
        }
        XCTAssertEqual(BufferPool.shared.systemAllocations, before, "steady-state batches allocated from the system")
    }

    func testDerivedDatasetsStayBytesAndMatch() throws {
        let (bytes, floats) = try Self.pair()
        let picks = [4, 4, 30, 1]
        XCTAssertTrue(bytes.subset(indices: picks).isByteStorage)
        assertSame(bytes.subset(indices: picks), floats.subset(indices: picks))
        assertSame(bytes.subset(indices: []), floats.subset(indices: []))
        assertSame(bytes.filter(classes: [1, 3]), floats.filter(classes: [1, 3]))
        assertSame(bytes.excluding(classes: [0]), floats.excluding(classes: [0]))
        var g1 = RandomGenerator(seed: 5), g2 = RandomGenerator(seed: 5)
        let a = try bytes.validationSplit(count: 10, generator: &g1)
        let b = try floats.validationSplit(count: 10, generator: &g2)
        XCTAssertTrue(a.train.isByteStorage && a.validation.isByteStorage)
        assertSame(a.train, b.train)
        assertSame(a.validation, b.validation)
        XCTAssertEqual(g1, g2, "same draws")
    }

    func testPixelsInitValidates() {
        let pixels = [UInt8](repeating: 7, count: 8)
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(bytes: pixels, sampleShape: [3], labels: [0, 1], classCount: 2) },
                       "LabeledDataset: expected 2 examples of 3 bytes, found 8 bytes")
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(bytes: [], sampleShape: [-1], labels: [], classCount: 2) },
                       "LabeledDataset: expected a sample shape of positive sizes, found [-1]")
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(bytes: pixels, sampleShape: [Int.max], labels: [0, 1], classCount: 2) },
                       "LabeledDataset: expected 2 examples of \(Int.max) bytes, found 8 bytes")
        XCTAssertEqual(TestSupport.errorMessage {
            try LabeledDataset(bytes: pixels, sampleShape: [4], labels: [0, 1], classCount: 2, table: [Float](repeating: 0, count: 255))
        }, "LabeledDataset: expected a decoding table of 256 values, found 255 values")
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(bytes: pixels, sampleShape: [4], labels: [0, 2], classCount: 2) },
                       "LabeledDataset: expected labels in 0..<2, found label 2 at index 1")
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(bytes: pixels, sampleShape: [4], labels: [0, 1], classCount: 0) },
                       "LabeledDataset: expected a positive class count, found 0")
        XCTAssertEqual(TestSupport.errorMessage {
            try LabeledDataset(bytes: pixels, sampleShape: [3, 2], labels: [0, 1], classCount: 2)
        }, "LabeledDataset: expected 2 examples of 6 bytes, found 8 bytes")
        XCTAssertEqual(TestSupport.errorMessage {
            try LabeledDataset(bytes: [], sampleShape: [0], labels: [1, 0], classCount: 2)
        }, "LabeledDataset: expected a sample shape of positive sizes, found [0]")
        let ok = try? LabeledDataset(bytes: pixels, sampleShape: [2, 2], labels: [0, 1], classCount: 2)
        XCTAssertEqual(ok?.inputs, Tensor(shape: [2, 2, 2], repeating: Float(7) / 255))
        XCTAssertEqual(ok?.imageShape?.channels, 1)
        XCTAssertEqual(ok?.imageShape?.height, 2)
    }
}
