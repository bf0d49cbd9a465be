import ArgumentParser
import TensorCore
import Distillation

@main
struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Knowledge distillation (Hinton, Vinyals & Dean 2015) on the CPU: teachers, ensembles and specialists distilled into small students, from MNIST or your own data to ONNX.",
        subcommands: [Train.self, DistillCommand.self, TeacherLogitsCommand.self, Evaluate.self, PredictCommand.self, ExportCommand.self, RunCommand.self, ReportCommand.self, Reproduce.self,
                      Bench.self, DataCommand.self])

    static func main() {
        // OpenBLAS 0.3.21 picks slow generic kernels on CPUs it does not know; see BLASKernel.
        BLASKernel.reexecWithTunedKernelsIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ConfigurationError {
            // The library names a bad value by its field; the command line names the flag that set it.
            exit(withError: TrainingError(Flags.message(error)))
        } catch {
            exit(withError: error)
        }
    }
}
