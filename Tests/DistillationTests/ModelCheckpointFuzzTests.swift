import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest
import Distillation

/// Seeded mutation fuzzing of `ModelCheckpoint.read(url:)`: every mutated model file must load (and the loaded
/// model must then run on an input of its width) or throw a `TrainingError` naming the file; never trap.
/// Longer: `DISTILL_FUZZ_ITERATIONS=100000 DISTILL_FUZZ_SEED=3 swift test --filter ModelCheckpointFuzzTests`.
final class ModelCheckpointFuzzTests: XCTestCase {
    static func seeds(in dir: URL) throws -> [[UInt8]] {
        var g = RandomGenerator(seed: 5)
        var files: [[UInt8]] = []
        let architectures: [[LayerSpecification]] = [
            [.dropout(probability: 0.2), .linear(inputCount: 6, outputCount: 5), .relu, .dropout(probability: 0.3),
             .linear(inputCount: 5, outputCount: 3)],
            [.flatten, .linear(inputCount: 4, outputCount: 2)],
            [.sequential([.linear(inputCount: 3, outputCount: 4), .relu]), .linear(inputCount: 4, outputCount: 2)],
        ]
        for (i, specs) in architectures.enumerated() {
            let model = Sequential(specifications: specs, generator: &g)
            let url = dir.appendingPathComponent("seed\(i).safetensors")
            try ModelCheckpoint(model: model, metadata: ["role": "student", "training": #"{"epochs":3,"hidden":[5]}"#])
                .write(to: url, overwrite: true)
            files.append(Array(try Data(contentsOf: url)))
        }
        // A plain PyTorch state dict of Linear(6, 5), ReLU, Dropout, Linear(5, 3): no architecture metadata.
        files.append(Array(try SafeTensors.serialize(
            [.tensor("0.weight", Tensor.normal([5, 6], generator: &g)), .tensor("0.bias", Tensor.normal([5], generator: &g)),
             .tensor("3.weight", Tensor.normal([3, 5], generator: &g)), .tensor("3.bias", Tensor.normal([3], generator: &g))],
            metadata: ["format": "pt"])))
        return files
    }

    static let tokens = ["inputCount", "outputCount", "probability", "linear", "relu", "dropout", "flatten", "sequential",
                         "architecture", "input_count", "class_count", "0.weight", "0.bias", "3.weight", "1.weight",
                         "F32", "F16", "I64", "shape", "data_offsets", "0.2", "0.3", "[5,6]", "[3]", "{}"]

    /// Loads `bytes` from `url`; true when it loaded. Fails the test on any error other than a `TrainingError`
    /// naming the file.
    static func check(_ bytes: [UInt8], at url: URL) -> Bool {
        do {
            try Data(bytes).write(to: url)
            let checkpoint = try ModelCheckpoint.read(url: url)
            XCTAssertGreaterThan(checkpoint.inputCount, 0)
            XCTAssertGreaterThan(checkpoint.classCount, 0)
            var g = RandomGenerator(seed: 1)
            let output = checkpoint.model.infer(Tensor.normal([2, checkpoint.inputCount], generator: &g))
            XCTAssertEqual(output.shape, [2, checkpoint.classCount])
            _ = checkpoint.training
            return true
        } catch let error as TrainingError {
            XCTAssertTrue(error.description.contains(url.lastPathComponent), error.description)
            return false
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return false
        }
    }

    func testMutationFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("model-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let seeds = try Self.seeds(in: dir)
        let url = dir.appendingPathComponent("fuzz.safetensors")
        let iterations = Fuzz.iterations(default: 3000)
        let tally = Fuzz.run("ModelCheckpoint.read", seeds: seeds, iterations: iterations, seed: Fuzz.seed(default: 20_260_101),
                             tokens: Self.tokens) { Self.check($0, at: url) }
        XCTAssertGreaterThan(tally.rejected, iterations / 3)
        XCTAssertGreaterThan(tally.loaded, seeds.count)
    }
}
