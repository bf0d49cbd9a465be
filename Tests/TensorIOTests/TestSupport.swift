import Foundation
import XCTest
import TensorIO

/// A fresh empty directory under the system temporary directory, removed at the end of the test.
func makeTemporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tensorio-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Builds a safetensors byte image from a header string (padded if asked) and raw data bytes.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    let h = Array(header.utf8)
    var out = Data()
    var n = (declaredLength ?? UInt64(h.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}
