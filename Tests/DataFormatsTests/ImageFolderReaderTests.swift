import DataFormats
import Datasets
import Foundation
import XCTest

/// Image folders read through libpng and libjpeg (fixtures from Scripts/make_image_fixtures.py, Pillow).
final class ImageFolderReaderTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    func testClassesFromSubfoldersRGBWhenAnyImageHasColour() throws {
        let t = try ImageFolderReader.read(directory: try fixture("images"))
        XCTAssertEqual(t.classNames, ["circle", "square"])
        XCTAssertEqual(t.dataset.labels, [0, 0, 0, 1, 1, 1], "a.png, b.png, c.jpg per class")
        XCTAssertEqual(t.dataset.sampleShape, [3, 8, 8], "the red images make it RGB, channel planes first")
        XCTAssertTrue(t.dataset.isByteStorage)
        let x = t.dataset.inputs(at: [4])   // square/b.png: a red square
        let plane = 64
        XCTAssertEqual(x[flat: 0 * plane + 3 * 8 + 3], 1, "red inside the square")
        XCTAssertEqual(x[flat: 1 * plane + 3 * 8 + 3], 0, "no green")
        XCTAssertEqual(x[flat: 0 * plane + 0], 0, "black outside")
        let jpeg = t.dataset.inputs(at: [5])  // square/c.jpg, grey, lossy
        XCTAssertEqual(jpeg[flat: 3 * 8 + 3], 1, accuracy: 0.05)
        XCTAssertEqual(jpeg[flat: plane + 3 * 8 + 3], jpeg[flat: 3 * 8 + 3], "grey: equal channels")
    }

    func testGreyAndResize() throws {
        var options = ImageFolderReader.Options()
        options.channels = 1
        options.size = (4, 4)
        let t = try ImageFolderReader.read(directory: try fixture("images"), options: options)
        XCTAssertEqual(t.dataset.sampleShape, [1, 4, 4])
        let red = t.dataset.inputs(at: [4])
        XCTAssertEqual(red[flat: 1 * 4 + 1], Float((299 * 255 + 500) / 1000) / 255, accuracy: 0.01, "red's luma")
        let mixed = try ImageFolderReader.read(directory: try fixture("mixed-sizes"), options: options)
        XCTAssertEqual(mixed.dataset.count, 3)
    }

    func testBadFoldersNameTheFile() throws {
        func message(_ name: String, _ options: ImageFolderReader.Options = .init()) -> String {
            do { _ = try ImageFolderReader.read(directory: try fixture(name), options: options); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("bad-images").contains("broken.png: expected a readable PNG image, found an error:"), message("bad-images"))
        XCTAssertTrue(message("mixed-sizes").contains("square/b.png: expected 8x8 pixels like a.png (or give a size to resize to), found 10x10"), message("mixed-sizes"))
        let one = FileManager.default.temporaryDirectory.appendingPathComponent("one-class-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: one.appendingPathComponent("only"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: one) }
        XCTAssertThrowsError(try ImageFolderReader.read(directory: one)) { XCTAssertTrue("\($0)".contains("at least two"), "\($0)") }
    }
}
