import ArgumentParser
import Foundation
import Checkpoints
import DataFormats
import Distillation
import Inference
import TensorIO
import TensorCore

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Classify the examples of a file with a trained model: each example's class, its probability and every class's.",
        discussion: "--data is a CSV of raw features (with or without a label column: when it has one more column than the model takes, the label column is left out and the accuracy reported), an NPY array, or a folder of images. The model's standardisation is applied. Output: CSV (row, class, probability, then one column per class) or, for a .json output, one JSON object; to stdout without --output.")

    @Argument(help: "A model file written by train or distill.") var model: String
    @Option(help: ArgumentHelp("The examples: CSV, NPY (with --labels) or a folder of images.", valueName: "path")) var data: String
    @Option(help: ArgumentHelp("The labels of an NPY --data file.", valueName: "file")) var labels: String?
    @Option(help: ArgumentHelp("The CSV label column, when there is one: a header name, a 0-based index, or last.", valueName: "name|index|last"))
    var labelColumn: String?
    @Option(help: ArgumentHelp("Where to write the predictions: a .csv or .json file (default: CSV on stdout).", valueName: "file")) var output: String?
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @Flag(help: "Overwrite an existing output file.") var force = false

    func run() throws {
        if let output { try DataLocation.checkOutput(output, force: force) }
        ComputeThreads.set(threads)
        let predictor = try Predictor(contentsOf: URL(fileURLWithPath: model))
        var request = DataRequest()
        request.data = data
        request.labels = labels
        let isCSV = !data.hasSuffix(".npy") && !isDirectory(data)
        var labelled = !isCSV || labelColumn != nil
        if isCSV && labelColumn == nil {
            // One column more than the model takes: a label column (the default rules find it); as many: none.
            let columns = try CSVReader.columnCount(url: URL(fileURLWithPath: data))
            labelled = columns == predictor.featureCount + 1
            if !labelled && columns != predictor.featureCount {
                throw TrainingError("\(data): rows of \(columns) values; the model takes \(predictor.featureCount) (plus a label column)")
            }
        }
        request.csv.labelColumn = !labelled ? .none : labelColumn.map { $0 == "last" ? .last : Int($0).map { .index($0) } ?? .name($0) } ?? .automatic
        request.standardize = false
        let table = try DataLoader.read(data, labels: labels, request: request)
        guard table.dataset.featureCount == predictor.featureCount else {
            throw TrainingError("\(data): examples of \(table.dataset.featureCount) values; the model takes \(predictor.featureCount)")
        }
        var predictions: [Predictor.Prediction] = []
        var start = 0
        while start < table.dataset.count {
            let end = min(start + 1000, table.dataset.count)
            predictions += try predictor.predict(batch: table.dataset.inputs(rows: start..<end))
            start = end
        }
        // Accuracy when the file had labels (matched by class name).
        var correct: Int? = nil
        if labelled {
            let names = table.classNames ?? (0..<table.dataset.classCount).map(String.init)
            correct = zip(predictions, table.dataset.labels).filter { $0.0.className == names[$0.1] }.count
        }
        let text: String
        if output?.hasSuffix(".json") == true {
            var object: [String: Any] = [
                "model": model, "data": data, "count": predictions.count, "class_names": predictor.classNames,
                "predictions": predictions.map { ["class": $0.className, "class_index": $0.classIndex, "probability": Double($0.probability),
                                                  "probabilities": $0.probabilities.map(Double.init)] as [String: Any] },
            ]
            if let correct { object["correct"] = correct; object["accuracy"] = Double(correct) / Double(max(predictions.count, 1)) }
            text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n"
        } else {
            var lines = ["row,class,probability," + predictor.classNames.map(csvField).joined(separator: ",")]
            for (i, p) in predictions.enumerated() {
                lines.append("\(i),\(csvField(p.className)),\(p.probability)," + p.probabilities.map { "\($0)" }.joined(separator: ","))
            }
            text = lines.joined(separator: "\n") + "\n"
        }
        if let output {
            try AtomicFile.write(data: Data(text.utf8), to: URL(fileURLWithPath: output), overwrite: force)
            var summary = "wrote \(predictions.count) predictions to \(output)"
            if let correct { summary += String(format: "; accuracy %.2f %% (%d of %d) against the file's labels", 100 * Double(correct) / Double(max(predictions.count, 1)), correct, predictions.count) }
            FileHandle.standardError.write(Data((summary + "\n").utf8))
        } else {
            print(text, terminator: "")
        }
    }

    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }

    func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}
