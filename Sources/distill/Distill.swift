import ArgumentParser
import TensorCore
import Distillation
import Distributed
import Foundation

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
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
            try startProcesses(for: command)
        } catch {
            // Under mpirun every process reads the same command line: rank 0 alone reports what is wrong with it.
            if let launched = World.launched, launched.rank > 0, !(World.current is MPICommunicator) {
                Foundation.exit(Distill.exitCode(for: error).rawValue)
            }
            finish(error)
        }
        do {
            try command.run()
        } catch {
            finish(error)
        }
        World.finish()
    }

    /// Under `mpirun` (Open MPI's environment), loads MPI and joins the job; only the commands marked
    /// ``RunsUnderMPI`` run as several processes.
    static func startProcesses(for command: ParsableCommand) throws {
        guard let launched = World.launched else { return }
        if launched.size > 1 && !(command is RunsUnderMPI) {
            let name = type(of: command).configuration.commandName ?? "\(type(of: command))".lowercased()
            throw TrainingError("distill \(name) runs as one process; only train, distill, teacher-logits and reproduce run under mpirun with several processes (-np \(launched.size))")
        }
        do {
            try World.start()
        } catch let error as MPICommunicator.LoadError {
            throw TrainingError(error.description)
        }
        // An experiment prints its tables and JSON on standard output from rank 0 alone.
        if command is ReproduceCommand, World.current.isDistributed, !World.current.isRoot {
            _ = freopen("/dev/null", "w", stdout)
        }
    }

    /// Reports `error` and exits. In a job of several processes rank 0 prints the message as one process does,
    /// another rank prefixes it with its rank, and the job ends at once (MPI_Abort), since the others would wait
    /// for this process in their next collective; an interruption (exit code 130 or 143, every process stopping
    /// after the same step) ends MPI normally instead.
    static func finish(_ error: Error) -> Never {
        let error = (error as? ConfigurationError).map { TrainingError(Flags.message($0)) as Error } ?? error
        let world = World.current
        guard world.isDistributed else {
            // Under mpirun (MPI not started, e.g. a refused command): the message in one write, so that mpirun
            // forwards it whole rather than interleaved with its own report.
            if World.launched != nil {
                let code = Distill.exitCode(for: error).rawValue
                FileHandle.standardError.write(Data((Distill.fullMessage(for: error) + "\n").utf8))
                Foundation.exit(code)
            }
            exit(withError: error)
        }
        let code = Distill.exitCode(for: error).rawValue
        if error is ExitCode, code == 128 + SIGINT || code == 128 + SIGTERM {
            World.finish()
            Foundation.exit(code)
        }
        let message = Distill.fullMessage(for: error)
        let text = world.isRoot ? message : "rank \(world.rank) of \(world.size): \(message)"
        FileHandle.standardError.write(Data((text + "\n").utf8))
        world.abort(code: code == 0 ? 1 : code)
    }
}

/// A command that runs as several processes under mpirun (the others refuse `-np` above 1).
protocol RunsUnderMPI {}
/// A `reproduce` experiment: every model trained by all processes, files and output from rank 0.
protocol ReproduceCommand: RunsUnderMPI {}

extension Train: RunsUnderMPI {}
extension DistillCommand: RunsUnderMPI {}
extension TeacherLogitsCommand: RunsUnderMPI {}
extension Reproduce.HintonMNISTCommand: ReproduceCommand {}
extension Reproduce.EnsembleCommand: ReproduceCommand {}
extension Reproduce.CNNCommand: ReproduceCommand {}
extension Reproduce.SpecialistsCommand: ReproduceCommand {}
extension Reproduce.OmittedClassCommand: ReproduceCommand {}
extension Reproduce.TemperatureSweepCommand: ReproduceCommand {}
extension Reproduce.SmallDataCommand: ReproduceCommand {}
