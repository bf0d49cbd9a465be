import ArgumentParser
import Foundation
import Reports
import TensorIO
import Distillation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One self-contained HTML page (inline SVG charts, no network, no script) of run directories, side by side.",
        discussion: "Each path is a run directory (train, distill, or a model of `distill run`), or a directory of them (an experiment's directory, a `reproduce` work directory).")

    @Argument(help: "Run directories, or directories of runs.") var runs: [String]
    @Option(help: "The HTML file to write.") var output: String = "report.html"
    @Option(help: "The report's title.") var title: String = "SwiftDistill report"
    @Flag(help: "Overwrite an existing output file.") var force = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run directory") }
    }

    func run() throws {
        try DataLocation.checkOutput(output, force: force)
        let records: [RunRecord]
        do { records = try HTMLReport.collect(runs.map { URL(fileURLWithPath: $0) }) } catch let error as ReportError {
            throw TrainingError(error.description)
        }
        let html = HTMLReport.render(runs: records, title: title)
        try AtomicFile.write(data: Data(html.utf8), to: URL(fileURLWithPath: output), overwrite: force)
        print("wrote \(output): \(records.count) run(s)")
    }
}
