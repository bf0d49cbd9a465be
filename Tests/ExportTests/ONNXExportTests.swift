import Checkpoints
import DataFormats
import Export
import Foundation
import TensorCore
import TensorIO
import XCTest

/// The ONNX export against ONNX Runtime's numbers (fixtures from Scripts/make_onnx_fixtures.py: a digits student,
/// its export, checked by onnx.checker, and ORT 1.32's logits for 32 raw rows).
final class ONNXExportTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    /// The exporter writes exactly the file ONNX Runtime ran (the export is deterministic).
    func testExportIsTheFileORTRan() throws {
        let checkpoint = try ModelCheckpoint.read(url: try fixture("student.safetensors"))
        var options = ONNXExporter.Options()
        options.probabilities = true
        let bytes = try ONNXExporter.export(checkpoint, source: "student.safetensors", options: options)
        XCTAssertEqual(bytes, try Data(contentsOf: try fixture("student.onnx")))
    }

    /// Our model on the raw rows (standardised as the model file says) gives ORT's logits to 1e-5.
    func testOurLogitsMatchONNXRuntime() throws {
        let checkpoint = try ModelCheckpoint.read(url: try fixture("student.safetensors"))
        let ort = try SafeTensors.read(url: try fixture("ort.safetensors"))
        let input = try ort.tensor(named: "input"), expected = try ort.tensor(named: "logits")
        let specification = try XCTUnwrap(try DataSpecification.from(metadata: checkpoint.metadata))
        let standardization = try XCTUnwrap(specification.standardization, "the fixture was trained on standardised features")
        let n = input.shape[0], f = input.shape[1]
        let standardised = Tensor(shape: [n, f]) { out in
            for i in 0..<(n * f) { out[i] = (input[flat: i] - standardization.mean[i % f]) / standardization.std[i % f] }
        }
        let logits = checkpoint.model.infer(standardised)
        XCTAssertEqual(logits.shape, expected.shape)
        var largest: Float = 0
        for i in 0..<logits.count { largest = max(largest, abs(logits[flat: i] - expected[flat: i])) }
        print("largest |ours - ORT| over \(logits.count) logits: \(largest)")
        XCTAssertLessThanOrEqual(largest, 1e-5)
    }

    func testMetadataAndNames() throws {
        let text = String(decoding: try Data(contentsOf: try fixture("student.onnx")), as: UTF8.self)
        for needle in ["logits", "probabilities", "input", "batch", "Gemm", "Relu", "Sub", "Div", "Softmax", "model_description", "SwiftDistill"] {
            XCTAssertTrue(text.contains(needle), needle)
        }
    }

    /// A malformed model file is one error, and no partial output is written (the command writes atomically).
    func testMalformedModelIsAnError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).safetensors")
        try Data("not a model".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try ModelCheckpoint.read(url: url))
    }
}
