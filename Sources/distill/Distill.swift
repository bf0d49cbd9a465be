import ArgumentParser
import TensorCore

@main
struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Knowledge distillation (Hinton, Vinyals & Dean 2015) for multilayer perceptrons, on the CPU.",
        subcommands: [Train.self, DistillCommand.self, TeacherLogitsCommand.self, Evaluate.self, Reproduce.self,
                      Bench.self, DataCommand.self])

    static func main() {
        // OpenBLAS 0.3.21 picks slow generic kernels on CPUs it does not know; see BLASKernel.
        BLASKernel.reexecWithTunedKernelsIfNeeded()
        Self.main(nil)
    }
}
