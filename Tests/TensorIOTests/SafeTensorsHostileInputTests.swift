import Foundation
import TensorCore
import XCTest
import TensorIO

/// Every malformed input must produce a one-line `TensorIOError` naming the source, never a trap.
final class SafeTensorsHostileInputTests: XCTestCase {
    let source = "hostile.safetensors"

    private func assertRejected(_ data: Data, _ expectedFragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let error = captureError(file: file, line: line) { _ = try SafeTensors.read(data: data, source: source) }
        guard let error else { return XCTFail("accepted malformed input (expected \"\(expectedFragment)\")", file: file, line: line) }
        XCTAssertTrue(error.description.hasPrefix("\(source): "), error.description, file: file, line: line)
        XCTAssertTrue(error.description.contains(expectedFragment), "\(error.description) lacks \"\(expectedFragment)\"", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
    }

    private func header(_ json: String, data: Int) -> Data { safetensorsBytes(header: json, data: Array(repeating: 0, count: data)) }

    private func entry(_ dtype: String = "\"F32\"", shape: String = "[2]", offsets: String = "[0,8]") -> String {
        #"{"t":{"dtype":\#(dtype),"shape":\#(shape),"data_offsets":\#(offsets)}}"#
    }

    func testFramingErrors() {
        assertRejected(Data(), "expected at least 8")
        assertRejected(Data([1, 2, 3]), "file is 3 bytes")
        assertRejected(safetensorsBytes(header: "{}", declaredLength: 3), "exceeds the 2 bytes")
        assertRejected(safetensorsBytes(header: "{}", declaredLength: UInt64.max), "exceeds the limit")
        assertRejected(safetensorsBytes(header: "{}", declaredLength: 200_000_000), "exceeds the limit")
        assertRejected(safetensorsBytes(header: "", declaredLength: 0), "invalid header JSON")
        assertRejected(safetensorsBytes(header: "{}", data: [1]), "data region after the header is 1 bytes")
    }

    func testHeaderSyntaxErrors() {
        var invalidUTF8 = safetensorsBytes(header: #"{"a":"xx"}"#)
        invalidUTF8[8 + 6] = 0xFF
        assertRejected(invalidUTF8, "not valid UTF-8")
        assertRejected(header("{", data: 0), "invalid header JSON")
        assertRejected(header(#"{"a":1,}"#, data: 0), "invalid header JSON")
        assertRejected(header(#"{"a" 1}"#, data: 0), "expected ':'")
        assertRejected(header("{}x", data: 0), "expected end of JSON")
        assertRejected(header("{}\0", data: 0), "expected end of JSON")
        assertRejected(header(#"{"a\q":1}"#, data: 0), "escape")
        assertRejected(header(#"{"\ud800":1}"#, data: 0), "surrogate")
        assertRejected(header("{\"a\u{01}\":1}", data: 0), "control character")
        assertRejected(header(#"{"__metadata__":{"x":"1","x":"2"}}"#, data: 0), "duplicate key \"x\"")
        assertRejected(header(String(repeating: "[", count: 10_000), data: 0), "nested deeper")
        assertRejected(header(entry(shape: "[" + Array(repeating: "1", count: 2000).joined(separator: ",") + "]"), data: 8), "array longer than 1024")
        assertRejected(header("[]", data: 0), "must be a JSON object, found array")
        assertRejected(header(#""str""#, data: 0), "must be a JSON object, found string")
    }

    func testEntryErrors() {
        assertRejected(header(#"{"t":[1]}"#, data: 0), #"tensor "t" must be an object"#)
        assertRejected(header(#"{"__metadata__":[]}"#, data: 0), "\"__metadata__\" must be an object")
        assertRejected(header(#"{"__metadata__":{"epochs":3}}"#, data: 0), #"metadata "epochs" must be a string, found number 3"#)
        assertRejected(header(#"{"__metadata__":{"e":null}}"#, data: 0), "found null")
        assertRejected(header(#"{"t":{"dtype":"F32","shape":[0]}}"#, data: 0), "missing data_offsets")
        assertRejected(header(#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}}"#, data: 0), "unexpected field \"x\"")
        assertRejected(header(entry("\"F8_E4M3\""), data: 8), "unsupported dtype \"F8_E4M3\"")
        assertRejected(header(entry("\"f32\""), data: 8), "unsupported dtype")
        assertRejected(header(entry("7"), data: 8), "dtype must be a string")
        assertRejected(header(entry(shape: "[-2]"), data: 8), "non-negative integers, found number -2")
        assertRejected(header(entry(shape: "[2.0]"), data: 8), "found number 2.0")
        assertRejected(header(entry(shape: "[1e3]"), data: 8), "found number 1e3")
        assertRejected(header(entry(shape: "[\"2\"]"), data: 8), "found string")
        assertRejected(header(entry(shape: "2"), data: 8), "shape must be an array")
        assertRejected(header(entry(shape: "[99999999999999999999]"), data: 8), "non-negative integers")
        assertRejected(header(entry(shape: "[4294967296,4294967296,0]"), data: 8), "too large")
        assertRejected(header(entry(shape: "[2305843009213693952]"), data: 8), "too large")  // 2^61 * 4 bytes overflows
        assertRejected(header(entry(shape: "[3]"), data: 8), "span 8 bytes, expected 12")
        assertRejected(header(entry(offsets: "[0,16]"), data: 8), "end 16 exceeds the 8-byte data region")
        assertRejected(header(entry(offsets: "[8,0]"), data: 8), "reversed")
        assertRejected(header(entry(offsets: "[0]"), data: 8), "array of 2 integers")
        assertRejected(header(entry(offsets: "[0,8,9]"), data: 8), "array of 2 integers")
        assertRejected(header(entry(offsets: "[-8,0]"), data: 8), "non-negative integers")
        assertRejected(header(entry(offsets: "[0,18446744073709551616]"), data: 8), "non-negative integers")
    }

    func testLayoutErrors() {
        func a(_ offsets: String) -> String { #""a":{"dtype":"F32","shape":[1],"data_offsets":\#(offsets)}"# }
        func b(_ offsets: String) -> String { #""b":{"dtype":"F32","shape":[1],"data_offsets":\#(offsets)}"# }
        assertRejected(header("{\(a("[0,4]"))}", data: 8), "cover 4 bytes of data, but the data region after the header is 8 bytes")
        assertRejected(header("{\(a("[4,8]"))}", data: 8), "start at 4, expected 0 (a gap")
        assertRejected(header("{\(a("[0,4]")),\(b("[0,4]"))}", data: 4), "expected 4 (an overlap")
        assertRejected(header("{\(a("[0,4]")),\(b("[8,12]"))}", data: 12), "start at 8, expected 4 (a gap")
        assertRejected(header("{\(a("[0,4]")),\(a("[4,8]"))}", data: 8), "duplicate key \"a\"")
        // Valid: the same tensors in reverse header order, zero-sized tensors anywhere.
        let ok = try? SafeTensors.read(data: header(
            "{\(b("[4,8]")),\(a("[0,4]")),\"z\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[8,8]}}", data: 8), source: source)
        XCTAssertEqual(ok?.names, ["a", "b", "z"])
    }

    func testPaddingAndWhitespaceAccepted() throws {
        let json = #"{"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#
        for padded in [json, json + "   ", " \n" + json + "\t "] {
            let file = try SafeTensors.read(data: safetensorsBytes(header: padded, data: [4, 200]), source: source)
            XCTAssertEqual(try file.integers(named: "t"), [4, 200])
        }
    }

    func testUnreadableFileNamesThePath() throws {
        let dir = try makeTemporaryDirectory(self)
        let missing = dir.appendingPathComponent("nope.safetensors")
        let error = captureError { _ = try SafeTensors.read(url: missing) }
        XCTAssertTrue(error?.description.hasPrefix(missing.path) == true, "\(String(describing: error))")
        let truncated = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2]).write(to: truncated)
        XCTAssertTrue(captureError { _ = try SafeTensors.read(url: truncated) }?.description.hasPrefix(truncated.path + ": ") == true)
    }
}
