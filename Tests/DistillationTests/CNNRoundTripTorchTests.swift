import Checkpoints
import XCTest
import Foundation
import TensorCore
import TensorIO
import NeuralNet

/// Convolutional models (resnet8: convolutions, batch norms with running statistics, residual blocks) move between
/// PyTorch and SwiftDistill as model files, both ways (Scripts/make_torch_cnn_fixture.py, Scripts/check_cnn_in_torch.py,
/// Scripts/torch_models.py), and survive a write / read unchanged.
final class CNNRoundTripTorchTests: XCTestCase {
    static func resnet8() throws -> ModelDescription {
        try ModelPresets.description(named: "resnet8", inputShape: [1, 28, 28], classCount: 10)
    }

    static func fixture(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw XCTSkip("fixture \(name).safetensors is missing")
        }
        return url
    }

    static func maxDifference(_ ours: Tensor, _ file: SafeTensorsFile, _ name: String) throws -> Double {
        let (shape, expected) = try RoundTripTorchTests.doubles(file, name)
        XCTAssertEqual(ours.shape, shape)
        return zip(ours.scalars, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
    }

    /// A resnet8 trained for five steps in PyTorch, written by Scripts/torch_models.py, gives PyTorch's logits here.
    func testTorchTrainedResNet8Loads() throws {
        let checkpoint = try ModelCheckpoint.read(url: try Self.fixture("torch_resnet8"))
        XCTAssertEqual(checkpoint.description, try Self.resnet8())
        XCTAssertEqual(checkpoint.classCount, 10)
        let tracked = checkpoint.model.namedBuffers.filter { $0.name.hasSuffix("num_batches_tracked") }
        XCTAssertEqual(tracked.count, 9)  // stem + 2 per block x 3 + 2 projection shortcuts
        XCTAssert(tracked.allSatisfy { $0.buffer.value.scalar == 5 }, "num_batches_tracked should be 5 (five PyTorch steps)")
        let batch = try SafeTensors.read(url: try Self.fixture("torch_resnet8_batch"))
        let x = try batch.tensor(named: "x")
        let diff = try Self.maxDifference(checkpoint.model.infer(x), batch, "logits")
        XCTAssertLessThan(diff, 1e-5, "max |ours - torch| = \(diff)")
        var context = ForwardContext(training: false)
        let forwardDiff = try Self.maxDifference(checkpoint.model.forward(Variable(x), context: &context).value, batch, "logits")
        XCTAssertLessThan(forwardDiff, 1e-5)
        print("torch resnet8 -> swift: max |ours - torch| logits = \(diff)")
    }

    /// Our resnet8 (Swift-trained, written by ModelCheckpoint), loaded by PyTorch with strict names in
    /// Scripts/check_cnn_in_torch.py, gave the logits stored in torch_swift_resnet8_logits.safetensors; ours on the same
    /// batch must match.
    func testSwiftResNet8MatchesTorchLogits() throws {
        let checkpoint = try ModelCheckpoint.read(url: try Self.fixture("swift_resnet8"))
        XCTAssertEqual(checkpoint.description, try Self.resnet8())
        let file = try SafeTensors.read(url: try Self.fixture("torch_swift_resnet8_logits"))
        XCTAssertEqual(file.metadata["strict"], "True")
        let diff = try Self.maxDifference(checkpoint.model.infer(try file.tensor(named: "x")), file, "logits")
        XCTAssertLessThan(diff, 1e-5, "max |ours - torch| = \(diff)")
        print("swift resnet8 -> torch: max |ours - torch| logits = \(diff)")
    }

    /// A resnet8 after a few training steps (so every buffer moved): write, read, every parameter and buffer
    /// bit-identical, counters stored as I64, and a second write byte-identical to the first.
    func testResNet8ModelFileRoundTrip() throws {
        let model = try Self.trainedResNet8(steps: 2)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cnn-roundtrip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("a.safetensors"), second = directory.appendingPathComponent("b.safetensors")
        try ModelCheckpoint(model: model, metadata: ["role": "test"]).write(to: first, overwrite: false)
        let read = try ModelCheckpoint.read(url: first)
        XCTAssertEqual(read.description, try Self.resnet8())
        XCTAssertEqual(read.metadata["role"], "test")
        XCTAssertEqual(read.model.namedState.map(\.name), model.namedState.map(\.name))
        for ((name, original), (_, loaded)) in zip(model.namedState, read.model.namedState) {
            XCTAssertEqual(original.value.shape, loaded.value.shape, name)
            XCTAssertEqual(original.value.scalars.map(\.bitPattern), loaded.value.scalars.map(\.bitPattern), "\(name) not bit-identical")
        }
        let raw = try SafeTensors.read(url: first)
        var counters = 0
        for name in raw.names {
            let info = try raw.info(named: name)
            if name.hasSuffix("num_batches_tracked") {
                counters += 1
                XCTAssertEqual(info.dtype, .i64, name)
                XCTAssertEqual(info.shape, [], name)
                XCTAssertEqual(try raw.integers(named: name), [2], name)
            } else {
                XCTAssertEqual(info.dtype, .f32, name)
            }
        }
        XCTAssertEqual(counters, 9)
        try ModelCheckpoint(model: read.model, metadata: ["role": "test"]).write(to: second, overwrite: false)
        XCTAssertEqual(try Data(contentsOf: first), try Data(contentsOf: second), "a read model writes a byte-identical file")
        var inputs = RandomGenerator(seed: 99)
        let x = Tensor.uniform([3, 1, 28, 28], low: 0, high: 1, generator: &inputs)
        XCTAssertEqual(model.infer(x), read.model.infer(x))
    }

    /// The preset resnet8 (seed 5) after `steps` plain SGD steps (lr 0.05, batch 8, cross-entropy) on seeded
    /// synthetic images in training mode.
    static func trainedResNet8(steps: Int) throws -> Sequential {
        var generator = RandomGenerator(seed: 5)
        let model = try resnet8().build(generator: &generator)
        var data = RandomGenerator(seed: 6)
        var context = ForwardContext(training: true)
        for _ in 0..<steps {
            let x = Tensor.uniform([8, 1, 28, 28], low: 0, high: 1, generator: &data)
            let labels = (0..<8).map { _ in data.next(below: 10) }
            model.zeroGradients()
            crossEntropy(logits: model.forward(Variable(x), context: &context), labels: labels).backward()
            for p in model.parameters {
                guard let g = p.grad else { continue }
                p.value = Tensor(shape: p.value.shape, scalars: zip(p.value.scalars, g.scalars).map { $0 - 0.05 * $1 })
            }
        }
        return model
    }

    /// Regenerates the Swift side of the round trip when DISTILL_WRITE_ROUNDTRIP_FIXTURES=1: a resnet8 trained for 3
    /// steps here, written by `ModelCheckpoint` (swift_resnet8.safetensors), and our logits on the PyTorch fixture's
    /// batch (swift_resnet8_logits.safetensors). Then run `python3 Scripts/check_cnn_in_torch.py`.
    func testWriteSwiftResNetFixture() throws {
        guard ProcessInfo.processInfo.environment["DISTILL_WRITE_ROUNDTRIP_FIXTURES"] == "1" else {
            throw XCTSkip("set DISTILL_WRITE_ROUNDTRIP_FIXTURES=1 to regenerate swift_resnet8.safetensors")
        }
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let model = try Self.trainedResNet8(steps: 3)
        try ModelCheckpoint(model: model, metadata: ["role": "student", "writer": "CNNRoundTripTorchTests"])
            .write(to: fixtures.appendingPathComponent("swift_resnet8.safetensors"), overwrite: true)
        let batch = try SafeTensors.read(url: fixtures.appendingPathComponent("torch_resnet8_batch.safetensors"))
        let x = try batch.tensor(named: "x")
        try SafeTensors.write(tensors: [("x", x, .f32), ("logits", model.infer(x), .f32)], metadata: ["writer": "CNNRoundTripTorchTests"],
                              to: fixtures.appendingPathComponent("swift_resnet8_logits.safetensors"), overwrite: true)
    }
}
