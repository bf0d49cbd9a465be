import ArgumentParser
import Foundation
import Datasets
import DataFormats
import Distillation
import TensorCore

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Manage datasets.", subcommands: [Fetch.self, Inspect.self])

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a dataset from its public mirror and verify its SHA-256 sums.")
        @Argument(help: "The dataset (only mnist).") var dataset: String
        @Option(help: "Directory to write the files to.") var output: String = "mnist-data"

        func validate() throws {
            guard dataset == "mnist" else { throw ValidationError("unknown dataset '\(dataset)'; expected mnist") }
        }

        func run() throws {
            let url = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try MNIST.fetch(to: url)
            print("MNIST verified in \(url.path)")
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a data file as training would and say what it holds: examples, features, classes, load time, peak memory.")
        @Argument(help: "A CSV (.csv, .csv.gz) or NPY file.") var file: String
        @Option(help: "The labels of an NPY file.") var labels: String?
        @Option(help: ArgumentHelp("The CSV label column: a header name, a 0-based index, or last.", valueName: "name|index|last")) var labelColumn: String?
        @Option(parsing: .unconditional, help: "Threads for parsing.") var threads: Int = 2
        @Flag(help: "Print one JSON object on stdout.") var json = false

        func run() throws {
            ComputeThreads.set(threads)
            var request = DataRequest()
            request.data = file
            request.labels = labels
            switch labelColumn {
            case nil: request.csv.labelColumn = .automatic
            case "last"?: request.csv.labelColumn = .last
            case let text?: request.csv.labelColumn = Int(text).map { .index($0) } ?? .name(text)
            }
            let start = DispatchTime.now().uptimeNanoseconds
            let data = try DataLoader.read(file, labels: labels, request: request)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let d = data.dataset
            let object: [String: Any] = [
                "file": file, "examples": d.count, "sample_shape": d.sampleShape, "features": d.featureCount, "classes": d.classCount,
                "class_names": data.classNames ?? [], "class_counts": d.classCounts, "seconds": seconds,
                "peak_rss_bytes": ResourceUsage.peakResidentBytes, "float32_bytes": d.count * d.featureCount * 4,
                "storage": d.isByteStorage ? "bytes" : "float32",
            ]
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("\(file): \(d.count) examples of shape \(d.sampleShape), \(d.classCount) classes\(data.classNames.map { " (\($0.prefix(8).joined(separator: ", "))\($0.count > 8 ? ", ..." : ""))" } ?? "")")
                print(String(format: "read in %.3f s; peak memory %.0f MiB (the values as float32: %.0f MiB)", seconds,
                             Double(ResourceUsage.peakResidentBytes) / 1_048_576, Double(d.count * d.featureCount * 4) / 1_048_576))
            }
        }
    }
}
