import ArgumentParser
import Foundation
import Distillation

/// Flags shared by the experiments.
struct ExperimentOptions: ParsableArguments {
    @Option(help: "Seeds, comma-separated; every seed is run and mean ± sd reported.", transform: parseSeeds)
    var seeds: [UInt64] = [0]
    @Option(help: "MNIST directory (default: the embedded copy).") var dataDir: String?
    @Option(help: "Directory caching finished models, so an interrupted experiment resumes where it stopped.")
    var workDir: String = "runs"
    @Option(help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @Option(help: "Multiply every epoch count by this factor (shorter trial runs).") var epochScale: Double = 1
    @Flag(help: "Print one JSON object on stdout.") var json = false

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
        guard epochScale > 0 && epochScale.isFinite else { throw ValidationError("--epoch-scale must be > 0, got \(epochScale)") }
    }

    func context() throws -> ExperimentContext {
        try ExperimentContext(data: DataLocation.loadMNIST(dataDir), workDirectory: URL(fileURLWithPath: workDir), threads: threads)
    }
}

func parseSeeds(_ text: String) throws -> [UInt64] {
    let seeds = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
    guard !seeds.isEmpty, seeds.allSatisfy({ $0 != nil }) else {
        throw ValidationError("--seeds expects non-negative integers separated by commas (e.g. 0,1,2), got '\(text)'")
    }
    return seeds.compactMap { $0 }
}

func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func mean(_ values: [Int]) -> Double { values.isEmpty ? .nan : Double(values.reduce(0, +)) / Double(values.count) }

extension HintonMNIST.Preset: ExpressibleByArgument {}

struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run the experiments of Hinton, Vinyals & Dean (2015) and print them beside the paper's figures.",
        subcommands: [HintonMNISTCommand.self])

    struct HintonMNISTCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hinton-mnist",
            abstract: "Teacher 2x1200 (dropout, jitter, max-norm), student 2x800 on labels, the same student distilled at T=20.")

        @Option(help: "quick (a few minutes, 10,000 training images) or full (the whole training set).")
        var preset: HintonMNIST.Preset = .quick
        @OptionGroup var experiment: ExperimentOptions

        func run() throws {
            let start = Date()
            let context = try experiment.context()
            let results = try HintonMNIST.run(preset: preset, seeds: experiment.seeds, context: context, epochScale: experiment.epochScale)
            let wall = Date().timeIntervalSince(start)
            if experiment.json {
                let perSeed = try JSONSerialization.jsonObject(with: JSONEncoder().encode(results))
                try printJSON([
                    "experiment": "hinton-mnist", "preset": preset.rawValue, "seeds": experiment.seeds.map { Int($0) },
                    "teacher_errors": mean(results.map(\.teacherErrors)), "student_errors": mean(results.map(\.studentErrors)),
                    "distilled_errors": mean(results.map(\.distilledErrors)),
                    "teacher_last_epoch_errors": mean(results.map(\.teacherLastEpochErrors)),
                    "student_last_epoch_errors": mean(results.map(\.studentLastEpochErrors)),
                    "distilled_last_epoch_errors": mean(results.map(\.distilledLastEpochErrors)),
                    "per_seed": perSeed, "wall_seconds": wall,
                    "paper": ["teacher_errors": HintonMNIST.paper.teacher, "student_errors": HintonMNIST.paper.student,
                              "distilled_errors": HintonMNIST.paper.distilled],
                    "plan": try JSONSerialization.jsonObject(with: JSONEncoder().encode(HintonMNIST.plan(preset))),
                    "split": "errors on the MNIST test set (10,000 images); model selection on a validation split of the training images",
                ])
            } else {
                print(HintonMNIST.table(results, preset: preset))
                print(String(format: "wall time %.0f s", wall))
            }
        }
    }
}
