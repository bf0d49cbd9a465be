import DataFormats
import Datasets
import Foundation
import TensorCore
import XCTest

final class NPYReaderTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// Writes an NPY version-1 file as NumPy does: magic, version, header padded to 64 bytes, data.
    @discardableResult
    func write(_ name: String, descr: String, shape: [Int], data: [UInt8], fortran: Bool = false, truncate: Int = 0) throws -> URL {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + data
        let url = directory.appendingPathComponent(name)
        try Data(bytes.dropLast(truncate)).write(to: url)
        return url
    }

    func raw<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    func testFloat32AndDenseIntegerLabels() throws {
        let x = try write("x.npy", descr: "<f4", shape: [3, 2], data: raw([Float(1), 2, 3, 4, 5.5, -6]))
        let y = try write("y.npy", descr: "<i8", shape: [3], data: raw([Int64(1), 0, 1]))
        let t = try NPYReader.read(data: x, labels: y)
        XCTAssertEqual(t.dataset.inputs.scalars, [1, 2, 3, 4, 5.5, -6])
        XCTAssertEqual(t.dataset.labels, [1, 0, 1])
        XCTAssertNil(t.classNames)
        XCTAssertEqual(t.dataset.sampleShape, [2])
    }

    func testUInt8ImagesStayBytesAndFloat64Converts() throws {
        let images = try write("img.npy", descr: "|u1", shape: [2, 2, 2], data: [0, 255, 7, 9, 1, 2, 3, 4])
        let labels = try write("lab.npy", descr: "<i4", shape: [2], data: raw([Int32(10), Int32(30)]))
        let t = try NPYReader.read(data: images, labels: labels)
        XCTAssertTrue(t.dataset.isByteStorage)
        XCTAssertEqual(t.dataset.sampleShape, [2, 2])
        XCTAssertEqual(t.dataset.inputs.scalars, [0, 255, 7, 9, 1, 2, 3, 4], "bytes are their values, not scaled")
        XCTAssertEqual(t.classNames, ["10", "30"])
        XCTAssertEqual(t.dataset.labels, [0, 1])
        let d = try write("d.npy", descr: "<f8", shape: [2, 1], data: raw([0.1, -2.5]))
        XCTAssertEqual(try NPYReader.read(data: d, labels: labels).dataset.inputs.scalars, [Float(0.1), -2.5])
    }

    func testBadFilesGiveOneLineNamingTheFile() throws {
        let labels = try write("y.npy", descr: "<i8", shape: [2], data: raw([Int64(0), 1]))
        func message(_ data: URL, _ labels: URL) -> String {
            do { _ = try NPYReader.read(data: data, labels: labels); return "no error" } catch { return "\(error)" }
        }
        let f16 = try write("h.npy", descr: "<f2", shape: [2, 1], data: [0, 0, 0, 0])
        XCTAssertTrue(message(f16, labels).hasPrefix("\(f16.path): expected dtype <f4, <f8, |u1, <i8"), message(f16, labels))
        let fortran = try write("f.npy", descr: "<f4", shape: [2, 1], data: raw([Float(1), 2]), fortran: true)
        XCTAssertEqual(message(fortran, labels), "\(fortran.path): expected C order (fortran_order False), found fortran_order True")
        let short = try write("s.npy", descr: "<f4", shape: [2, 2], data: raw([Float(1), 2, 3, 4]), truncate: 3)
        XCTAssertTrue(message(short, labels).contains("for shape [2, 2] of <f4, found"), message(short, labels))
        let three = try write("t.npy", descr: "<f4", shape: [3, 1], data: raw([Float(1), 2, 3]))
        XCTAssertEqual(message(three, labels), "\(labels.path): expected labels of shape [3] (one per row of t.npy), found shape [2]")
        let nan = try write("n.npy", descr: "<f4", shape: [2, 1], data: raw([Float(1), .nan]))
        XCTAssertEqual(message(nan, labels), "\(nan.path): expected finite values, found nan at row 1, column 0")
        let notNPY = directory.appendingPathComponent("x.npy")
        try Data("hello world".utf8).write(to: notNPY)
        XCTAssertEqual(message(notNPY, labels), "\(notNPY.path): expected the NPY magic \\x93NUMPY, found other bytes")
        let floatLabels = try write("fl.npy", descr: "<f4", shape: [2], data: raw([Float(0), 1]))
        XCTAssertTrue(message(three, floatLabels).hasPrefix("\(floatLabels.path): expected dtype <i8, <i4, |u1"), message(three, floatLabels))
    }
}
