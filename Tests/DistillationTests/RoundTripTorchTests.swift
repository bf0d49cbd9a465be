import Checkpoints
import XCTest
import Foundation
import TensorCore
import TensorIO
import NeuralNet
import Datasets
import Distillation

/// Models move between PyTorch and SwiftDistill as plain safetensors state dicts, both ways
/// (fixtures from Scripts/make_torch_teacher_fixture.py and Scripts/check_student_in_torch.py).
final class RoundTripTorchTests: XCTestCase {
    static func fixture(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw XCTSkip("fixture \(name).safetensors is missing")
        }
        return url
    }

    static func maxAbsDifference(_ ours: Tensor, _ theirs: Tensor) -> Double {
        XCTAssertEqual(ours.shape, theirs.shape)
        return zip(ours.scalars, theirs.scalars).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
    }

    /// F64 tensors read as Float lose precision; read the raw doubles instead.
    static func doubles(_ file: SafeTensorsFile, _ name: String) throws -> (shape: [Int], values: [Double]) {
        let info = try file.info(named: name)
        XCTAssertEqual(info.dtype, .f64)
        let raw = try file.rawBytes(named: name)
        let values = raw.withUnsafeBytes { p in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        return (info.shape, values)
    }

    func checkTeacher(file name: String, logits key: String, expected layers: [LayerSpecification]) throws {
        let url = try Self.fixture(name)
        let raw = try SafeTensors.read(url: url)
        XCTAssertNil(raw.metadata["architecture"], "the PyTorch fixture must be a plain state dict")
        let checkpoint = try ModelCheckpoint.read(url: url)
        XCTAssertEqual(checkpoint.description.layers, layers.map(\.description))
        XCTAssertEqual(checkpoint.inputCount, 784)
        XCTAssertEqual(checkpoint.classCount, 10)
        let batch = try SafeTensors.read(url: Self.fixture("torch_teacher_batch"))
        let x = try batch.tensor(named: "x")
        let (shape, expected) = try Self.doubles(batch, key)
        let ours = checkpoint.model.infer(x)
        XCTAssertEqual(ours.shape, shape)
        let diff = zip(ours.scalars, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThan(diff, 1e-5, "\(name): max |ours - torch| = \(diff)")
    }

    func testPlainTorchTeacherLoads() throws {
        try checkTeacher(file: "torch_teacher", logits: "logits",
                         expected: [.linear(inputCount: 784, outputCount: 64), .relu, .linear(inputCount: 64, outputCount: 10)])
    }

    func testTorchTeacherWithDropoutIndexGapsLoads() throws {
        // nn.Sequential(Dropout(0.2), Linear(784,64), ReLU(), Dropout(0.5), Linear(64,10)): tensors 1.* and 4.*;
        // slot 0 (before any Linear) and slot 3 (after the ReLU) are identity in eval mode.
        try checkTeacher(file: "torch_teacher_dropout", logits: "logits_dropout",
                         expected: [.dropout(probability: 0), .linear(inputCount: 784, outputCount: 64), .relu,
                                    .dropout(probability: 0), .linear(inputCount: 64, outputCount: 10)])
    }

    /// Our student, loaded by PyTorch (`load_state_dict(strict=True)` in Scripts/check_student_in_torch.py), gives the
    /// logits stored in torch_student_logits.safetensors; ours on the same batch must match.
    func testSwiftStudentMatchesTorchLogits() throws {
        let student = try ModelCheckpoint.read(url: Self.fixture("swift_student"))
        let file = try SafeTensors.read(url: Self.fixture("torch_student_logits"))
        let x = try file.tensor(named: "x")
        let (shape, expected) = try Self.doubles(file, "logits")
        let ours = student.model.infer(x)
        XCTAssertEqual(ours.shape, shape)
        let diff = zip(ours.scalars, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThan(diff, 1e-5, "max |ours - torch| = \(diff)")
        XCTAssertEqual(file.metadata["strict"], "True")
    }

    /// Regenerates the Swift side of the student round trip when DISTILL_WRITE_ROUNDTRIP_FIXTURES=1:
    /// a small dropout student (784-32-10) trained for 2 epochs on synthetic data, written by `ModelCheckpoint`, and
    /// our logits on the teacher fixture's batch. Then run `python3 Scripts/check_student_in_torch.py`.
    func testWriteStudentFixture() throws {
        guard ProcessInfo.processInfo.environment["DISTILL_WRITE_ROUNDTRIP_FIXTURES"] == "1" else {
            throw XCTSkip("set DISTILL_WRITE_ROUNDTRIP_FIXTURES=1 to regenerate swift_student.safetensors")
        }
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let data = try ResumeData.dataset(count: 256, features: 784, classes: 10, seed: 11)
        var c = TrainingConfiguration()
        c.model = .mlp(hidden: [32])
        c.model.mlp?.inputDropout = 0.2
        c.model.mlp?.hiddenDropout = 0.5
        c.epochs = 2
        c.data.batchSize = 16
        c.optimizer.learningRate = 0.05
        c.seed = 5
        c.runtime.threads = 1
        let trainer = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(),
                                  progress: ProgressReporter(enabled: false))
        try trainer.run()
        let training = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        try ModelCheckpoint(model: trainer.model, metadata: ["role": "student", "training": training]).write(to: fixtures.appendingPathComponent("swift_student.safetensors"), overwrite: true)
        let batch = try SafeTensors.read(url: fixtures.appendingPathComponent("torch_teacher_batch.safetensors"))
        let x = try batch.tensor(named: "x")
        let logits = trainer.model.infer(x)
        try SafeTensors.write(tensors: [("x", x, .f32), ("logits", logits, .f32)], metadata: ["writer": "RoundTripTorchTests"],
                              to: fixtures.appendingPathComponent("swift_student_logits.safetensors"), overwrite: true)
    }
}
