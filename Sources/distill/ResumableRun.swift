import ArgumentParser
import Foundation
import Distillation
import Datasets
import TensorCore
import DataFormats
import Runs
import Distributed

/// The shared body of `train` and `distill`: resumable training with Ctrl-C handling, then the atomic write of the
/// model and the report.
struct ResumableRun {
    var options: TrainingOptions
    var resumeOptions: ResumeOptions
    var output: String
    var force: Bool
    var json: Bool
    var label: String
    var role: String

    /// The run directory: `--run-dir`, or the output's path with `.run` for `.safetensors`.
    var runDirectory: URL {
        if let dir = resumeOptions.runDir { return URL(fileURLWithPath: dir) }
        let base = output.hasSuffix(".safetensors") ? String(output.dropLast(".safetensors".count)) : output
        return URL(fileURLWithPath: base + ".run")
    }

    /// Opens the run directory with the resolved configuration: training, data, and the command's own settings.
    func openRunDirectory(configuration: TrainingConfiguration, specification: DataSpecification, metadata: [String: String],
                          examples: Int) throws -> RunDirectory {
        let url = runDirectory
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("result.json").path) && !force && !resumeOptions.resume {
            throw TrainingError("\(url.path) holds a finished run; pass --force to replace it or --run-dir for another directory")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var object: [String: Any] = [
            "command": label,
            "training": try JSONSerialization.jsonObject(with: encoder.encode(configuration)),
            "data": try JSONSerialization.jsonObject(with: encoder.encode(specification)),
        ]
        for (k, v) in metadata {
            object[k] = (try? JSONSerialization.jsonObject(with: Data(v.utf8), options: [.fragmentsAllowed])) ?? v
        }
        let json = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return try RunDirectory.open(at: url, configurationJSON: json, command: CommandLine.arguments, examplesPerEpoch: examples)
    }

    /// Checks flags and files before any work; returns the configuration, the state file, the data and what the
    /// model file records about it.
    func prepare() throws -> (TrainingConfiguration, URL, (train: LabeledDataset, test: LabeledDataset), DataSpecification) {
        var configuration = try options.configuration()
        try DataLocation.checkOutput(output, force: force)
        try options.kernelOptions.apply()
        let active = RuntimeConfiguration.active
        configuration.runtime.blas = active.blas
        configuration.runtime.inputKernels = active.inputKernels
        configuration.runtime.convolutions = active.convolutions
        let stateURL = try resumeOptions.checkStateFile(output: output)
        let (train, test, specification) = try DataLoader.load(options.data.request(seed: configuration.seed))
        return (configuration, stateURL, (train, test), specification)
    }

    func run(configuration: TrainingConfiguration, stateURL: URL, data: (train: LabeledDataset, test: LabeledDataset),
             specification: DataSpecification,
             metadata: [String: String] = [:], extra: [String: Any] = [:], metricsTeacher: Teacher? = nil,
             makeObjective: ([Int]?) throws -> TrainingObjective) throws {
        let interrupts = InterruptFlag()
        interrupts.install()
        let delay = testStepDelay
        // Several processes (mpirun): rank 0 alone prints and writes the run directory, state and model files.
        let world = World.current
        let run = world.isRoot
            ? try openRunDirectory(configuration: configuration, specification: specification, metadata: metadata,
                                   examples: data.train.count - configuration.data.validationCount)
            : nil
        var policy = TrainingJob.StatePolicy(url: stateURL, resume: resumeOptions.resume,
                                             checkpointEvery: resumeOptions.checkpointEvery,
                                             shouldStop: {
                                                 if delay > 0 { usleep(delay) }
                                                 return interrupts.isSet
                                             })
        policy.onEpoch = { run?.appendEpoch($0) }
        policy.communicator = world
        let outcome: TrainingJob.Outcome
        do {
            outcome = try TrainingJob.train(configuration: configuration, data: data, label: label,
                                            progress: ProgressReporter(enabled: world.isRoot), state: policy,
                                            makeObjective: makeObjective)
        } catch let error as TrainingError where FileManager.default.fileExists(atPath: stateURL.path) {
            throw TrainingError("\(error.description) (the last good training state is kept in \(stateURL.path); \(output) was not written)")
        }
        switch outcome {
        case .stopped(let epoch, let batch):
            guard world.isRoot else { throw ExitCode(128 + (interrupts.signal == 0 ? SIGTERM : interrupts.signal)) }
            try resumeOptions.exitInterrupted(epoch: epoch, batch: batch, signal: interrupts.signal)
        case .finished(var result):
            guard world.isRoot, let run else { return }
            for (k, v) in metadata { result.extraMetadata[k] = v }
            result.extraMetadata[DataSpecification.metadataKey] = try specification.metadataValue()
            result.extraMetadata["blas"] = BLASLibrary.active.rawValue
            result.extraMetadata["input_kernels"] = SparseKernels.active ? "sparse" : "dense"
            try result.checkpoint(role: role).write(to: URL(fileURLWithPath: output), overwrite: force)
            try? FileManager.default.removeItem(at: stateURL)
            let metrics = try EvaluationMetrics.evaluate(model: result.model, dataset: data.test, teacher: metricsTeacher)
            var fields = try metricsFields(metrics, classNames: specification.classNames)
            fields["data"] = options.data.describe
            if let path = options.data.data {
                let heldOut = configuration.data.validationCount > 0 ? "; model selection on \(configuration.data.validationCount) held-out training examples" : ""
                if let testPath = options.data.testData {
                    fields["split"] = "\(data.test.count) test examples of \(testPath)\(heldOut)"
                } else {
                    fields["split"] = "a stratified \(specification.testSplit ?? 0.2) test split of \(path) (\(data.test.count) examples, seed \(configuration.seed))\(heldOut)"
                }
            }
            for (k, v) in extra { fields[k] = v }
            fields["blas"] = BLASLibrary.active.rawValue
            fields["input_kernels"] = SparseKernels.active ? "sparse" : "dense"
            fields["run_directory"] = run.url.path
            try run.writeMetrics(result.report.epochs)
            try run.writeResult(try result.jsonObject(extra: fields))
            try run.addModel(from: URL(fileURLWithPath: output))
            try result.printSummary(json: json, output: output, extra: fields)
        }
    }
}
