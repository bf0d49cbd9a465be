import TensorCore
import XCTest
import Datasets

final class LabeledDatasetTests: XCTestCase {
    /// Example `i` has every feature equal to `i` and label `i % 3`.
    static func toy(_ n: Int = 10, features: Int = 4) -> LabeledDataset {
        let images = Tensor(shape: [n, features], scalars: (0..<n).flatMap { i in [Float](repeating: Float(i), count: features) })
        return try! LabeledDataset(images: images, labels: (0..<n).map { $0 % 3 }, classCount: 3, imageShape: (2, features / 2))
    }

    func testValidation() {
        let images = Tensor.zeros([2, 4])
        XCTAssertTrue(TestSupport.errorMessage { try LabeledDataset(images: images, labels: [0], classCount: 3) }
            .hasPrefix("LabeledDataset: expected images of shape [1, features]"))
        XCTAssertEqual(TestSupport.errorMessage { try LabeledDataset(images: images, labels: [0, 3], classCount: 3) },
                       "LabeledDataset: expected labels in 0..<3, found label 3 at index 1")
        XCTAssertNotNil(try? LabeledDataset(images: images, labels: [0, 2], classCount: 3, imageShape: (2, 2)))
        XCTAssertNil(try? LabeledDataset(images: images, labels: [0, 2], classCount: 3, imageShape: (3, 2)))
    }

    func testSubsetAndClassFilters() {
        let data = Self.toy()
        let sub = data.subset(indices: [7, 2])
        XCTAssertEqual(sub.labels, [1, 2])
        XCTAssertEqual(sub.images[1, 0], 2)
        let noTwos = data.excluding(classes: [2])
        XCTAssertEqual(noTwos.labels, [0, 1, 0, 1, 0, 1, 0])
        XCTAssertEqual(noTwos.classCount, 3)
        XCTAssertEqual(data.filter(classes: [2]).images[0, 0], 2)
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
        let trainIDs = a.train.images.sum(axis: 1).scalars.map { Int($0) / 2 }
        let validationIDs = a.validation.images.sum(axis: 1).scalars.map { Int($0) / 2 }
        XCTAssertTrue(Set(trainIDs).isDisjoint(with: validationIDs))
        XCTAssertEqual(Set(trainIDs + validationIDs), Set(0..<100))
        XCTAssertEqual(trainIDs, trainIDs.sorted(), "original order kept")
        XCTAssertEqual(a.validation.images, b.validation.images)
        XCTAssertNotEqual(a.validation.images, c.validation.images)
        XCTAssertNil(try? data.validationSplit(count: 101, generator: &g1))
        XCTAssertNil(try? data.validationSplit(fraction: 1.5, generator: &g1))
    }

    func testFingerprint() throws {
        let data = Self.toy()
        XCTAssertEqual(data.fingerprint.count, 64)
        XCTAssertEqual(data.fingerprint, Self.toy().fingerprint)
        var images = data.images
        images[flat: 5] += 0.5
        let changedPixel = try LabeledDataset(images: images, labels: data.labels, classCount: 3, imageShape: (2, 2))
        XCTAssertNotEqual(changedPixel.fingerprint, data.fingerprint)
        var labels = data.labels
        labels[0] = 1
        let changedLabel = try LabeledDataset(images: data.images, labels: labels, classCount: 3, imageShape: (2, 2))
        XCTAssertNotEqual(changedLabel.fingerprint, data.fingerprint)
        XCTAssertNotEqual(data.subset(indices: Array((0..<10).reversed())).fingerprint, data.fingerprint)
    }
}
