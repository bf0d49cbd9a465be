import ArgumentParser
import Foundation
import Distillation
import Runs

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an experiment file (YAML or JSON): a teacher, a student on labels and distilled students, over seeds.",
        discussion: """
        Every model gets a run directory under <work-dir>/<name>/ (configuration and its hash, command line, per-epoch \
        metrics, result, model); summary.txt and summary.json sum them up. Running the same file again reuses finished \
        models and resumes an interrupted one (Ctrl-C, SIGTERM or SIGKILL) to the weights an uninterrupted run gives.
        """)

    @Argument(help: "The experiment file.") var file: String
    @Option(help: "Directory of the experiments' run directories.") var workDir: String = "runs"
    @OptionGroup var kernelOptions: KernelOptions
    @Flag(help: "Print the outcomes as one JSON object on stdout.") var json = false

    func run() throws {
        let experiment = try ExperimentFile.read(url: URL(fileURLWithPath: file))
        try kernelOptions.apply()
        let interrupts = InterruptFlag()
        interrupts.install()
        let delay = testStepDelay
        let outcomes: [ExperimentRunner.Outcome]
        do {
            outcomes = try ExperimentRunner.run(experiment, workDirectory: URL(fileURLWithPath: workDir), command: CommandLine.arguments,
                                                shouldStop: {
                                                    if delay > 0 { usleep(delay) }
                                                    return interrupts.isSet
                                                })
        } catch let stopped as ExperimentRunner.Stopped {
            FileHandle.standardError.write(Data("\(stopped.description)\n".utf8))
            throw ExitCode(128 + (interrupts.signal == 0 ? SIGINT : interrupts.signal))
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: [
                "experiment": experiment.name, "seeds": experiment.seeds.map { Int($0) },
                "outcomes": try JSONSerialization.jsonObject(with: JSONEncoder().encode(outcomes)),
                "directory": URL(fileURLWithPath: workDir).appendingPathComponent(experiment.name).path,
            ], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(ExperimentRunner.summaryTable(outcomes, experiment: experiment))
        }
    }
}
