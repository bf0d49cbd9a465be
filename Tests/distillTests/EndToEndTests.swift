import Checkpoints
import Foundation
import XCTest
import TensorCore
import TensorIO
import NeuralNet
import Datasets
import Distillation

final class EndToEndTests: XCTestCase {
    /// Loaded once: the vendored MNIST, cut to 2,000 training and 1,000 test images.
    static let slices: Result<(train: LabeledDataset, test: LabeledDataset), Error> = Result {
        let full = try MNIST.load(directory: vendoredMNIST)
        return (full.train.subset(indices: Array(0..<2000)), full.test.subset(indices: Array(0..<1000)))
    }

    func configuration(seed: UInt64) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model = .mlp(hidden: [64])
        c.epochs = 3
        c.data.batchSize = 16
        c.optimizer.learningRate = 0.05
        c.optimizer.momentum = 0.9
        c.seed = seed
        c.runtime.threads = 2
        // Annealing makes the final weights less dependent on the last few noisy SGD steps (with a constant rate the
        // test error of this tiny run swings between ~12% and ~16% across seeds; with it, ~11-14%).
        c.optimizer.schedule = .cosine(totalEpochs: 3, minimum: 0.005)
        return c
    }

    func trainedWeights(seed: UInt64) throws -> (weights: [Tensor], errors: Int) {
        let data = try Self.slices.get()
        let result = try TrainingJob.train(configuration: configuration(seed: seed), data: data, objective: LabelObjective(),
                                           label: "e2e", progress: ProgressReporter(enabled: false))
        XCTAssertEqual(result.testCount, 1000)
        XCTAssertEqual(result.report.epochs.count, 3)
        return (result.model.parameters.map(\.value), result.testErrors)
    }

    /// 784-64-10 MLP, 2,000 MNIST images, 3 epochs: under 15% test error; the same seed reproduces the weights bit
    /// for bit; another seed gives other weights.
    func testSeededTrainingOnMNISTSliceLearnsAndIsReproducible() throws {
        guard FileManager.default.fileExists(atPath: vendoredMNIST.appendingPathComponent(MNIST.trainImagesFile).path) else {
            throw XCTSkip("no vendored MNIST at \(vendoredMNIST.path)")
        }
        let start = Date()
        let first = try trainedWeights(seed: 42)
        print("e2e: 784-64-10, 2000 train / 1000 test, 3 epochs: \(first.errors) test errors (\(Double(first.errors) / 10)%), \(String(format: "%.1f", Date().timeIntervalSince(start))) s incl. loading")
        XCTAssertLessThan(first.errors, 150, "test error \(Double(first.errors) / 10)% should be < 15%")
        let again = try trainedWeights(seed: 42)
        XCTAssertEqual(again.errors, first.errors)
        XCTAssertEqual(again.weights.count, first.weights.count)
        for (a, b) in zip(first.weights, again.weights) {
            XCTAssertEqual(a.shape, b.shape)
            XCTAssert(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern), "same seed should give bit-identical weights")
        }
        let other = try trainedWeights(seed: 43)
        XCTAssertNotEqual(other.weights[0], first.weights[0], "another seed should give other weights")
        XCTAssertLessThan(other.errors, 150, "seed 43: test error \(Double(other.errors) / 10)% should be < 15%")
    }

    func testModelCheckpointRoundTrip() throws {
        let dir = try makeTemporaryDirectory(self)
        var rng = RandomGenerator(seed: 3)
        let model = Sequential(specifications: [.linear(inputCount: 784, outputCount: 20), .relu, .dropout(probability: 0.5),
                                                .linear(inputCount: 20, outputCount: 10)], generator: &rng)
        let url = dir.appendingPathComponent("model.safetensors")
        try ModelCheckpoint(model: model, metadata: ["role": "test"]).write(to: url, overwrite: false)
        let loaded = try ModelCheckpoint.read(url: url)
        XCTAssertEqual(loaded.metadata["format"], ModelCheckpoint.format)
        XCTAssertNotNil(loaded.metadata["model"])
        XCTAssertNil(loaded.metadata["architecture"], "format 2 files carry the model description only")
        XCTAssertEqual(loaded.metadata["role"], "test")
        XCTAssertEqual(loaded.metadata["input_count"], "784")
        XCTAssertEqual(loaded.metadata["class_count"], "10")
        XCTAssertEqual(loaded.description, model.modelDescription)
        XCTAssertEqual(loaded.description.inputShape, [784])
        XCTAssertEqual(loaded.inputCount, 784)
        XCTAssertEqual(loaded.classCount, 10)
        let x = Tensor.uniform([16, 784], low: 0, high: 1, generator: &rng)
        XCTAssertEqual(loaded.model.infer(x), model.infer(x))
        // No overwrite without permission; the file is unchanged.
        let before = try Data(contentsOf: url)
        XCTAssertThrowsError(try ModelCheckpoint(model: model).write(to: url, overwrite: false))
        XCTAssertEqual(try Data(contentsOf: url), before)
    }

    /// A plain PyTorch `save_file(model.state_dict())` (no architecture metadata) loads with the layers inferred.
    func testPlainStateDictLoadsWithInferredArchitecture() throws {
        let dir = try makeTemporaryDirectory(self)
        var rng = RandomGenerator(seed: 9)
        let w0 = Tensor.normal([16, 784], standardDeviation: 0.05, generator: &rng), b0 = Tensor.normal([16], generator: &rng)
        let w2 = Tensor.normal([10, 16], standardDeviation: 0.2, generator: &rng), b2 = Tensor.normal([10], generator: &rng)
        let url = dir.appendingPathComponent("state_dict.safetensors")
        try SafeTensors.write(tensors: [("0.weight", w0, .f32), ("0.bias", b0, .f32), ("2.weight", w2, .f32), ("2.bias", b2, .f32)],
                              to: url, overwrite: false)
        let loaded = try ModelCheckpoint.read(url: url)
        XCTAssertNil(loaded.metadata["architecture"])
        XCTAssertEqual(loaded.description,
                       ModelDescription(inputShape: [784], specifications: [.linear(inputCount: 784, outputCount: 16), .relu,
                                                                            .linear(inputCount: 16, outputCount: 10)]))
        let reference = Sequential([Linear(weight: w0, bias: b0), ReLU(), Linear(weight: w2, bias: b2)])
        let x = Tensor.uniform([8, 784], low: 0, high: 1, generator: &rng)
        XCTAssertEqual(loaded.model.infer(x), reference.infer(x))
        XCTAssertEqual(loaded.model.namedParameters.map(\.name), ["0.weight", "0.bias", "2.weight", "2.bias"])
    }

    func testCorruptCheckpointsThrowNamingTheFile() throws {
        let dir = try makeTemporaryDirectory(self)
        var rng = RandomGenerator(seed: 1)
        let random = dir.appendingPathComponent("random.safetensors")
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.nextUInt64()) }).write(to: random)
        let model = Sequential(specifications: [.linear(inputCount: 784, outputCount: 8), .relu,
                                                .linear(inputCount: 8, outputCount: 10)], generator: &rng)
        let good = dir.appendingPathComponent("good.safetensors")
        try ModelCheckpoint(model: model).write(to: good, overwrite: false)
        let full = try Data(contentsOf: good)
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try full.prefix(full.count - 100).write(to: truncated)
        let headerOnly = dir.appendingPathComponent("header.safetensors")
        try full.prefix(5).write(to: headerOnly)
        for url in [random, truncated, headerOnly, dir.appendingPathComponent("missing.safetensors")] {
            XCTAssertThrowsError(try ModelCheckpoint.read(url: url), url.lastPathComponent) { error in
                XCTAssertTrue("\(error)".contains(url.lastPathComponent), "error should name the file: \(error)")
            }
        }
    }
}
