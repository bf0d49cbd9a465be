import Checkpoints
import Datasets
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest
import Distillation

/// Deterministic reproducers of the traps the reader fuzz tests found (each must now load correctly or throw).
final class FuzzRegressionTests: XCTestCase {
    /// Rewrites a safetensors file with `edit` applied to its tensors and metadata.
    private func rewrite(_ url: URL, to out: URL,
                         _ edit: (inout [(name: String, tensor: Tensor)], inout [String: String]) -> Void) throws {
        let file = try SafeTensors.read(url: url)
        var tensors = try file.names.map { (name: $0, tensor: try file.tensor(named: $0)) }
        var metadata = file.metadata
        edit(&tensors, &metadata)
        try SafeTensors.serialize(tensors.map { .tensor($0.name, $0.tensor) }, metadata: metadata).write(to: out)
    }

    /// Found by ModelCheckpointFuzzTests: a model whose first Linear sits in a nested Sequential reported the
    /// input width of the first top-level Linear, so `infer` on an input of `inputCount` columns trapped.
    func testNestedSequentialCheckpointReportsItsRealWidth() throws {
        let dir = try temporaryDirectory(self)
        var g = RandomGenerator(seed: 2)
        let model = Sequential(specifications: [.sequential([.linear(inputCount: 3, outputCount: 4), .relu]),
                                                .linear(inputCount: 4, outputCount: 2)], generator: &g)
        let url = dir.appendingPathComponent("nested.safetensors")
        try ModelCheckpoint(model: model).write(to: url, overwrite: false)
        let loaded = try ModelCheckpoint.read(url: url)
        XCTAssertEqual(loaded.inputCount, 3)
        XCTAssertEqual(loaded.classCount, 2)
        XCTAssertEqual(loaded.model.infer(Tensor(shape: [2, 3], repeating: 1)).shape, [2, 2])
        // Nested layers that do not chain are refused at read time.
        try rewrite(url, to: url.appendingPathExtension("bad")) { tensors, metadata in
            metadata["model"] = nil
            metadata["format"] = ModelCheckpoint.formatVersion1
            metadata["architecture"] = #"[{"sequential":{"_0":[{"linear":{"inputCount":3,"outputCount":4}}]}},{"linear":{"inputCount":5,"outputCount":2}}]"#
            tensors = [(name: "0.0.weight", tensor: Tensor(shape: [4, 3], repeating: 0)), (name: "0.0.bias", tensor: Tensor(shape: [4], repeating: 0)),
                       (name: "1.weight", tensor: Tensor(shape: [2, 5], repeating: 0)), (name: "1.bias", tensor: Tensor(shape: [2], repeating: 0))]
        }
        XCTAssertThrowsError(try ModelCheckpoint.read(url: url.appendingPathExtension("bad"))) { error in
            XCTAssertTrue("\(error)".contains("layer 1: layer 'linear' (5 -> 2) needs input shape [5], got [4]"), "\(error)")
        }
    }

    private func state(optimizer: OptimizerKind, in dir: URL) throws -> (URL, TrainingConfiguration, LabeledDataset) {
        let data = try ResumeData.dataset(count: 20, features: 5, classes: 3)
        var c = ResumeData.configuration(optimizer: optimizer)
        c.model = .mlp(hidden: [4])
        c.epochs = 2
        c.data.batchSize = 5
        let t = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(), progress: ProgressReporter(enabled: false))
        var steps = 0
        t.shouldStop = { steps += 1; return steps >= 2 }
        try t.run()
        let url = dir.appendingPathComponent("\(optimizer).state")
        try t.saveState(to: url)
        return (url, c, data)
    }

    private func resumeError(_ url: URL, _ c: TrainingConfiguration, _ data: LabeledDataset) -> String {
        do {
            _ = try Trainer.resume(from: url, configuration: c, train: data, validation: nil, objective: LabelObjective(),
                                   progress: ProgressReporter(enabled: false))
            return "no error"
        } catch let error as TrainingError { return error.description } catch { return "wrong error type: \(error)" }
    }

    /// Found by TrainingStateFuzzTests: a corrupted Adam step count (1e30, NaN) trapped in `Int(_:)` on resume.
    func testCorruptAdamStepCountIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let (url, c, data) = try state(optimizer: .adam, in: dir)
        for bad: Float in [1e30, .nan, -3, 2.5] {
            let out = dir.appendingPathComponent("bad-step.state")
            try rewrite(url, to: out) { tensors, _ in
                for i in tensors.indices where tensors[i].name == "optimizer.step.0" { tensors[i].tensor = Tensor(scalar: bad) }
            }
            let message = resumeError(out, c, data)
            XCTAssertTrue(message.contains("bad-step.state") && message.contains("optimizer.step.0"), message)
        }
    }

    /// Optimizer buffers of the wrong shape were loaded unchecked and then read and written out of bounds by the
    /// next step; and a state naming a parameter the model does not have was silently accepted.
    func testOptimizerBufferOfWrongShapeIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let (url, c, data) = try state(optimizer: .sgd, in: dir)
        let out = dir.appendingPathComponent("bad-buffer.state")
        try rewrite(url, to: out) { tensors, _ in
            for i in tensors.indices where tensors[i].name == "optimizer.momentum_buffer.0" { tensors[i].tensor = Tensor(shape: [1], repeating: 0) }
        }
        var message = resumeError(out, c, data)
        XCTAssertTrue(message.contains("bad-buffer.state") && message.contains("has shape [1]"), message)
        try rewrite(url, to: out) { tensors, _ in tensors.append((name: "optimizer.momentum_buffer.9", tensor: Tensor(shape: [1], repeating: 0))) }
        message = resumeError(out, c, data)
        XCTAssertTrue(message.contains("does not name a parameter"), message)
        try rewrite(url, to: out) { tensors, _ in
            for i in tensors.indices where tensors[i].name == "optimizer.momentum_buffer.1" { tensors[i].tensor[flat: 0] = .infinity }
        }
        message = resumeError(out, c, data)
        XCTAssertTrue(message.contains("NaN or infinity"), message)
        XCTAssertEqual(resumeError(url, c, data), "no error")
    }

    /// A corrupted running-sum count (Int.max) overflowed in the resumed run's first step; a NaN loss sum made the
    /// epoch's loss NaN and the next state write throw an EncodingError.
    func testCorruptLossSumsAreRefused() throws {
        let dir = try temporaryDirectory(self)
        let (url, c, data) = try state(optimizer: .sgd, in: dir)
        let out = dir.appendingPathComponent("bad-sums.state")
        let sums = try XCTUnwrap(try SafeTensors.read(url: url).metadata["loss_sums"])
        var nan = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(sums.utf8)) as? [String: Any])
        nan["loss"] = "7ff8000000000000"
        let nanSums = String(decoding: try JSONSerialization.data(withJSONObject: nan), as: UTF8.self)
        for bad in [sums.replacingOccurrences(of: #""batches":2"#, with: #""batches":9223372036854775807"#), nanSums] {
            XCTAssertNotEqual(bad, sums)
            try rewrite(url, to: out) { _, metadata in metadata["loss_sums"] = bad }
            let message = resumeError(out, c, data)
            XCTAssertTrue(message.contains("bad-sums.state") && message.contains("loss_sums"), message)
        }
    }

    /// A top-k store claiming a huge class count allocated a class-sized table at read time (and per lookup).
    func testTopKStoreWithHugeClassCountIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let dataset = try oneHotDataset(count: 6, classes: 4, seed: 3)
        let url = dir.appendingPathComponent("topk.logits")
        try TeacherLogitStore.write(teacher: FixedTeacher(randomLogits(6, 4, seed: 4), identity: "t"), dataset: dataset,
                                    to: url, topK: 2, overwrite: false)
        let file = try SafeTensors.read(url: url)
        var metadata = file.metadata
        metadata["class_count"] = "999999999999999"
        let out = dir.appendingPathComponent("huge.logits")
        try SafeTensors.serialize([.tensor("topk_values", try file.tensor(named: "topk_values")),
                                   .integers("topk_indices", try file.integers(named: "topk_indices"), shape: [6, 2], dtype: .i64)],
                                  metadata: metadata).write(to: out)
        XCTAssertThrowsError(try TeacherLogitStore.read(url: out)) { error in
            XCTAssertTrue("\(error)".contains("huge.logits") && "\(error)".contains("class_count"), "\(error)")
        }
    }
}
