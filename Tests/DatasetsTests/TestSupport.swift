import CZlib
import Foundation
import XCTest
import Datasets

/// Helpers shared by the Datasets tests.
enum TestSupport {
    /// The repository root, found from this source file's location.
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The vendored MNIST directory.
    static var mnistDirectory: URL { repositoryRoot.appendingPathComponent("Data/mnist") }

    /// Gzip-compresses `bytes` in memory with zlib's deflate (windowBits 31 = gzip wrapper).
    static func gzip(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let status = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                   ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "deflateInit2 failed: \(status)")
        defer { deflateEnd(&stream) }
        var input = bytes
        let bound = Int(deflateBound(&stream, uLong(bytes.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                let result = deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "deflate did not finish: \(result)")
            }
        }
        return Array(output.prefix(Int(stream.total_out)))
    }

    /// A fresh temporary directory, removed at the end of the test.
    static func temporaryDirectory(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("DatasetsTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Writes `bytes` to `directory/name`.
    static func write(_ bytes: [UInt8], _ directory: URL, _ name: String) throws {
        try Data(bytes).write(to: directory.appendingPathComponent(name))
    }

    /// Raw IDX bytes with the given header and data (no validation, for building bad files).
    static func idx(type: UInt8 = 0x08, dims: [UInt32], data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, type, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)] }
        return out + data
    }

    /// The description of the error thrown by `body`, failing the test if nothing is thrown or it is no `DataError`.
    static func errorMessage<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("expected a DataError", file: file, line: line)
            return ""
        } catch let error as DataError {
            return error.description
        } catch {
            XCTFail("expected a DataError, got \(error)", file: file, line: line)
            return ""
        }
    }
}
