import ArgumentParser
import Foundation
import Datasets

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Manage datasets.", subcommands: [Fetch.self])

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
}
