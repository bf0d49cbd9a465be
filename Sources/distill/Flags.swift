import Distillation

/// The command line's names for configuration fields: the library reports a bad value by its field path
/// (`optimizer.learningRate must be > 0, got -1.0`), the command line by the flag that set it.
enum Flags {
    static let byField: [String: String] = [
        "model.hidden": "--hidden", "model.inputDropout": "--input-dropout", "model.hiddenDropout": "--hidden-dropout",
        "optimizer.learningRate": "--learning-rate", "optimizer.momentum": "--momentum", "optimizer.nesterov": "--nesterov",
        "optimizer.weightDecay": "--weight-decay", "optimizer.gradientClip": "--clip-grad-norm", "optimizer.maxNorm": "--max-norm",
        "optimizer.schedule": "--schedule", "optimizer.momentumRamp": "--momentum-ramp",
        "data.batchSize": "--batch-size", "data.jitter": "--jitter", "data.validationCount": "--validation",
        "runtime.threads": "--threads", "runtime.gradientBucketMegabytes": "--bucket-mb", "epochs": "--epochs", "seed": "--seed",
        "loss.temperature": "--temperature", "loss.hardWeight": "--hard-weight", "loss.softWeight": "--soft-weight",
        "loss.missingMass": "--missing-mass",
        "store.topK": "--top-k",
    ]

    /// The error as the command line says it: the flag, then the problem.
    static func message(_ error: ConfigurationError) -> String {
        "\(byField[error.field] ?? error.field) \(error.problem)"
    }
}
