import Checkpoints
import Foundation
import XCTest
import TensorCore
import TensorIO
import NeuralNet

/// `--model`, `--teacher-model` and the feature-distillation flags through the built executable, on a tiny
/// synthetic MNIST.
final class CNNCLITests: TinyMNISTTestCase {
    override var trainCount: Int { 200 }
    let common = ["--epochs", "1", "--batch-size", "32", "--threads", "1", "--learning-rate", "0.02"]

    func run(_ arguments: [String]) throws -> CommandResult {
        try runDistill(arguments + ["--data-dir", dataDirectory.path], in: directory)
    }

    func testTrainPresetsAndDescriptionFiles() throws {
        let lenet = try run(["train", "--model", "lenet5", "--output", path("lenet.safetensors"), "--json"] + common)
        assertSucceeded(lenet, "train --model lenet5")
        let report = try lastLineJSON(lenet.stdout)
        XCTAssertEqual(report["test_count"] as? Int, 100)
        XCTAssertNotNil(report["test_errors"] as? Int)
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: path("lenet.safetensors")))
        XCTAssertEqual(checkpoint.model.parameterCount, 61_706)
        XCTAssertEqual(checkpoint.description.inputShape, [1, 28, 28])

        // The same network from a description file.
        let json = try JSONEncoder().encode(checkpoint.description)
        try json.write(to: URL(fileURLWithPath: path("lenet.json")))
        let fromFile = try run(["train", "--model", path("lenet.json"), "--output", path("lenet2.safetensors")] + common)
        assertSucceeded(fromFile, "train --model lenet.json")
        let again = try ModelCheckpoint.read(url: URL(fileURLWithPath: path("lenet2.safetensors")))
        XCTAssertEqual(again.model.namedState.map(\.variable.value), checkpoint.model.namedState.map(\.variable.value),
                       "same seed, same network: same weights")
    }

    func testModelFlagErrorsAreOneLine() throws {
        func failure(_ arguments: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let result = try run(["train", "--output", path("x.safetensors")] + common + arguments)
            XCTAssertNotEqual(result.status, 0, file: file, line: line)
            XCTAssertTrue(result.stderr.contains(text), "expected '\(text)' in: \(result.stderr)", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.safetensors")), file: file, line: line)
        }
        try failure(["--model", "lenet7"], mentions: "must be one of lenet5")
        try failure(["--model", "resnet9"], mentions: "resnet<6n+2>")
        try failure(["--model", "lenet5", "--hidden", "100"], mentions: "--model and --hidden cannot be combined")
        try failure(["--model", path("missing.json")], mentions: "cannot read the file")
        try "{\"inputShape\": [1, 28, 28], \"layers\": [{\"kind\": \"conv2d\", \"inChannels\": 3, \"outChannels\": 4, \"kernelSize\": 3}]}"
            .write(toFile: path("bad.json"), atomically: true, encoding: .utf8)
        try failure(["--model", path("bad.json")], mentions: "needs input shape [3, height, width], got [1, 28, 28]")
        try "{\"inputShape\": [1, 28, 28], \"layers\": [{\"kind\": \"conv2d\", \"inChannels\": 1, \"outChannels\": 4, \"kernelSize\": 3, \"strides\": 2}]}"
            .write(toFile: path("typo.json"), atomically: true, encoding: .utf8)
        try failure(["--model", path("typo.json")], mentions: "unknown setting 'strides'")
    }

    func testFeatureDistillationFromAPlainStateDictTeacher() throws {
        let teacherFile = path("teacher.safetensors")
        assertSucceeded(try run(["train", "--model", "resnet8", "--output", teacherFile] + common), "train resnet8")
        // The teacher as PyTorch's save_file(model.state_dict()) writes it: tensors only, no description.
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: teacherFile))
        let plain = path("plain.safetensors")
        try SafeTensors.write(ModelCheckpoint.stateEntries(checkpoint.model.namedState.map { ($0.name, $0.variable.value) }),
                              to: URL(fileURLWithPath: plain), overwrite: false)
        let withoutModel = try run(["distill", "--teacher", plain, "--model", "lenet5", "--output", path("s0.safetensors")] + common)
        XCTAssertNotEqual(withoutModel.status, 0)

        // LeNet-5 layer 1 (6x28x28) against ResNet-8 layer 4 (16x28x28); layer 6 (flat) against the pooled 64.
        let result = try run(["distill", "--teacher", plain, "--teacher-model", "resnet8", "--model", "lenet5",
                              "--attention", "1:4:10", "--hint", "6:9:1", "--similarity", "6:9:30", "--logit-loss", "dkd", "--temperature", "4",
                              "--hard-weight", "1", "--output", path("student.safetensors"), "--json"] + common)
        assertSucceeded(result, "distill with features")
        let report = try lastLineJSON(result.stdout)
        let parts = try XCTUnwrap((report["epochs"] as? [[String: Any]])?.first?["loss_parts"] as? [String: Double])
        // Hints first, then attention, then similarity terms.
        XCTAssertEqual(Set(parts.keys), ["hard", "tckd", "nckd", "hint0", "attention1", "similarity2"])
        XCTAssertEqual((report["features"] as? [[String: Any]])?.count, 3)

        let mismatch = try run(["distill", "--teacher", teacherFile, "--model", "lenet5", "--attention", "2:4",
                                "--output", path("s1.safetensors")] + common)
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("same height and width"), mismatch.stderr)
        let badLayer = try run(["distill", "--teacher", teacherFile, "--model", "lenet5", "--hint", "40:4",
                                "--output", path("s2.safetensors")] + common)
        XCTAssertTrue(badLayer.stderr.contains("the student has layers 0...11"), badLayer.stderr)
        let badFlag = try run(["distill", "--teacher", teacherFile, "--hint", "1-4", "--output", path("s3.safetensors")] + common)
        XCTAssertTrue(badFlag.stderr.contains("STUDENT_LAYER:TEACHER_LAYER"), badFlag.stderr)
        let badWarmup = try run(["distill", "--teacher", teacherFile, "--logit-loss", "dkd", "--dkd-warmup", "-1",
                                 "--output", path("s4.safetensors")] + common)
        XCTAssertTrue(badWarmup.stderr.contains("--dkd-warmup must be a number of epochs >= 0"), badWarmup.stderr)
        let warmupWithoutDKD = try run(["distill", "--teacher", teacherFile, "--dkd-warmup", "2", "--output", path("s5.safetensors")] + common)
        XCTAssertTrue(warmupWithoutDKD.stderr.contains("--dkd-warmup needs --logit-loss dkd"), warmupWithoutDKD.stderr)
        for name in ["s1", "s2", "s3", "s4", "s5"] { XCTAssertFalse(FileManager.default.fileExists(atPath: path("\(name).safetensors"))) }
    }
}
