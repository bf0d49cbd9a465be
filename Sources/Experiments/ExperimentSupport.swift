import Optimizers
import Distillation
import Checkpoints
import Checkpoints
import Foundation
import Distributed
import TensorCore
import NeuralNet
import Datasets
import Runs

/// A trained model inside an experiment, with its test figures.
public struct TrainedModel {
    public var model: Sequential
    /// Test errors of the selected weights (best validation epoch, or last epoch without validation).
    public var testErrors: Int
    /// Test errors of the last epoch's weights.
    public var lastEpochTestErrors: Int
    public var seconds: Double
    public var cached: Bool
    /// Dead units and weight norms on (up to 10,000 of) the training examples.
    public var health: TrainingHealth
}

/// Shared machinery of the `reproduce` experiments: a work directory caching every finished model (so an interrupted
/// experiment resumes at the first unfinished model), seeds, statistics and table printing.
public struct ExperimentContext {
    public var data: (train: LabeledDataset, test: LabeledDataset)
    public var workDirectory: URL
    public var threads: Int
    public var progress: ProgressReporter
    public var log: (String) -> Void
    /// The processes that train together (under mpirun): every model is trained by all of them, rank 0 alone
    /// writes files and logs. Default one process.
    public var communicator: Communicator = SingleProcess()
    /// Whether this process writes files and logs (rank 0).
    public var writes: Bool { communicator.isRoot }
    /// The run directory of every model trained or reused, in order (for the experiment's report).
    public let runs = RunList()

    /// Run directories, shared by the copies of a context.
    public final class RunList: @unchecked Sendable {
        public private(set) var directories: [URL] = []
        func add(_ url: URL) { if !directories.contains(url) { directories.append(url) } }
    }

    public init(data: (train: LabeledDataset, test: LabeledDataset), workDirectory: URL, threads: Int,
                progress: ProgressReporter = ProgressReporter(), log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws {
        self.data = data
        self.workDirectory = workDirectory
        self.threads = threads
        self.progress = progress
        self.log = log
        do {
            try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(workDirectory.path): cannot create the work directory (\(error.localizedDescription))")
        }
    }

    /// Trains a model, or loads it from the work directory when the same run (same configuration, objective and
    /// data) finished before. `key` names the run in file names and progress lines.
    public func trainOrLoad(key: String, configuration: TrainingConfiguration, train: LabeledDataset,
                            test: LabeledDataset? = nil, objectiveIdentity: String = "labels", initialModel: Sequential? = nil,
                            makeObjective: ([Int]?) throws -> TrainingObjective) throws -> TrainedModel {
        var configuration = configuration
        var runtime = RuntimeConfiguration.active
        runtime.threads = threads
        runtime.overlapTeacher = configuration.runtime.overlapTeacher
        configuration.runtime = runtime
        let test = test ?? data.test
        // Sorted keys: JSONEncoder's key order otherwise varies from process to process (hash seeding), which
        // changed the cache file name on every run and retrained every model.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let initial = initialModel.map { "|initial=\(modelIdentity($0))" } ?? ""
        let fingerprintSource = "\(key)|\(objectiveIdentity)\(initial)|\(String(decoding: try encoder.encode(configuration), as: UTF8.self))|\(train.count)|\(train.classCounts)|\(test.count)"
        let hash = String(SHA256.hexHash(Array(fingerprintSource.utf8)).prefix(16))
        let url = workDirectory.appendingPathComponent("\(key)-\(hash).safetensors")
        let runURL = workDirectory.appendingPathComponent("\(key)-\(hash).run")
        if FileManager.default.fileExists(atPath: url.path),
           let checkpoint = try? ModelCheckpoint.read(url: url),
           let errors = checkpoint.metadata["test_errors"].flatMap(Int.init),
           let last = checkpoint.metadata["last_epoch_test_errors"].flatMap(Int.init) {
            if writes { log("\(key): reusing \(url.lastPathComponent) (\(errors) test errors)") }
            if FileManager.default.fileExists(atPath: runURL.path) { runs.add(runURL) }
            return TrainedModel(model: checkpoint.model, testErrors: errors, lastEpochTestErrors: last,
                                seconds: Double(checkpoint.metadata["seconds"] ?? "0") ?? 0, cached: true,
                                health: TrainingHealth.measure(model: checkpoint.model, dataset: train))
        }
        let start = Date()
        let encoder2 = JSONEncoder()
        encoder2.outputFormatting = [.sortedKeys, .prettyPrinted]
        let runConfiguration: [String: Any] = ["model": key, "objective": objectiveIdentity,
                                               "training": try JSONSerialization.jsonObject(with: encoder2.encode(configuration)),
                                               "training_examples": train.count, "test_examples": test.count]
        let run = writes ? try RunDirectory.open(at: runURL, configurationJSON: try JSONSerialization.data(withJSONObject: runConfiguration, options: [.sortedKeys, .prettyPrinted]),
                                                 command: CommandLine.arguments, examplesPerEpoch: train.count - configuration.data.validationCount) : nil
        var policy = TrainingJob.StatePolicy(url: nil)
        policy.onEpoch = { run?.appendEpoch($0) }
        policy.communicator = communicator
        guard case let .finished(result) = try TrainingJob.train(configuration: configuration, data: (train, test), label: key,
                                                                 progress: writes ? progress : ProgressReporter(enabled: false),
                                                                 state: policy, initialModel: initialModel,
                                                                 makeObjective: makeObjective) else {
            throw TrainingError("\(key): the run stopped before its last epoch")
        }
        let seconds = Date().timeIntervalSince(start)
        guard let run else {
            return TrainedModel(model: result.model, testErrors: result.testErrors, lastEpochTestErrors: result.lastEpochTestErrors,
                                seconds: seconds, cached: false, health: result.health)
        }
        var checkpoint = try result.checkpoint(role: key)
        checkpoint.metadata["last_epoch_test_errors"] = String(result.lastEpochTestErrors)
        checkpoint.metadata["seconds"] = String(seconds)
        checkpoint.metadata["objective"] = objectiveIdentity
        try checkpoint.write(to: url, overwrite: true)
        try run.writeMetrics(result.report.epochs)
        let metrics = try EvaluationMetrics.evaluate(model: result.model, dataset: test)
        var fields = (try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any]) ?? [:]
        fields["seconds"] = seconds
        try run.writeResult(try result.jsonObject(extra: fields))
        try run.addModel(from: url)
        runs.add(runURL)
        log(String(format: "%@: %d test errors (last epoch %d), %.0f s", key, result.testErrors, result.lastEpochTestErrors, seconds))
        if !result.health.healthy { log("\(key): \(result.health.summary)") }
        return TrainedModel(model: result.model, testErrors: result.testErrors, lastEpochTestErrors: result.lastEpochTestErrors,
                            seconds: seconds, cached: false, health: result.health)
    }

    /// Writes (or reuses) the teacher-logit store of `teacher` over the full training set.
    public func store(for teacher: ModelTeacher, key: String) throws -> TeacherLogitStore {
        let url = workDirectory.appendingPathComponent("\(key)-\(teacher.identity.prefix(16)).logits.safetensors")
        if FileManager.default.fileExists(atPath: url.path), let store = try? TeacherLogitStore.read(url: url),
           store.teacherIdentity == teacher.identity, store.exampleCount == data.train.count {
            return store
        }
        try TeacherLogitStore.write(teacher: teacher, dataset: data.train, to: url, overwrite: true, communicator: communicator)
        communicator.barrier()  // rank 0 has written it
        return try TeacherLogitStore.read(url: url)
    }
}

/// Mean and sample standard deviation.
public func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
    guard !values.isEmpty else { return (.nan, .nan) }
    let mean = values.reduce(0, +) / Double(values.count)
    guard values.count > 1 else { return (mean, 0) }
    let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)
    return (mean, variance.squareRoot())
}

/// "m ± sd" (or just m for one seed).
public func formatStatistic(_ values: [Double], decimals: Int = 1) -> String {
    let (m, s) = meanAndDeviation(values)
    return values.count > 1 ? String(format: "%.\(decimals)f ± %.\(decimals)f", m, s) : String(format: "%.\(decimals)f", m)
}

/// A plain text table with aligned columns.
public func formatTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = (0..<header.count).map { c in all.map { $0.count > c ? $0[c].count : 0 }.max() ?? 0 }
    func line(_ row: [String]) -> String {
        row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(separator: "\n")
}
