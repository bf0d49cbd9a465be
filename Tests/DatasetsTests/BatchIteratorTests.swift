import TensorCore
import XCTest
import Datasets

final class BatchIteratorTests: XCTestCase {
    let data = LabeledDatasetTests.toy(23, features: 4)

    func order(seed: UInt64, epochs: Int = 1) -> [[Int]] {
        var it = BatchIterator(dataset: data, batchSize: 5, shuffle: true, dropLast: false, generator: RandomGenerator(seed: seed))
        var result: [[Int]] = []
        for e in 0..<epochs {
            if e > 0 { it.startNextEpoch() }
            while let batch = it.next() { result.append(batch.indices) }
        }
        return result
    }

    func testEveryIndexOncePerEpochWithMatchingRows() {
        var it = BatchIterator(dataset: data, batchSize: 5, shuffle: true, dropLast: false, generator: RandomGenerator(seed: 3))
        XCTAssertEqual(it.batchesPerEpoch, 5)
        for _ in 0..<2 {
            var seen: [Int] = []
            while let batch = it.next() {
                // Batches are shaped [B] + sampleShape (here 2x2 images).
                XCTAssertEqual(batch.inputs.shape, [batch.count] + data.sampleShape)
                XCTAssertEqual(data.sampleShape, [2, 2])
                for (r, i) in batch.indices.enumerated() {
                    XCTAssertEqual(batch.inputs[flat: r * 4 + 3], Float(i))
                    XCTAssertEqual(batch.labels[r], data.labels[i])
                }
                seen += batch.indices
            }
            XCTAssertEqual(seen.sorted(), Array(0..<23))
            XCTAssertEqual(seen, it.epochOrder)
            it.startNextEpoch()
        }
        XCTAssertEqual(it.epoch, 2)
    }

    func testReproducibleAndSeedDependent() {
        XCTAssertEqual(order(seed: 7, epochs: 2), order(seed: 7, epochs: 2))
        XCTAssertNotEqual(order(seed: 7), order(seed: 8))
        let twoEpochs = order(seed: 7, epochs: 2)
        XCTAssertNotEqual(Array(twoEpochs[..<5]), Array(twoEpochs[5...]), "each epoch reshuffles")
    }

    func testNoShuffleAndDropLast() {
        var it = BatchIterator(dataset: data, batchSize: 5, shuffle: false, dropLast: true, generator: RandomGenerator(seed: 1))
        var batches: [[Int]] = []
        while let b = it.next() { batches.append(b.indices) }
        XCTAssertEqual(batches.count, 4)
        XCTAssertEqual(batches.flatMap { $0 }, Array(0..<20))
        XCTAssertEqual(it.generator, RandomGenerator(seed: 1), "no draws without shuffle")
    }

    func testResumeFromCursor() {
        var it = BatchIterator(dataset: data, batchSize: 5, shuffle: true, dropLast: false, generator: RandomGenerator(seed: 9))
        it.startNextEpoch()
        _ = it.next(); _ = it.next()
        let (saved, cursor) = (it.epochStartGenerator, it.cursor)
        var rest: [[Int]] = []
        while let b = it.next() { rest.append(b.indices) }
        var resumed = BatchIterator(dataset: data, batchSize: 5, shuffle: true, dropLast: false, generator: saved, startBatch: cursor)
        var resumedRest: [[Int]] = []
        while let b = resumed.next() { resumedRest.append(b.indices) }
        XCTAssertEqual(resumedRest, rest)
        XCTAssertEqual(resumed.generator, it.generator)
    }
}
