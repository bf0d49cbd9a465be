import ArgumentParser
import Foundation
import Distillation
import Optimizers

/// The training flags shared by `train` and `distill`.
struct TrainingOptions: ParsableArguments {
    // Numeric options parse `.unconditional` so that a negative value (`--learning-rate -1`) reaches validation and
    // gets "--learning-rate must be > 0, got -1.0" instead of ArgumentParser's misleading "Missing value".
    @Option(help: ArgumentHelp("The network: a named model (lenet5, resnet8, resnet20, any resnet<6n+2>) sized to the data, or a model description file (.json: input shape and layers). Without it, an MLP (--hidden).", valueName: "NAME|FILE.json"))
    var model: String?
    @Option(parsing: .unconditional, help: "The MLP's hidden layer sizes, comma-separated (e.g. 1200,1200; default 800,800).", transform: parseSizes)
    var hidden: [Int]?
    @Option(parsing: .unconditional, help: "Dropout probability on the input.") var inputDropout: Float = 0
    @Option(parsing: .unconditional, help: "Dropout probability after each hidden layer.") var hiddenDropout: Float = 0
    @Option(parsing: .unconditional, help: "Random shift of each training image by up to N pixels (0 = off).") var jitter: Int = 0
    @Option(parsing: .unconditional, help: "Max-norm constraint on each hidden unit's incoming weights (off when omitted).") var maxNorm: Float?
    @Option(parsing: .unconditional, help: "Training epochs.") var epochs: Int = 10
    @Option(parsing: .unconditional, help: "Examples per minibatch.") var batchSize: Int = 128
    @Option(help: "sgd, adam or adamw.") var optimizer: OptimizerKind = .sgd
    @Option(parsing: .unconditional, help: "Base learning rate.") var learningRate: Float = 0.05
    @Option(parsing: .unconditional, help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(help: ArgumentHelp("Raise SGD's momentum linearly from START (default 0.5) to --momentum over the first EPOCHS epochs.", valueName: "EPOCHS[:START]"))
    var momentumRamp: String?
    @Option(parsing: .unconditional, help: "Weight decay (L2 for SGD/Adam, decoupled for AdamW).") var weightDecay: Float = 0
    @Option(help: "Learning-rate schedule, stepped per epoch: cosine (annealed to 0 over --epochs, the default), constant, step:EPOCHS:GAMMA, warmup:EPOCHS[:cosine].")
    var schedule: String = "cosine"
    @Option(parsing: .unconditional, help: "Clip the global gradient norm to this value (off when omitted).") var clipGradNorm: Float?
    @Option(parsing: .unconditional, help: "Random seed (initialisation, batch order, dropout, jitter).") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @Option(parsing: .unconditional, help: ArgumentHelp("Under mpirun: gradient bucket size, each bucket summed over the processes during the backward pass (default 25; 0 = one sum after it).", valueName: "MiB"))
    var bucketMb: Double?
    @Option(parsing: .unconditional, help: "Training examples held out for model selection (0 = none; the test set is never used).")
    var validation: Int = 0
    @OptionGroup var data: DataOptions
    @OptionGroup var kernelOptions: KernelOptions

    func configuration() throws -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model = try modelConfiguration()
        c.data.jitter = jitter
        c.data.batchSize = batchSize
        c.data.validationCount = validation
        c.optimizer.kind = optimizer
        c.optimizer.learningRate = learningRate
        c.optimizer.momentum = momentum
        c.optimizer.nesterov = nesterov
        c.optimizer.momentumRamp = try momentumRamp.map(parseMomentumRamp)
        c.optimizer.weightDecay = weightDecay
        c.optimizer.schedule = try parseSchedule(schedule, epochs: epochs)
        c.optimizer.gradientClip = clipGradNorm
        c.optimizer.maxNorm = maxNorm
        c.epochs = epochs
        c.seed = seed
        c.runtime.threads = threads
        c.runtime.gradientBucketMegabytes = bucketMb
        do { try c.validate() } catch let error as ConfigurationError { throw TrainingError(Flags.message(error)) }
        return c
    }

    /// `--model` (a preset or a description file) or the MLP of `--hidden`.
    func modelConfiguration() throws -> ModelConfiguration {
        guard let model else {
            return .mlp(hidden: hidden ?? [800, 800], inputDropout: inputDropout, hiddenDropout: hiddenDropout)
        }
        if hidden != nil { throw TrainingError("--model and --hidden cannot be combined (--hidden sizes an MLP)") }
        if inputDropout != 0 || hiddenDropout != 0 {
            throw TrainingError("--input-dropout and --hidden-dropout apply to the MLP of --hidden; with --model put dropout layers in the description")
        }
        return try TrainingOptions.modelConfiguration(model, flag: "--model")
    }

    /// A preset name or a model description file (.json), as `flag` gives it.
    static func modelConfiguration(_ model: String, flag: String) throws -> ModelConfiguration {
        do { return try ModelConfiguration.named(model) } catch let error as TrainingError {
            throw TrainingError("\(flag) \(error.description)")
        }
    }

    mutating func validate() throws {
        do { _ = try configuration() } catch let error as TrainingError { throw ValidationError(error.description) }
    }
}

extension OptimizerKind: ExpressibleByArgument {}

func parseSizes(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    return try parts.map { part in
        guard let value = Int(part.trimmingCharacters(in: .whitespaces)), value > 0 else {
            throw ValidationError("--hidden expects positive layer sizes separated by commas (e.g. 1200,1200), got '\(text)'")
        }
        return value
    }
}

func parseMomentumRamp(_ text: String) throws -> MomentumRamp {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    if parts.count >= 1, parts.count <= 2, let epochs = Int(parts[0]) {
        if parts.count == 1 { return MomentumRamp(epochs: epochs) }
        if let start = Float(parts[1]) { return MomentumRamp(epochs: epochs, start: start) }
    }
    throw TrainingError("--momentum-ramp: expected EPOCHS or EPOCHS:START (e.g. 100:0.5), got '\(text)'")
}

func parseSchedule(_ text: String, epochs: Int) throws -> LearningRateSchedule {
    let parts = text.split(separator: ":").map(String.init)
    switch parts.first ?? "" {
    case "constant" where parts.count == 1: return .constant
    case "cosine" where parts.count == 1: return .cosine(totalEpochs: epochs, minimum: 0)
    case "step" where parts.count == 3:
        if let size = Int(parts[1]), let gamma = Float(parts[2]) { return .step(stepSize: size, gamma: gamma) }
    case "warmup" where parts.count >= 2:
        if let warm = Int(parts[1]) {
            let rest = parts.count > 2 ? try parseSchedule(parts[2...].joined(separator: ":"), epochs: epochs - warm) : .constant
            return .warmup(epochs: warm, startFactor: 0.1, then: rest)
        }
    default: break
    }
    throw TrainingError("--schedule: expected constant, cosine, step:EPOCHS:GAMMA or warmup:EPOCHS[:cosine], got '\(text)'")
}

import Foundation

/// Flags for resumable runs (`train`, `distill`).
struct ResumeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The run directory: configuration and its hash, command line, per-epoch metrics (JSON lines), final report and the model (default: the output's path with .run instead of .safetensors).", valueName: "dir"))
    var runDir: String?
    @Option(help: ArgumentHelp("Write the training state to <output>.state every N batches and at the end of every epoch, so a killed run can be resumed (the file is removed when the run finishes).", valueName: "N"))
    var checkpointEvery: Int?
    @Flag(help: "Continue the run saved in <output>.state (by Ctrl-C, SIGTERM or --checkpoint-every); every other flag must be the same as before.")
    var resume = false

    mutating func validate() throws {
        if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be >= 1, got \(n)") }
    }

    /// `<output>.state`, after checking it exists with --resume and does not exist without it.
    func checkStateFile(output: String) throws -> URL {
        let url = URL(fileURLWithPath: output + ".state")
        let exists = FileManager.default.fileExists(atPath: url.path)
        if resume && !exists { throw TrainingError("\(url.path) does not exist; nothing to resume (run without --resume)") }
        if !resume && exists {
            throw TrainingError("\(url.path) exists (an interrupted run); add --resume to continue it, or delete the file to start over")
        }
        return url
    }

    /// Prints the resume hint and exits with 128 + the signal (130 for SIGINT, 143 for SIGTERM).
    func exitInterrupted(epoch: Int, batch: Int, signal: Int32) throws -> Never {
        FileHandle.standardError.write(Data("interrupted at epoch \(epoch), batch \(batch); resume with the same command plus --resume\n".utf8))
        throw ExitCode(128 + (signal == 0 ? SIGINT : signal))
    }
}
