import Foundation
import TensorCore
import NeuralNet
import Optimizers

/// Which optimizer a run uses.
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case sgd, adam, adamw
}

/// A linear rise of SGD's momentum from `start` to the configured momentum over `epochs` epochs, stepped per epoch:
/// epoch e (0-based) uses start + (final - start) * min(e, epochs) / epochs. With PyTorch's momentum (no dampening) the
/// step's long-run size lr / (1 - momentum) grows with it, so the ramp is also a warm-up.
public struct MomentumRamp: Codable, Equatable, Sendable {
    public var epochs: Int
    public var start: Float
    public init(epochs: Int, start: Float = 0.5) {
        self.epochs = epochs
        self.start = start
    }
    public func momentum(epoch: Int, final: Float) -> Float {
        let t = Double(Swift.min(Swift.max(epoch, 0), epochs)) / Double(Swift.max(epochs, 1))
        return Float(Double(start) + (Double(final) - Double(start)) * t)
    }
}

/// Everything that defines a training run of a multilayer perceptron, checked once by `validate()`.
///
/// The network is `784 -> hidden[0] -> ... -> classes` with ReLU after every hidden layer, dropout with
/// `inputDropout` on the input and `hiddenDropout` after each hidden ReLU (layers with probability 0 are left out),
/// exactly the nn.Sequential that `architecture` lists.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var hidden: [Int] = [800, 800]
    public var inputDropout: Float = 0
    public var hiddenDropout: Float = 0
    /// Random shift of each training image by up to this many pixels in x and y (zero fill); 0 = off.
    public var jitter: Int = 0
    /// Max-norm constraint on each hidden unit's incoming weight vector; nil = off.
    public var maxNorm: Float? = nil
    public var epochs: Int = 10
    public var batchSize: Int = 128
    public var optimizer: OptimizerKind = .sgd
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    public var nesterov: Bool = false
    public var weightDecay: Float = 0
    public var schedule: LearningRateSchedule = .constant
    /// SGD's momentum rising linearly over the first epochs (Hinton et al. 2012, appendix A); nil = `momentum` throughout.
    public var momentumRamp: MomentumRamp? = nil
    /// Global gradient-norm clipping; nil = off.
    public var gradientClip: Float? = nil
    public var seed: UInt64 = 0
    public var threads: Int = 2
    /// With `threads` == 2 and a teacher that runs a model per batch, run the teacher's forward pass for the next
    /// batch on the second core (one thread) while the student trains with its products split in parts, run in
    /// turn on its core until the teacher is done and on both cores after (`BackgroundWork`). Other thread counts,
    /// and off: teacher and student take turns, each using every thread. Both are reproducible; they can differ in
    /// the last bits.
    /// nil means on (the default; optional so that state files written before this setting still load).
    public var overlapTeacher: Bool? = nil
    /// The BLAS library the run's products use: nil for the linked OpenBLAS (Accelerate on Apple; also what state
    /// files from before this setting mean), "mkl" for `--blas mkl`. Part of the configuration so that a run resumes
    /// only on the library it started with (the two round differently) and experiment caches keep them apart.
    public var blas: String? = nil
    /// `blas` for the library selected in this process.
    public static var activeBLAS: String? { BLASLibrary.active == .mkl ? BLASLibrary.Active.mkl.rawValue : nil }
    /// How the forward pass multiplies mostly-zero inputs (the images): nil for the dense BLAS product (`--dense-inputs`,
    /// a CPU without AVX-512 or AVX2, and what state files from before this setting mean), "sparse" for `SparseKernels`. Part
    /// of the configuration for the same reasons as `blas`.
    public var inputKernels: String? = nil
    /// `inputKernels` for this process's setting (`SparseKernels.active`).
    public static var activeInputKernels: String? { SparseKernels.active ? "sparse" : nil }
    /// Whether this run, with a teacher that does (or does not) run a model per batch, overlaps it with the student.
    public func overlapsTeacher(computingPerBatch: Bool) -> Bool {
        TrainingConfiguration.overlapsTeacher(enabled: overlapTeacher ?? true, threads: threads, computingPerBatch: computingPerBatch)
    }
    /// The overlap rule (also the bench's): enabled, exactly two threads, and a teacher that runs a model per batch.
    public static func overlapsTeacher(enabled: Bool, threads: Int, computingPerBatch: Bool) -> Bool {
        enabled && threads == 2 && computingPerBatch
    }
    /// Examples held out of the training set for model selection (never the test set); 0 = none.
    public var validationCount: Int = 0

    public init() {}

    /// The settings that differ between two configurations, as `name: saved X, now Y` (JSON values; "unset" for a
    /// setting a configuration does not have, e.g. `blas` on OpenBLAS), for the message that refuses a resume.
    public static func differences(saved: TrainingConfiguration, now: TrainingConfiguration) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func fields(_ c: TrainingConfiguration) -> [String: String] {
            guard let data = try? encoder.encode(c),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [:] }
            var out: [String: String] = [:]
            for (key, value) in object {
                let encoded = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]))
                out[key] = encoded.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
            }
            return out
        }
        let a = fields(saved), b = fields(now)
        let changed = Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }
        guard !changed.isEmpty else { return "no setting differs in its JSON form" }
        return changed.map { "\($0): saved \(a[$0] ?? "unset"), now \(b[$0] ?? "unset")" }.joined(separator: "; ")
    }

    /// Throws a `TrainingError` naming the flag and the expected range for the first bad value.
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws { if !ok { throw TrainingError(message()) } }
        for h in hidden { try check(h > 0 && h <= 1 << 16, "--hidden: every layer size must be in 1...65536, got \(h)") }
        try check(inputDropout.isFinite && inputDropout >= 0 && inputDropout < 1, "--input-dropout must be in [0, 1), got \(inputDropout)")
        try check(hiddenDropout.isFinite && hiddenDropout >= 0 && hiddenDropout < 1, "--hidden-dropout must be in [0, 1), got \(hiddenDropout)")
        try check(jitter >= 0 && jitter <= 14, "--jitter must be in 0...14 pixels, got \(jitter)")
        if let maxNorm { try check(maxNorm.isFinite && maxNorm > 0, "--max-norm must be > 0, got \(maxNorm)") }
        try check(epochs >= 1 && epochs <= 100_000, "--epochs must be >= 1, got \(epochs)")
        try check(batchSize >= 1 && batchSize <= 1 << 20, "--batch-size must be >= 1, got \(batchSize)")
        try check(learningRate.isFinite && learningRate > 0, "--learning-rate must be > 0, got \(learningRate)")
        try check(momentum.isFinite && momentum >= 0 && momentum < 1, "--momentum must be in [0, 1), got \(momentum)")
        try check(!nesterov || momentum > 0, "--nesterov needs --momentum > 0")
        try check(weightDecay.isFinite && weightDecay >= 0, "--weight-decay must be >= 0, got \(weightDecay)")
        if let gradientClip { try check(gradientClip.isFinite && gradientClip > 0, "--clip-grad-norm must be > 0, got \(gradientClip)") }
        try check(threads >= 1 && threads <= 256, "--threads must be in 1...256, got \(threads)")
        try check(validationCount >= 0, "--validation must be >= 0, got \(validationCount)")
        if let problem = schedule.validationError() { throw TrainingError("--schedule: \(problem)") }
        if let ramp = momentumRamp {
            try check(optimizer == .sgd, "--momentum-ramp needs --optimizer sgd")
            try check(ramp.epochs >= 1, "--momentum-ramp: epochs must be >= 1, got \(ramp.epochs)")
            try check(ramp.start.isFinite && ramp.start >= 0 && ramp.start <= momentum,
                      "--momentum-ramp: the starting momentum must be in [0, --momentum], got \(ramp.start)")
        }
    }

    /// The layer list (PyTorch nn.Sequential order) for `inputCount` features and `classCount` classes.
    public func architecture(inputCount: Int, classCount: Int) -> [LayerSpecification] {
        var layers: [LayerSpecification] = []
        if inputDropout > 0 { layers.append(.dropout(probability: inputDropout)) }
        var previous = inputCount
        for h in hidden {
            layers.append(.linear(inputCount: previous, outputCount: h))
            layers.append(.relu)
            if hiddenDropout > 0 { layers.append(.dropout(probability: hiddenDropout)) }
            previous = h
        }
        layers.append(.linear(inputCount: previous, outputCount: classCount))
        return layers
    }

    /// SGD's momentum during epoch `epoch` (0-based).
    public func momentum(epoch: Int) -> Float {
        momentumRamp?.momentum(epoch: epoch, final: momentum) ?? momentum
    }

    /// The network for inputs of shape `inputShape` and `classCount` classes.
    public func modelDescription(inputShape: [Int], classCount: Int) -> ModelDescription {
        ModelDescription(inputShape: inputShape,
                         specifications: architecture(inputCount: inputShape.reduce(1, *), classCount: classCount))
    }

    /// A new optimizer of the configured kind.
    public func makeOptimizer() -> Optimizer {
        switch optimizer {
        case .sgd:
            return SGD(learningRate: learningRate, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
        case .adam:
            return Adam(learningRate: learningRate, weightDecay: weightDecay)
        case .adamw:
            return Adam.adamW(learningRate: learningRate, weightDecay: weightDecay)
        }
    }
}
