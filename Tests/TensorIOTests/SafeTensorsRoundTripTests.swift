import Foundation
import TensorCore
import XCTest
import TensorIO

final class SafeTensorsRoundTripTests: XCTestCase {
    func testByteExactTinyFile() throws {
        let data = try SafeTensors.serialize(
            [.tensor("a", Tensor([1, -2])), .integers("b", [3])], metadata: ["k": "v"])
        let header = #"{"__metadata__":{"k":"v"},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"#
            + #""a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"# + "   "  // 133 bytes + 3 spaces = 136
        var expected: [UInt8] = [136, 0, 0, 0, 0, 0, 0, 0]
        expected += Array(header.utf8)
        expected += [3, 0, 0, 0, 0, 0, 0, 0]  // I64 3
        expected += [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]  // F32 1, -2
        XCTAssertEqual(Array(data), expected)
        XCTAssertEqual(Array(try SafeTensors.serialize([.integers("b", [3]), .tensor("a", Tensor([1, -2]))], metadata: ["k": "v"])), expected)
    }

    func testEmptyFileAndEscaping() throws {
        let empty = try SafeTensors.serialize([])
        XCTAssertEqual(Array(empty), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        XCTAssertEqual(try SafeTensors.read(data: empty, source: "e").names, [])
        let name = "we\"ird\\na\u{01}me\nπ"
        let file = try SafeTensors.read(data: try SafeTensors.serialize([.tensor(name, Tensor(scalar: 5))], metadata: ["x\ty": "é\"\u{1F600}"]), source: "m")
        XCTAssertEqual(file.names, [name])
        XCTAssertEqual(try file.tensor(named: name), Tensor(scalar: 5))
        XCTAssertEqual(file.metadata, ["x\ty": "é\"\u{1F600}"])
    }

    func testRoundTripF32F16I64WithMetadata() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("model.safetensors")
        var rng = RandomGenerator(seed: 7)
        let weights = Tensor.normal([3, 4], generator: &rng)
        let halfExact = Tensor(shape: [2, 3], scalars: [0.5, -1.25, 65504, 6.1035156e-05, 5.9604645e-08, 0])
        let rounded = Tensor([1.0 / 3.0])
        let labels = [0, 9, -1, Int(Int64.max), Int(Int64.min)]
        let metadata = ["format": "pt", "teacher": "resnet", "temperature": "4.0"]
        try SafeTensors.write(
            [.tensor("w", weights), .tensor("h", halfExact, dtype: .f16), .tensor("r", rounded, dtype: .f16),
             .tensor("bf", Tensor([1, 3.140625]), dtype: .bf16), .tensor("d", Tensor([0.1]), dtype: .f64),
             .integers("labels", labels), .integers("grid", [1, 2, 3, 4], shape: [2, 2], dtype: .i32),
             .integers("mask", [0, 255], dtype: .u8), .tensor("empty", Tensor(shape: [0, 5]))],
            metadata: metadata, to: url, overwrite: false)
        let file = try SafeTensors.read(url: url)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(Set(file.names), ["w", "h", "r", "bf", "d", "labels", "grid", "mask", "empty"])
        XCTAssertEqual(try file.tensor(named: "w"), weights)
        XCTAssertEqual(try file.tensor(named: "h"), halfExact)
        XCTAssertEqual(try file.tensor(named: "r").scalars, [HalfPrecision.float(fromFloat16Bits: 0x3555)])
        XCTAssertEqual(try file.tensor(named: "bf").scalars, [1, 3.140625])
        XCTAssertEqual(try file.tensor(named: "d").scalars, [0.1])
        XCTAssertEqual(try file.integers(named: "labels"), labels)
        XCTAssertEqual(try file.integers(named: "grid"), [1, 2, 3, 4])
        XCTAssertEqual(try file.tensor(named: "grid"), Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        XCTAssertEqual(try file.integers(named: "mask"), [0, 255])
        XCTAssertEqual(try file.tensor(named: "empty").shape, [0, 5])
        XCTAssertEqual(try file.info(named: "h"), SafeTensorInfo(dtype: .f16, shape: [2, 3], dataOffsets: try file.info(named: "h").dataOffsets))
        XCTAssertEqual(try file.rawBytes(named: "r"), Data([0x55, 0x35]))
        XCTAssertEqual(try file.info(named: "labels").dtype, .i64)
        // Every tensor is aligned to its element size within the file.
        for name in file.names {
            let info = try file.info(named: name)
            XCTAssertEqual(info.dataOffsets.lowerBound % info.dtype.byteSize, 0, name)
        }
        // Deterministic bytes for identical input.
        let again = dir.appendingPathComponent("again.safetensors")
        try SafeTensors.write(tensors: [(name: "w", tensor: weights, dtype: .f32)], metadata: metadata, to: again, overwrite: false)
        let bytes1 = try Data(contentsOf: again)
        try SafeTensors.write(tensors: [(name: "w", tensor: weights, dtype: .f32)], metadata: metadata, to: again, overwrite: true)
        XCTAssertEqual(try Data(contentsOf: again), bytes1)
    }

    func testAccessorErrors() throws {
        let file = try SafeTensors.read(data: try SafeTensors.serialize([.tensor("w", Tensor([1]))]), source: "acc.safetensors")
        for error in [
            captureError { _ = try file.tensor(named: "missing") }, captureError { _ = try file.integers(named: "w") },
        ] {
            XCTAssertTrue(error?.description.contains("acc.safetensors") == true, "\(String(describing: error))")
        }
        let big = safetensorsBytes(header: #"{"u":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0xFF, count: 8))
        let u = try SafeTensors.read(data: big, source: "u64")
        XCTAssertNotNil(captureError { _ = try u.integers(named: "u") })
        XCTAssertEqual(try u.tensor(named: "u").scalars, [Float(UInt64.max)])
    }

    func testWriterRejectsBadEntries() {
        let bad: [[SafeTensorsEntry]] = [
            [.tensor("a", Tensor([1])), .tensor("a", Tensor([2]))],
            [.tensor("__metadata__", Tensor([1]))],
            [.tensor("a", Tensor([1]), dtype: .i64)],
            [.integers("a", [1], dtype: .f32)],
            [.integers("a", [256], dtype: .u8)],
            [.integers("a", [-1], dtype: .u8)],
            [.integers("a", [Int(Int32.max) + 1], dtype: .i32)],
            [.integers("a", [1, 2, 3], shape: [2, 2])],
            [.integers("a", [], shape: [-1])],
        ]
        for entries in bad {
            let error = captureError { _ = try SafeTensors.serialize(entries, source: "out.safetensors") }
            XCTAssertTrue(error?.description.hasPrefix("out.safetensors: ") == true, "\(String(describing: error))")
        }
    }

    /// Writes a file for the Python interop check when `DISTILL_INTEROP_OUT` names an output path
    /// (see Scripts/check_safetensors_interop.py).
    func testWriteInteropFileWhenRequested() throws {
        guard let path = ProcessInfo.processInfo.environment["DISTILL_INTEROP_OUT"] else { throw XCTSkip("DISTILL_INTEROP_OUT not set") }
        try SafeTensors.write(
            [.tensor("weight", Tensor(shape: [2, 3], scalars: [1, -2, 0.5, 3.25, -0.125, 100])),
             .tensor("half", Tensor([1.0 / 3.0, 65504, -0.0]), dtype: .f16),
             .tensor("brain", Tensor([1, -3]), dtype: .bf16),
             .integers("labels", [0, 7, -3, 9_000_000_000]), .integers("mask", [1, 0, 255], dtype: .u8)],
            metadata: ["format": "pt", "note": "swift"], to: URL(fileURLWithPath: path), overwrite: true)
    }

    /// Reads the file written by `Scripts/check_safetensors_interop.py write <path>` when `DISTILL_INTEROP_IN`
    /// names it.
    func testReadInteropFileWhenRequested() throws {
        guard let path = ProcessInfo.processInfo.environment["DISTILL_INTEROP_IN"] else { throw XCTSkip("DISTILL_INTEROP_IN not set") }
        let file = try SafeTensors.read(url: URL(fileURLWithPath: path))
        XCTAssertEqual(file.metadata, ["source": "python"])
        XCTAssertEqual(try file.tensor(named: "f32"), Tensor(shape: [2, 3], scalars: [0, 0.25, 0.5, 0.75, 1, 1.25]))
        XCTAssertEqual(try file.tensor(named: "f16").scalars, [HalfPrecision.float(fromFloat16Bits: HalfPrecision.float16Bits(from: 0.1)), -2.5, 65504])
        XCTAssertEqual(try file.tensor(named: "bf16").scalars, [1.5, -7])
        XCTAssertEqual(try file.tensor(named: "f64").scalars, [0.5])
        XCTAssertEqual(try file.integers(named: "i64"), [1, -2, 3, 1 << 40])
        XCTAssertEqual(try file.info(named: "i64").shape, [2, 2])
        XCTAssertEqual(try file.integers(named: "i32"), [-5])
        XCTAssertEqual(try file.integers(named: "u8"), [0, 200])
        XCTAssertEqual(try file.integers(named: "bool"), [1, 0])
        XCTAssertEqual(try file.tensor(named: "scalar"), Tensor(scalar: 3))
    }
}

/// The `TensorIOError` thrown by `body`, or nil (a failure is recorded if another error type is thrown).
func captureError(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> TensorIOError? {
    do {
        try body()
        return nil
    } catch let error as TensorIOError {
        return error
    } catch {
        XCTFail("expected TensorIOError, got \(type(of: error)): \(error)", file: file, line: line)
        return nil
    }
}
