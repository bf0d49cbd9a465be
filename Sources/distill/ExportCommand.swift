import ArgumentParser
import Foundation
import Checkpoints
import Distillation
import Export
import TensorIO

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a model as ONNX (opset 17) for ONNX Runtime and the tools that read ONNX.",
        discussion: "Input 'input' [batch, ...] (the raw features: a model's standardisation is part of the graph), output 'logits' [batch, classes] at T = 1, and with --probabilities their softmax; the classes, their names and the training settings in metadata_props.")

    @Argument(help: "A model file written by train or distill.") var model: String
    @Option(help: "The format (onnx).") var format: String = "onnx"
    @Option(help: "The file to write.") var output: String
    @Flag(help: "Also output 'probabilities' (the softmax of the logits).") var probabilities = false
    @Flag(help: "Overwrite an existing output file.") var force = false

    func validate() throws {
        guard format == "onnx" else { throw ValidationError("--format must be onnx, got '\(format)'") }
    }

    func run() throws {
        try DataLocation.checkOutput(output, force: force)
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: model))
        var options = ONNXExporter.Options()
        options.probabilities = probabilities
        let bytes: Data
        do { bytes = try ONNXExporter.export(checkpoint, source: model, options: options) } catch let error as ExportError {
            throw TrainingError(error.description)
        }
        try AtomicFile.write(data: bytes, to: URL(fileURLWithPath: output), overwrite: force)
        print("wrote \(output): ONNX opset \(ONNXExporter.opset), \(bytes.count) bytes")
    }
}
