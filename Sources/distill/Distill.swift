import ArgumentParser

@main
struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Knowledge distillation (Hinton, Vinyals & Dean 2015) for multilayer perceptrons, on the CPU.",
        subcommands: [Train.self, Evaluate.self, DataCommand.self, Bench.self])
}
