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
        let job = ResumableRun(options: options, resumeOptions: resumeOptions, output: output, force: force, json: json,
                               label: "train", role: "trained on labels")
        let (configuration, stateURL, data, specification) = try job.prepare()
        try job.run(configuration: configuration, stateURL: stateURL, data: data, specification: specification) { _ in LabelObjective() }
    }
}
