import ArgumentParser
import Foundation
import Distillation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a trained model on the MNIST test set.")

    @Argument(help: "A model file written by `distill train` or `distill distill` (or a PyTorch nn.Sequential state dict in safetensors).")
    var model: String
    @Option(help: "MNIST directory (default: the embedded copy).") var dataDir: String?
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @Flag(help: "Print one JSON object on stdout.") var json = false

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
    }

    func run() throws {
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: model))
        let data = try DataLocation.loadMNIST(dataDir)
        try TrainingJob.checkCompatible(checkpoint, with: data.test, source: model)
        ComputeThreads.set(threads)
        let summary = EvaluationSummary(model: checkpoint.model, test: data.test)
        try summary.print(json: json, extra: [:])
    }
}

import TensorCore
