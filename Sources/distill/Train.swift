import ArgumentParser
import Foundation
import Distillation
import Datasets
import NeuralNet

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network on hard labels (a teacher, or a baseline student).",
        discussion: """
        Ctrl-C (SIGINT) or SIGTERM stops after the current step, writes the training state to <output>.state and \
        exits with 130 / 143 without writing the model; run the same command plus --resume to continue. A second \
        Ctrl-C quits at once. With --checkpoint-every N the state is also written every N batches and at the end of \
        every epoch, so even a killed run can be resumed. A resumed run ends with exactly the same weights as an \
        uninterrupted one (same flags, same --threads). The state file is removed once the run finishes and the \
        model is written; the model file is replaced only at the very end, atomically.
        """)

    @OptionGroup var options: TrainingOptions
    @Option(help: "Where to write the trained model (safetensors).") var output: String
    @Flag(help: "Overwrite an existing output file.") var force = false
    @Flag(help: "Print one JSON object with the results on stdout.") var json = false
    @OptionGroup var resumeOptions: ResumeOptions

    func run() throws {
        let configuration = try options.configuration()
        let outputURL = URL(fileURLWithPath: output)
        try DataLocation.checkOutput(output, force: force)
        let stateURL = try resumeOptions.checkStateFile(output: output)
        let data = try DataLocation.loadMNIST(options.dataDir)
        let interrupts = InterruptFlag()
        interrupts.install()
        let delay = testStepDelay
        let policy = TrainingJob.StatePolicy(url: stateURL, resume: resumeOptions.resume,
                                             checkpointEvery: resumeOptions.checkpointEvery,
                                             shouldStop: {
                                                 if delay > 0 { usleep(delay) }
                                                 return interrupts.isSet
                                             })
        let outcome: TrainingJob.Outcome
        do {
            outcome = try TrainingJob.train(configuration: configuration, data: data, objective: LabelObjective(),
                                            label: "train", state: policy)
        } catch let error as TrainingError where FileManager.default.fileExists(atPath: stateURL.path) {
            throw TrainingError("\(error.description)\n(the last good training state is kept in \(stateURL.path); \(output) was not written)")
        }
        switch outcome {
        case .stopped(let epoch, let batch):
            try resumeOptions.exitInterrupted(epoch: epoch, batch: batch, signal: interrupts.signal)
        case .finished(let result):
            try result.checkpoint(role: "trained on labels").write(to: outputURL, overwrite: force)
            try? FileManager.default.removeItem(at: stateURL)
            try result.printSummary(json: json, output: output)
        }
    }
}
