import Foundation
import TensorCore
import XCTest
import TensorIO

final class AtomicFileTests: XCTestCase {
    private func entries(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    func testCreatesAndRefusesToOverwrite() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("out.json")
        try AtomicFile.write(data: Data("first".utf8), to: url, overwrite: false)
        XCTAssertEqual(try Data(contentsOf: url), Data("first".utf8))

        let error = captureError { try AtomicFile.write(data: Data("second".utf8), to: url, overwrite: false) }
        XCTAssertEqual(error?.description, "\(url.path) exists; not overwritten (overwriting was not allowed)")
        XCTAssertEqual(try Data(contentsOf: url), Data("first".utf8))
        XCTAssertEqual(try entries(dir), ["out.json"])

        try AtomicFile.write(data: Data("third".utf8), to: url, overwrite: true)
        XCTAssertEqual(try Data(contentsOf: url), Data("third".utf8))
        try AtomicFile.write(data: Data(), to: url, overwrite: true)
        XCTAssertEqual(try Data(contentsOf: url), Data())
        XCTAssertEqual(try entries(dir), ["out.json"])
    }

    func testSafeTensorsWriteRespectsOverwrite() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("m.safetensors")
        try SafeTensors.write([.tensor("a", Tensor([1]))], to: url, overwrite: false)
        let original = try Data(contentsOf: url)
        let error = captureError { try SafeTensors.write([.tensor("a", Tensor([2]))], to: url, overwrite: false) }
        XCTAssertEqual(error?.description, "\(url.path) exists; not overwritten (overwriting was not allowed)")
        XCTAssertEqual(try Data(contentsOf: url), original)
        // A failing serialization (duplicate names) never touches the target either.
        XCTAssertNotNil(captureError { try SafeTensors.write([.tensor("a", Tensor([2])), .tensor("a", Tensor([3]))], to: url, overwrite: true) })
        XCTAssertEqual(try Data(contentsOf: url), original)
        try SafeTensors.write([.tensor("a", Tensor([2]))], to: url, overwrite: true)
        XCTAssertEqual(try SafeTensors.read(url: url).tensor(named: "a").scalars, [2])
        XCTAssertEqual(try entries(dir), ["m.safetensors"])
    }

    func testFailuresLeaveNoTemporaryFiles() throws {
        let dir = try makeTemporaryDirectory(self)
        let existing = dir.appendingPathComponent("keep.bin")
        try AtomicFile.write(data: Data("keep".utf8), to: existing, overwrite: false)

        // Missing directory.
        let missingDir = dir.appendingPathComponent("no-such-dir").appendingPathComponent("x.bin")
        let error = captureError { try AtomicFile.write(data: Data("x".utf8), to: missingDir, overwrite: true) }
        XCTAssertTrue(error?.description.hasPrefix(missingDir.path + ": ") == true, "\(String(describing: error))")

        // Target is a directory: the temporary file is written, the rename fails, the temporary file is removed.
        let subdir = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: subdir, withIntermediateDirectories: false)
        try Data("inner".utf8).write(to: subdir.appendingPathComponent("inner.txt"))
        XCTAssertNotNil(captureError { try AtomicFile.write(data: Data("x".utf8), to: subdir, overwrite: true) })
        XCTAssertNotNil(captureError { try AtomicFile.write(data: Data("x".utf8), to: subdir, overwrite: false) })

        XCTAssertEqual(try entries(dir), ["keep.bin", "sub"])
        XCTAssertEqual(try entries(subdir), ["inner.txt"])
        XCTAssertEqual(try Data(contentsOf: existing), Data("keep".utf8))
    }
}
