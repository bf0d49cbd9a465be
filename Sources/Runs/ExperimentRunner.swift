import Foundation
import TensorCore
import Datasets
import DataFormats
import Checkpoints
import Distillation
import NeuralNet
import TensorIO

/// Runs an ``ExperimentFile``: for every seed the teacher (trained or loaded), the student on labels alone, and the
/// student distilled at each temperature, each model in a run directory of its own under
/// `<work directory>/<name>/`, then a summary (`summary.json`, `summary.txt`).
///
/// A model whose run directory holds a finished result for the same configuration (its hash) is reused; one that was
/// interrupted (Ctrl-C, SIGTERM, even SIGKILL) resumes from its training state, written every 50 batches and at
/// each epoch's end, to exactly the weights an uninterrupted run gives.
public enum ExperimentRunner {
    /// One trained (or reused) model of the experiment.
    public struct Outcome: Codable, Sendable {
        public var model: String
        public var seed: UInt64
        public var testErrors: Int
        public var testCount: Int
        public var healthy: Bool
        public var reused: Bool
        public var directory: String

        enum CodingKeys: String, CodingKey {
            case model, seed, healthy, reused, directory
            case testErrors = "test_errors", testCount = "test_count"
        }
    }

    /// The run was stopped (a signal); its state is saved.
    public struct Stopped: Error, CustomStringConvertible {
        public let model: String
        public var description: String { "stopped while training \(model); run the same command again to continue" }
    }

    public static let checkpointEvery = 50

    public static func run(_ experiment: ExperimentFile, workDirectory: URL, command: [String],
                           progress: ProgressReporter = ProgressReporter(), shouldStop: @escaping () -> Bool = { false },
                           log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> [Outcome] {
        let root = workDirectory.appendingPathComponent(experiment.name)
        do { try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw TrainingError("\(root.path): cannot create the experiment directory (\(error.localizedDescription))")
        }
        try? AtomicFileWriter.write(Data(experiment.text.utf8), to: root.appendingPathComponent("experiment.yaml"))
        var outcomes: [Outcome] = []
        for seed in experiment.seeds {
            var request = experiment.data
            request.splitSeed = seed
            let (train, test, specification) = try DataLoader.load(request)
            let context = Context(root: root, data: (train, test), specification: specification, command: command,
                                  progress: progress, shouldStop: shouldStop, log: log)
            // The teacher: one model, or an ensemble of several.
            var teacherModels: [Sequential] = []
            if let base = experiment.teacherTraining {
                for k in 0..<experiment.teacherMembers {
                    var training = base
                    training.seed = seed &+ 1000 &* UInt64(k)
                    let name = experiment.teacherMembers == 1 ? "teacher-seed\(seed)" : "teacher\(k)-seed\(seed)"
                    let (model, outcome) = try context.train(name: name, configuration: training, objectiveIdentity: "labels",
                                                             settings: [:]) { _ in LabelObjective() }
                    teacherModels.append(model)
                    outcomes.append(outcome)
                }
            } else if !experiment.teacherFiles.isEmpty {
                for file in experiment.teacherFiles {
                    let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: file))
                    try TrainingJob.checkCompatible(checkpoint, with: train, source: file)
                    if let own = try DataSpecification.from(metadata: checkpoint.metadata), own.standardization != specification.standardization {
                        throw TrainingError("\(file): the teacher was trained on differently standardised inputs than the experiment's data")
                    }
                    teacherModels.append(checkpoint.model)
                }
            } else {
                throw TrainingError("the experiment has no teacher")
            }
            let teacher: Teacher = teacherModels.count == 1
                ? ModelTeacher(model: teacherModels[0])
                : try EnsembleTeacher(members: teacherModels.map { ModelTeacher(model: $0) }, combination: experiment.ensembleCombination)
            var student = experiment.student
            student.seed = seed
            if experiment.labelOnly {
                outcomes.append(try context.train(name: "student-labels-seed\(seed)", configuration: student, objectiveIdentity: "labels",
                                                  settings: [:], metricsTeacher: teacher) { _ in LabelObjective() }.1)
            }
            let source: Teacher = student.data.jitter > 0 ? teacher : try CachedTeacher(base: teacher, dataset: train)
            for t in experiment.temperatures {
                var loss = experiment.loss
                loss.temperature = t
                var settings = ["teacher_identity": teacher.identity, "distillation": String(decoding: try sortedJSON(loss), as: UTF8.self)]
                let name = "student-T\(formatTemperature(t))-seed\(seed)"
                if experiment.decoupled == nil && experiment.features.isEmpty {
                    let identity = "distillation teacher=\(teacher.identity) T=\(t) hard=\(loss.hardWeight) soft=\(loss.softWeight) T2=\(loss.scaleSoftBySquaredTemperature)"
                    outcomes.append(try context.train(name: name, configuration: student, objectiveIdentity: identity, settings: settings,
                                                      metricsTeacher: teacher) { indices in
                        try DistillationObjective(teacher: source, loss: loss, exampleIndices: indices)
                    }.1)
                    continue
                }
                // Decoupled KD and feature terms: the feature terms read the teacher's layers, so they take the teacher
                // itself (not the cache of its logits).
                let description = try student.modelDescription(inputShape: train.sampleShape, classCount: train.classCount)
                let featureSource: Teacher = experiment.features.isEmpty ? source : teacher
                func objective(_ indices: [Int]?) throws -> FeatureDistillationObjective {
                    try FeatureDistillationObjective(teacher: featureSource, loss: loss, decoupled: experiment.decoupled,
                                                     terms: experiment.features, studentDescription: description, seed: seed,
                                                     exampleIndices: indices)
                }
                if let decoupled = experiment.decoupled { settings["decoupled_kd"] = String(decoding: try sortedJSON(decoupled), as: UTF8.self) }
                if !experiment.features.isEmpty { settings["features"] = String(decoding: try sortedJSON(experiment.features), as: UTF8.self) }
                outcomes.append(try context.train(name: name, configuration: student, objectiveIdentity: try objective(nil).identity,
                                                  settings: settings, metricsTeacher: teacher) { indices in try objective(indices) }.1)
            }
        }
        try writeSummary(outcomes, experiment: experiment, to: root)
        return outcomes
    }

    static func formatTemperature(_ t: Float) -> String { t == t.rounded() ? String(Int(t)) : String(t) }

    static func sortedJSON<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    /// One seed's shared setting.
    struct Context {
        let root: URL
        let data: (train: LabeledDataset, test: LabeledDataset)
        let specification: DataSpecification
        let command: [String]
        let progress: ProgressReporter
        let shouldStop: () -> Bool
        let log: (String) -> Void

        /// Trains the model `name` (or reuses its finished result; or resumes it), in its run directory.
        func train(name: String, configuration: TrainingConfiguration, objectiveIdentity: String, settings: [String: String],
                   metricsTeacher: Teacher? = nil,
                   makeObjective: ([Int]?) throws -> TrainingObjective) throws -> (Sequential, Outcome) {
            var configuration = configuration
            let active = RuntimeConfiguration.active
            configuration.runtime.blas = active.blas
            configuration.runtime.inputKernels = active.inputKernels
            configuration.runtime.convolutions = active.convolutions
            let directory = root.appendingPathComponent(name)
            var object: [String: Any] = [
                "training": try JSONSerialization.jsonObject(with: sortedJSON(configuration)),
                "data": try JSONSerialization.jsonObject(with: sortedJSON(specification)),
                "objective": objectiveIdentity,
            ]
            for (k, v) in settings { object[k] = (try? JSONSerialization.jsonObject(with: Data(v.utf8), options: [.fragmentsAllowed])) ?? v }
            let json = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
            let hash = SHA256.hexHash(Array(json))
            let modelURL = directory.appendingPathComponent("model.safetensors")
            let resultURL = directory.appendingPathComponent("result.json")
            // A finished run of the same configuration: reuse it.
            if let stored = try? String(contentsOf: directory.appendingPathComponent("configuration.sha256"), encoding: .utf8),
               stored.trimmingCharacters(in: .whitespacesAndNewlines) == hash,
               let resultData = try? Data(contentsOf: resultURL),
               let result = (try? JSONSerialization.jsonObject(with: resultData)) as? [String: Any],
               let errors = result["test_errors"] as? Int, let checkpoint = try? ModelCheckpoint.read(url: modelURL) {
                log("\(name): reusing \(directory.path) (\(errors) test errors)")
                let healthy = (result["health"] as? [String: Any])?["healthy"] as? Bool ?? false
                return (checkpoint.model, Outcome(model: modelKind(name), seed: configuration.seed, testErrors: errors,
                                                  testCount: result["test_count"] as? Int ?? data.test.count, healthy: healthy,
                                                  reused: true, directory: directory.path))
            }
            let stateURL = directory.appendingPathComponent("state.safetensors")
            let resuming = FileManager.default.fileExists(atPath: stateURL.path)
            if !resuming {
                // A stale directory (another configuration): its results go, the new run starts clean.
                for file in ["result.json", "metrics.jsonl", "model.safetensors"] {
                    try? FileManager.default.removeItem(at: directory.appendingPathComponent(file))
                }
            }
            let run = try RunDirectory.open(at: directory, configurationJSON: json, command: command,
                                            examplesPerEpoch: data.train.count - configuration.data.validationCount)
            var policy = TrainingJob.StatePolicy(url: stateURL, resume: resuming, checkpointEvery: ExperimentRunner.checkpointEvery,
                                                 shouldStop: shouldStop)
            policy.onEpoch = { run.appendEpoch($0) }
            if resuming { log("\(name): resuming from \(stateURL.path)") }
            let outcome: TrainingJob.Outcome
            do {
                outcome = try TrainingJob.train(configuration: configuration, data: data, label: name, progress: progress,
                                                state: policy, makeObjective: makeObjective)
            } catch let error as TrainingError where resuming && error.description.contains("cannot resume") {
                throw TrainingError("\(error.description) (the experiment file changed since \(name) started: delete \(directory.path) to train it again)")
            }
            guard case let .finished(result) = outcome else { throw Stopped(model: name) }
            var withData = result
            withData.extraMetadata[DataSpecification.metadataKey] = try specification.metadataValue()
            for (k, v) in settings { withData.extraMetadata[k] = v }
            try withData.checkpoint(role: name).write(to: modelURL, overwrite: true)
            try run.writeMetrics(result.report.epochs)
            let metrics = try EvaluationMetrics.evaluate(model: result.model, dataset: data.test, teacher: metricsTeacher)
            var fields = (try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any]) ?? [:]
            fields["run_directory"] = directory.path
            if let names = specification.classNames { fields["class_names"] = names }
            try run.writeResult(try result.jsonObject(extra: fields))
            try? FileManager.default.removeItem(at: stateURL)
            log(String(format: "%@: %d test errors of %d", name, result.testErrors, result.testCount))
            return (result.model, Outcome(model: modelKind(name), seed: configuration.seed, testErrors: result.testErrors,
                                          testCount: result.testCount, healthy: result.health.healthy, reused: false,
                                          directory: directory.path))
        }

        /// `student-T4-seed0` -> `student-T4`.
        func modelKind(_ name: String) -> String {
            guard let range = name.range(of: "-seed", options: .backwards) else { return name }
            return String(name[..<range.lowerBound])
        }
    }

    /// summary.json (every outcome) and summary.txt (mean ± sd test errors per model over the seeds).
    static func writeSummary(_ outcomes: [Outcome], experiment: ExperimentFile, to root: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFileWriter.write(try encoder.encode(outcomes), to: root.appendingPathComponent("summary.json"))
        try AtomicFileWriter.write(Data((summaryTable(outcomes, experiment: experiment) + "\n").utf8), to: root.appendingPathComponent("summary.txt"))
    }

    public static func summaryTable(_ outcomes: [Outcome], experiment: ExperimentFile) -> String {
        var order: [String] = []
        for o in outcomes where !order.contains(o.model) { order.append(o.model) }
        var lines = ["\(experiment.name): test errors (of \(outcomes.first?.testCount ?? 0)), mean ± sd over seeds \(experiment.seeds)"]
        let width = (order.map(\.count).max() ?? 5) + 2
        for model in order {
            let values = outcomes.filter { $0.model == model }.map { Double($0.testErrors) }
            let mean = values.reduce(0, +) / Double(values.count)
            let sd = values.count > 1 ? (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot() : 0
            let health = outcomes.filter { $0.model == model }.allSatisfy(\.healthy) ? "" : "  UNHEALTHY"
            lines.append(model.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "%.1f ± %.1f", mean, sd) + health)
        }
        return lines.joined(separator: "\n")
    }
}

/// Atomic writes for the runner's own files (TensorIO's AtomicFile, errors named by path).
enum AtomicFileWriter {
    static func write(_ data: Data, to url: URL) throws {
        do { try AtomicFile.write(data: data, to: url, overwrite: true) } catch {
            throw TrainingError("\(url.path): cannot write (\(error))")
        }
    }
}
