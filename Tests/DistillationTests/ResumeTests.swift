import Checkpoints
import XCTest
import Foundation
import TensorCore
import TensorIO
import NeuralNet
import Datasets
import Distillation

/// Small synthetic data for resume tests: `count` examples of `features` values in [0, 1), 4 classes.
enum ResumeData {
    static func dataset(count: Int, features: Int = 16, classes: Int = 4, seed: UInt64 = 7, imageSide: Int? = nil) throws -> LabeledDataset {
        var g = RandomGenerator(seed: seed)
        var values: [Float] = []
        var labels: [Int] = []
        for _ in 0..<count {
            let label = Int(g.nextUInt64() % UInt64(classes))
            labels.append(label)
            for j in 0..<features { values.append(g.uniform() * 0.5 + (j % classes == label ? 0.5 : 0)) }
        }
        let shape = imageSide.map { [$0, $0] } ?? [features]
        return try LabeledDataset(inputs: Tensor(shape: [count, features], scalars: values), labels: labels,
                                  classCount: classes, sampleShape: shape)
    }

    static func configuration(optimizer: OptimizerKind = .sgd) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model = .mlp(hidden: [12, 10])
        c.model.mlp?.inputDropout = 0.2
        c.model.mlp?.hiddenDropout = 0.3
        c.epochs = 3
        c.data.batchSize = 7
        c.optimizer.kind = optimizer
        c.optimizer.learningRate = optimizer == .sgd ? 0.1 : 0.01
        c.optimizer.momentum = 0.9
        c.optimizer.nesterov = optimizer == .sgd
        c.optimizer.weightDecay = 1e-4
        c.optimizer.gradientClip = 5
        c.optimizer.maxNorm = 3
        c.optimizer.schedule = .step(stepSize: 1, gamma: 0.5)
        c.seed = 42
        c.runtime.threads = 1
        return c
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("resume-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func bits(_ model: Sequential) -> [[UInt32]] { model.parameters.map { $0.value.scalars.map(\.bitPattern) } }
}

final class ResumeTests: XCTestCase {
    /// Runs A uninterrupted; run B stops after `stopPoints[0]` steps, saves its state, and a fresh trainer resumes it
    /// (and, for each further stop point, takes that many steps and stops again). Weights, report and selected epoch
    /// must be identical; each resumed trainer must start where the state file says the last one stopped (epoch and
    /// batch, read back from the file), and take only the steps that were left. A resume that silently started over
    /// with the same seed would end with the same weights, but not at the same position or step count.
    func checkResume(configuration: TrainingConfiguration, jitterImages: Bool = false, validation: Bool,
                     stopPoints: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let side = jitterImages ? 4 : nil
        let data = try ResumeData.dataset(count: 61, imageSide: side)
        var trainSet = data
        var validationSet: LabeledDataset? = nil
        if validation {
            var g = RandomGenerator(seed: 1)
            let split = try data.validationSplit(count: 11, generator: &g)
            trainSet = split.train
            validationSet = split.validation
        }
        let quiet = ProgressReporter(enabled: false)
        let a = try Trainer(configuration: configuration, train: trainSet, validation: validationSet,
                            objective: LabelObjective(), progress: quiet)
        let reportA = try a.run()
        XCTAssertFalse(a.stopped, file: file, line: line)
        let batchesPerEpoch = a.iterator.batchesPerEpoch
        let totalSteps = configuration.epochs * batchesPerEpoch
        XCTAssertEqual(a.stepsTaken, totalSteps, file: file, line: line)
        XCTAssertLessThan(stopPoints.reduce(0, +), totalSteps, "the stop points must leave steps to resume", file: file, line: line)

        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let stateURL = dir.appendingPathComponent("model.safetensors.state")
        var trainer = try Trainer(configuration: configuration, train: trainSet, validation: validationSet,
                                  objective: LabelObjective(), progress: quiet)
        var done = 0  // steps taken by the interrupted runs so far
        for stop in stopPoints {
            let current = trainer
            current.shouldStop = { [unowned current] in current.stepsTaken >= stop }
            try current.run()
            XCTAssertTrue(current.stopped, "expected a stop after \(stop) steps", file: file, line: line)
            XCTAssertEqual(current.stepsTaken, stop, file: file, line: line)
            done += stop
            try current.saveState(to: stateURL)
            // After `done` steps: `done - 1` whole batches before the last one, which ends its epoch's batch count.
            let expected = (epoch: (done - 1) / batchesPerEpoch, batch: (done - 1) % batchesPerEpoch + 1)
            let saved = try TrainingState.read(url: stateURL)
            XCTAssertEqual(saved.epoch, expected.epoch, "state epoch after \(done) steps", file: file, line: line)
            XCTAssertEqual(saved.batch, expected.batch, "state batch after \(done) steps", file: file, line: line)
            // Whatever else happens in this process, the resumed trainer only knows the file.
            trainer = try Trainer.resume(from: stateURL, configuration: configuration, train: trainSet,
                                         validation: validationSet, objective: LabelObjective(), progress: quiet)
            XCTAssertEqual(trainer.epoch, expected.epoch, "resumed epoch after \(done) steps", file: file, line: line)
            XCTAssertEqual(trainer.batchInEpoch, expected.batch, "resumed batch after \(done) steps", file: file, line: line)
            XCTAssertEqual(trainer.report.epochs.count, expected.epoch, file: file, line: line)
            XCTAssertEqual(trainer.stepsTaken, 0, file: file, line: line)
        }
        let reportB = try trainer.run()
        XCTAssertFalse(trainer.stopped, file: file, line: line)
        XCTAssertEqual(trainer.stepsTaken, totalSteps - done,
                       "the last resumed run should take only the \(totalSteps - done) steps that were left", file: file, line: line)
        let differing = zip(ResumeData.bits(a.model), ResumeData.bits(trainer.model)).filter { $0 != $1 }.count
        XCTAssertEqual(differing, 0, "\(differing) weight tensors differ after resume", file: file, line: line)
        XCTAssertEqual(reportA.selectedEpoch, reportB.selectedEpoch, file: file, line: line)
        XCTAssertEqual(reportA.epochs.map(\.trainLoss), reportB.epochs.map(\.trainLoss), file: file, line: line)
        XCTAssertEqual(reportA.epochs.map(\.lossParts), reportB.epochs.map(\.lossParts), file: file, line: line)
        XCTAssertEqual(reportA.epochs.map(\.validationErrors), reportB.epochs.map(\.validationErrors), file: file, line: line)
    }

    func testResumeMidEpochMatchesUninterruptedRunSGD() throws {
        // 61 examples / batch 7 = 9 batches per epoch; stop mid-epoch 1 (after 4 steps), then mid-epoch 2 (12), then
        // exactly at the end of epoch 2 (18, before its end-of-epoch bookkeeping).
        try checkResume(configuration: ResumeData.configuration(), validation: false, stopPoints: [4, 8, 6])
    }

    func testResumeWithValidationBestWeightsAndAdam() throws {
        var c = ResumeData.configuration(optimizer: .adam)
        c.data.validationCount = 11
        try checkResume(configuration: c, validation: true, stopPoints: [13, 1])
    }

    func testResumeWithJitter() throws {
        var c = ResumeData.configuration(optimizer: .adamw)
        c.data.jitter = 1
        c.model.mlp?.inputDropout = 0
        try checkResume(configuration: c, jitterImages: true, validation: false, stopPoints: [3, 5])
    }

    func testStateFileFormat() throws {
        let data = try ResumeData.dataset(count: 30)
        let c = ResumeData.configuration()
        let t = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(),
                            progress: ProgressReporter(enabled: false))
        var steps = 0
        t.shouldStop = { steps += 1; return steps == 2 }
        try t.run()
        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.state")
        try t.saveState(to: url)
        let file = try SafeTensors.read(url: url)
        XCTAssertEqual(file.metadata["format"], "distill-training-state/1")
        XCTAssertEqual(file.metadata["epoch"], "0")
        XCTAssertEqual(file.metadata["batch"], "2")
        XCTAssertEqual(file.metadata["objective"], "labels")
        XCTAssertEqual(file.metadata["train_count"], "30")
        XCTAssertEqual(file.metadata["class_count"], "4")
        XCTAssertEqual(file.metadata["train_fingerprint"], data.fingerprint)
        for key in ["training", "generators", "report", "loss_sums"] { XCTAssertNotNil(file.metadata[key], key) }
        XCTAssertTrue(file.names.contains("1.weight"))
        XCTAssertTrue(file.names.contains("optimizer.momentum_buffer.0"))
    }

    func testResumeRefusesDifferentConfigurationObjectiveOrData() throws {
        let data = try ResumeData.dataset(count: 30)
        let c = ResumeData.configuration()
        let quiet = ProgressReporter(enabled: false)
        let t = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(), progress: quiet)
        var steps = 0
        t.shouldStop = { steps += 1; return steps == 2 }
        try t.run()
        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.state")
        try t.saveState(to: url)

        func message(_ body: () throws -> Trainer) -> String {
            switch Result(catching: body) {
            case .success: return ""
            case .failure(let error): return "\(error)"
            }
        }
        var other = c
        other.optimizer.learningRate = 0.2
        let m1 = message { try Trainer.resume(from: url, configuration: other, train: data, validation: nil, objective: LabelObjective(), progress: quiet) }
        XCTAssertTrue(m1.contains(url.path) && m1.contains("configuration differs"), m1)
        XCTAssertTrue(m1.contains("optimizer.learningRate: saved 0.1, now 0.2") && !m1.contains("batchSize"), m1)
        var dense = c
        dense.runtime.inputKernels = c.runtime.inputKernels == .dense ? .sparse : .dense
        let mKernels = message { try Trainer.resume(from: url, configuration: dense, train: data, validation: nil, objective: LabelObjective(), progress: quiet) }
        XCTAssertTrue(mKernels.contains("configuration differs") && mKernels.contains("inputKernels: saved "), mKernels)

        struct OtherObjective: TrainingObjective {
            var name: String { "distillation" }
            var identity: String { "teacher:abc123" }
            func loss(studentLogits: Variable, batch: Batch, inputs: Tensor) throws -> (loss: Variable, parts: [String: Double]) {
                try LabelObjective().loss(studentLogits: studentLogits, batch: batch, inputs: inputs)
            }
        }
        let m2 = message { try Trainer.resume(from: url, configuration: c, train: data, validation: nil, objective: OtherObjective(), progress: quiet) }
        XCTAssertTrue(m2.contains(url.path) && m2.contains("objective differs") && m2.contains("teacher:abc123"), m2)

        let otherData = try ResumeData.dataset(count: 30, seed: 8)
        let m3 = message { try Trainer.resume(from: url, configuration: c, train: otherData, validation: nil, objective: LabelObjective(), progress: quiet) }
        XCTAssertTrue(m3.contains(url.path) && m3.contains("training data differ"), m3)

        let smaller = try ResumeData.dataset(count: 29)
        let m4 = message { try Trainer.resume(from: url, configuration: c, train: smaller, validation: nil, objective: LabelObjective(), progress: quiet) }
        XCTAssertTrue(m4.contains(url.path) && m4.contains("data differ"), m4)

        // A model file is not a state file.
        let modelURL = dir.appendingPathComponent("model.safetensors")
        try ModelCheckpoint(model: t.model).write(to: modelURL, overwrite: false)
        let m5 = message { try Trainer.resume(from: modelURL, configuration: c, train: data, validation: nil, objective: LabelObjective(), progress: quiet) }
        XCTAssertTrue(m5.contains(modelURL.path) && m5.contains("not a training state file"), m5)
    }

    func testDivergedWeightsNeverReplaceAGoodState() throws {
        let data = try ResumeData.dataset(count: 30)
        let c = ResumeData.configuration()
        let t = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(),
                            progress: ProgressReporter(enabled: false))
        var steps = 0
        t.shouldStop = { steps += 1; return steps == 2 }
        try t.run()
        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.state")
        try t.saveState(to: url)
        let good = try Data(contentsOf: url)
        t.model.parameters[0].value = Tensor(shape: t.model.parameters[0].value.shape, repeating: .nan)
        XCTAssertThrowsError(try t.saveState(to: url)) { error in
            XCTAssertTrue("\(error)".contains("epoch 1, batch 2"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: url), good)
    }

    func testDivergenceStopsWithEpochAndBatchAndKeepsLastGoodState() throws {
        let data = try ResumeData.dataset(count: 60)
        var c = ResumeData.configuration()
        c.optimizer.learningRate = 1e6
        c.optimizer.gradientClip = nil
        c.optimizer.maxNorm = nil
        c.optimizer.schedule = .constant
        let t = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective(),
                            progress: ProgressReporter(enabled: false))
        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.state")
        t.stateURL = url
        t.checkpointEvery = 1
        XCTAssertThrowsError(try t.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("epoch 1, batch"), text)
        }
        // Whatever was saved is a good (finite) state that loads.
        if FileManager.default.fileExists(atPath: url.path) {
            let state = try TrainingState.read(url: url)
            XCTAssertTrue(state.weights.allSatisfy { $0.tensor.isFinite })
        }
    }
}
