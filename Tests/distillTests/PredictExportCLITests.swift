import Checkpoints
import Foundation
import NeuralNet
import TensorCore
import XCTest

/// `distill predict` and `distill export` as a user runs them.
final class PredictExportCLITests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        _ = try distillExecutable()
        directory = try makeTemporaryDirectory(self)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A small labelled table, and a model trained on it.
    func trainedModel() throws -> (csv: String, model: String) {
        var text = "a,b,c,label\n"
        for i in 0..<240 {
            let c = i % 3
            text += "\(Double(c) + Double(i % 7) / 10),\(Double(2 - c) * 1.5 + Double(i % 5) / 10),\(Double(i % 11) / 10),\(["x", "y", "z"][c])\n"
        }
        try Data(text.utf8).write(to: directory.appendingPathComponent("t.csv"))
        let model = path("m.safetensors")
        let trained = try runDistill(["train", "--data", path("t.csv"), "--hidden", "8", "--epochs", "20", "--threads", "1", "--output", model], in: directory)
        assertSucceeded(trained, "train")
        return (path("t.csv"), model)
    }

    func testPredictWithAndWithoutALabelColumn() throws {
        let (csv, model) = try trainedModel()
        let labelled = try runDistill(["predict", model, "--data", csv, "--output", path("p.json")], in: directory)
        assertSucceeded(labelled, "predict with labels")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("p.json")))) as? [String: Any])
        XCTAssertEqual(report["count"] as? Int, 240)
        XCTAssertEqual(report["class_names"] as? [String], ["x", "y", "z"])
        XCTAssertGreaterThan(report["accuracy"] as? Double ?? 0, 0.9)
        let first = try XCTUnwrap((report["predictions"] as? [[String: Any]])?.first)
        XCTAssertEqual((first["probabilities"] as? [Double])?.reduce(0, +) ?? 0, 1, accuracy: 1e-5)
        // The same rows without their labels: CSV on stdout, the same classes.
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").dropLast().joined(separator: ",") }.joined(separator: "\n") + "\n"
        try Data(rows.utf8).write(to: directory.appendingPathComponent("rows.csv"))
        let unlabelled = try runDistill(["predict", model, "--data", path("rows.csv")], in: directory)
        assertSucceeded(unlabelled, "predict without labels")
        let lines = unlabelled.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "row,class,probability,x,y,z")
        XCTAssertEqual(lines.count, 241)
        let classes = lines.dropFirst().map { $0.split(separator: ",")[1] }
        XCTAssertEqual(classes.map(String.init), (report["predictions"] as! [[String: Any]]).map { $0["class"] as! String })
    }

    func testBadInputsFailWithOneLineAndNoOutput() throws {
        let (csv, model) = try trainedModel()
        try Data("not a model".utf8).write(to: directory.appendingPathComponent("bad.safetensors"))
        let wide = "1,2,3,4,5\n6,7,8,9,10\n"
        try Data(wide.utf8).write(to: directory.appendingPathComponent("wide.csv"))
        let cases: [([String], String)] = [
            (["predict", path("bad.safetensors"), "--data", csv, "--output", path("out.csv")], "bad.safetensors"),
            (["predict", model, "--data", path("wide.csv"), "--output", path("out.csv")], "wide.csv: rows of 5 values; the model takes 3"),
            (["export", path("bad.safetensors"), "--output", path("out.onnx")], "bad.safetensors"),
            (["export", model, "--format", "tflite", "--output", path("out.onnx")], "--format must be onnx"),
        ]
        for (arguments, needle) in cases {
            let result = try runDistill(arguments, in: directory)
            assertFailedCleanly(result, naming: needle, "\(arguments)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.csv")))
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.onnx")))
        }
        let exported = try runDistill(["export", model, "--output", path("m.onnx")], in: directory)
        assertSucceeded(exported, "export")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("m.onnx")))
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("Gemm"))
    }

    /// A convolutional model file (lenet5 on 1x28x28 images, random weights): predict takes rows of 784 raw values
    /// and answers what the model computes; export writes a graph of convolutions.
    func testPredictAndExportLeNet5() throws {
        var generator = RandomGenerator(seed: 5)
        let model = try ModelPresets.description(named: "lenet5", inputShape: [1, 28, 28], classCount: 10).build(generator: &generator)
        try ModelCheckpoint(model: model).write(to: URL(fileURLWithPath: path("lenet5.safetensors")), overwrite: false)
        let images = Tensor(shape: [4, 784]) { out in for i in 0..<(4 * 784) { out[i] = Float((i * 7919) % 256) / 255 } }
        var text = ""
        for r in 0..<4 { text += (0..<784).map { String(images[flat: r * 784 + $0]) }.joined(separator: ",") + "\n" }
        try Data(text.utf8).write(to: directory.appendingPathComponent("images.csv"))
        let predicted = try runDistill(["predict", path("lenet5.safetensors"), "--data", path("images.csv")], in: directory)
        assertSucceeded(predicted, "predict")
        let lines = predicted.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        let logits = model.infer(images)
        for r in 0..<4 {
            let row = (0..<10).map { logits[flat: r * 10 + $0] }
            let best = try XCTUnwrap(row.indices.max { row[$0] < row[$1] })
            XCTAssertEqual(String(lines[r + 1].split(separator: ",")[1]), String(best))
        }
        let exported = try runDistill(["export", path("lenet5.safetensors"), "--output", path("lenet5.onnx")], in: directory)
        assertSucceeded(exported, "export")
        XCTAssertTrue(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path("lenet5.onnx"))), as: UTF8.self).contains("MaxPool"))
    }
}
