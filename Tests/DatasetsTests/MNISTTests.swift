import Foundation
import XCTest
import Datasets

final class MNISTTests: XCTestCase {
    func testLoadsVendoredCopyWithVerifiedHashes() throws {
        let (train, test) = try MNIST.load(directory: TestSupport.mnistDirectory)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.featureCount, 784)
        XCTAssertEqual(test.featureCount, 784)
        XCTAssertTrue(train.isByteStorage && test.isByteStorage, "pixels kept as bytes, decoded per batch")
        XCTAssertEqual(train.classCount, 10)
        XCTAssertEqual(train.sampleShape, [1, 28, 28])
        XCTAssertEqual(train.imageShape?.channels, 1)
        XCTAssertEqual(train.imageShape?.height, 28)
        XCTAssertEqual(train.imageShape?.width, 28)
        XCTAssertEqual(Array(train.labels.prefix(5)), [5, 0, 4, 1, 9])
        XCTAssertEqual(Array(test.labels.prefix(5)), [7, 2, 1, 0, 4])
        XCTAssertEqual(train.classCounts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        let testImages = test.inputs
        XCTAssertEqual(testImages.shape, [10_000, 1, 28, 28])
        testImages.withUnsafeBufferPointer { pixels in
            XCTAssertEqual(pixels.min(), 0)
            XCTAssertEqual(pixels.max(), 1)
        }
        // The values the Float-matrix loader produced, pinned: teacher-logit stores written before pixels were kept
        // as bytes are stamped with these (recomputed independently from the IDX files with numpy).
        XCTAssertEqual(train.fingerprint, "bf931458e6ca7c161037e7dc4373c71bd5c5ef627dfe2e2dd7a395277e4ff604")
        XCTAssertEqual(test.fingerprint, "ddc1e688ce80c041e62597fd0cdb95b80477649bf55ac1e87d06175e9af15724")
        // The vendored SHA256SUMS is the canonical one.
        XCTAssertEqual(try SHA256Sums.read(TestSupport.mnistDirectory.appendingPathComponent("SHA256SUMS")), MNIST.canonicalSums)
    }

    /// Writes a tiny MNIST-shaped directory (gzip IDX files) and returns it.
    func tinyDirectory(images: Int = 3, labels: [UInt8] = [1, 2, 3], labelDims: [UInt32]? = nil) throws -> URL {
        let dir = try TestSupport.temporaryDirectory(self)
        let imageBytes = TestSupport.idx(dims: [UInt32(images), 28, 28], data: [UInt8](repeating: 255, count: images * 784))
        let labelBytes = TestSupport.idx(dims: labelDims ?? [UInt32(labels.count)], data: labels)
        for prefix in ["train", "t10k"] {
            try TestSupport.write(TestSupport.gzip(imageBytes), dir, "\(prefix)-images-idx3-ubyte.gz")
            try TestSupport.write(TestSupport.gzip(labelBytes), dir, "\(prefix)-labels-idx1-ubyte.gz")
        }
        return dir
    }

    func testTinyDirectoryLoadsWithoutSums() throws {
        let (train, test) = try MNIST.load(directory: tinyDirectory())
        XCTAssertEqual(train.labels, [1, 2, 3])
        XCTAssertEqual(test.inputs.shape, [3, 1, 28, 28])
        XCTAssertEqual(test.inputs[flat: 100], 1)
    }

    func testCountMismatchBetweenImagesAndLabels() throws {
        let dir = try tinyDirectory(images: 3, labels: [1, 2])
        XCTAssertEqual(TestSupport.errorMessage { try MNIST.load(directory: dir) },
                       "train-labels-idx1-ubyte.gz: expected 3 labels (one per image in train-images-idx3-ubyte.gz), found 2")
    }

    func testWrongMagicAndBadLabels() throws {
        let dir = try tinyDirectory(images: 1, labels: [1], labelDims: [1, 1, 1])
        XCTAssertEqual(TestSupport.errorMessage { try MNIST.load(directory: dir) },
                       "train-labels-idx1-ubyte.gz: expected IDX magic 0x00000801 (labels), found 0x00000803")
        let bad = try tinyDirectory(images: 2, labels: [1, 10])
        XCTAssertEqual(TestSupport.errorMessage { try MNIST.load(directory: bad) },
                       "train-labels-idx1-ubyte.gz: expected labels in 0...9, found 10 at index 1")
    }

    func testMissingFile() throws {
        let dir = try tinyDirectory()
        try FileManager.default.removeItem(at: dir.appendingPathComponent(MNIST.testLabelsFile))
        let message = TestSupport.errorMessage { try MNIST.load(directory: dir) }
        XCTAssertTrue(message.hasSuffix("t10k-labels-idx1-ubyte.gz: expected an existing file, found none (missing file)"), message)
    }

    func testChecksumMismatchNamesFileAndBothHashes() throws {
        let dir = try tinyDirectory()
        try Array(MNIST.canonicalSums.text.utf8).withUnsafeBytes {
            try Data($0).write(to: dir.appendingPathComponent("SHA256SUMS"))
        }
        let actual = SHA256.hexHash([UInt8](try Data(contentsOf: dir.appendingPathComponent(MNIST.trainImagesFile))))
        let message = TestSupport.errorMessage { try MNIST.load(directory: dir) }
        XCTAssertEqual(message, "\(dir.appendingPathComponent(MNIST.trainImagesFile).path): expected SHA-256 "
                       + "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971, found \(actual) (file corrupt or replaced)")
    }

    func testDefaultDirectory() throws {
        setenv("DISTILL_DATA_DIR", "/some/where", 1)
        XCTAssertEqual(MNIST.defaultDirectory()?.path, "/some/where")
        unsetenv("DISTILL_DATA_DIR")
        let found = try XCTUnwrap(MNIST.defaultDirectory())
        XCTAssertTrue(FileManager.default.fileExists(atPath: found.appendingPathComponent(MNIST.trainImagesFile).path))
        XCTAssertFalse(found.path.hasPrefix("/work/shared"))
    }

    func testFetchFailsCleanlyOffline() throws {
        let dir = try TestSupport.temporaryDirectory(self).appendingPathComponent("mnist")
        let start = Date()
        let message = TestSupport.errorMessage { try MNIST.fetch(to: dir, mirror: "http://127.0.0.1:9/mnist/", timeout: 5) }
        XCTAssertTrue(message.hasPrefix("could not download train-images-idx3-ubyte.gz from http://127.0.0.1:9/mnist/train-images-idx3-ubyte.gz: "), message)
        XCTAssertTrue(message.hasSuffix("offline? use the embedded copy in Data/mnist or another local MNIST directory"), message)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "no partial files")
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }
}
