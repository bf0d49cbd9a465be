import ArgumentParser
import Foundation
import Distillation
import Datasets
import NeuralNet

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a network on hard labels (a teacher, or a baseline student).")

    @OptionGroup var options: TrainingOptions
    @Option(help: "Where to write the trained model (safetensors).") var output: String
    @Flag(help: "Overwrite an existing output file.") var force = false
    @Flag(help: "Print one JSON object with the results on stdout.") var json = false

    func run() throws {
        let configuration = try options.configuration()
        try DataLocation.checkOutput(output, force: force)
        let data = try DataLocation.loadMNIST(options.dataDir)
        let result = try TrainingJob.train(configuration: configuration, data: data, objective: LabelObjective(), label: "train")
        try result.checkpoint(role: "trained on labels").write(to: URL(fileURLWithPath: output), overwrite: force)
        let metrics = try EvaluationMetrics.evaluate(model: result.model, dataset: data.test)
        try result.printSummary(json: json, output: output, extra: try metricsFields(metrics))
    }
}
