import Foundation
import TensorCore
import NeuralNet
import Optimizers
import Checkpoints

/// Which optimizer a run uses.
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case sgd, adam, adamw
}

/// A configuration value out of range: the field's path in the configuration (`optimizer.learningRate`) and what
/// was expected. Front ends name the field their own way (the command line maps paths to its flags).
public struct ConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Dotted path of the field in ``TrainingConfiguration`` (or ``DistillationLossConfiguration``, under `loss.`).
    public let field: String
    /// What is wrong, starting with the verb: "must be > 0, got -1.0".
    public let problem: String

    public init(field: String, _ problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(field) \(problem)" }
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

/// The network a run trains.
public struct ModelConfiguration: Codable, Equatable, Sendable {
    /// A multilayer perceptron `inputs -> hidden[0] -> ... -> classes`, ReLU after every hidden layer, dropout with
    /// `inputDropout` on the input and `hiddenDropout` after each hidden ReLU (layers with probability 0 are left
    /// out): exactly the nn.Sequential that its description lists.
    public struct MLP: Codable, Equatable, Sendable {
        public var hidden: [Int] = [800, 800]
        public var inputDropout: Float = 0
        public var hiddenDropout: Float = 0
        public init(hidden: [Int] = [800, 800], inputDropout: Float = 0, hiddenDropout: Float = 0) {
            self.hidden = hidden
            self.inputDropout = inputDropout
            self.hiddenDropout = hiddenDropout
        }
    }

    public enum Architecture: Codable, Equatable, Sendable {
        /// An MLP sized to the data (inputs and classes).
        case mlp(MLP)
        /// Any network of the supported layers; its input shape and output size must fit the data.
        case described(ModelDescription)
        /// A named network sized to the data (``ModelPresets``: `lenet5`, `resnet8`, ...).
        case preset(String)
    }

    public var architecture: Architecture = .mlp(MLP())

    public init(architecture: Architecture = .mlp(MLP())) { self.architecture = architecture }

    /// An MLP configuration.
    public static func mlp(hidden: [Int], inputDropout: Float = 0, hiddenDropout: Float = 0) -> ModelConfiguration {
        ModelConfiguration(architecture: .mlp(MLP(hidden: hidden, inputDropout: inputDropout, hiddenDropout: hiddenDropout)))
    }

    /// A named network (``ModelPresets``: `lenet5`, `resnet8`, ...) or a model description file (`.json`), checked.
    /// Throws a ``TrainingError`` whose text follows the name of the option that gave `value` ("must be one of ...",
    /// "net.json: cannot read the file ...").
    public static func named(_ value: String) throws -> ModelConfiguration {
        guard value.lowercased().hasSuffix(".json") else {
            let configuration = ModelConfiguration(architecture: .preset(value))
            do { try configuration.validate() } catch let error as ConfigurationError { throw TrainingError(error.problem) }
            return configuration
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: value)) } catch {
            throw TrainingError("\(value): cannot read the file (\(error.localizedDescription))")
        }
        let description: ModelDescription
        do { description = try JSONDecoder().decode(ModelDescription.self, from: data) } catch {
            throw TrainingError("\(value): not a model description (expected {\"inputShape\": [...], \"layers\": [...]}): \(ModelCheckpoint.decodingMessage(error))")
        }
        do { _ = try description.plan() } catch let error as ModelDescriptionError {
            throw TrainingError("\(value): \(error.description)")
        }
        return ModelConfiguration(architecture: .described(description))
    }

    /// The MLP settings, when the architecture is one (nil for a described network).
    public var mlp: MLP? {
        get { if case let .mlp(m) = architecture { return m } else { return nil } }
        set { if let newValue { architecture = .mlp(newValue) } }
    }

    /// The network for inputs of per-example shape `inputShape` and `classCount` classes; throws a
    /// ``ModelDescriptionError`` when a preset does not fit the data.
    public func description(inputShape: [Int], classCount: Int) throws -> ModelDescription {
        switch architecture {
        case let .described(description):
            return description
        case let .preset(name):
            return try ModelPresets.description(named: name, inputShape: inputShape, classCount: classCount)
        case let .mlp(m):
            var layers: [LayerSpecification] = []
            if m.inputDropout > 0 { layers.append(.dropout(probability: m.inputDropout)) }
            var previous = inputShape.reduce(1, *)
            for h in m.hidden {
                layers.append(.linear(inputCount: previous, outputCount: h))
                layers.append(.relu)
                if m.hiddenDropout > 0 { layers.append(.dropout(probability: m.hiddenDropout)) }
                previous = h
            }
            layers.append(.linear(inputCount: previous, outputCount: classCount))
            return ModelDescription(inputShape: [inputShape.reduce(1, *)], specifications: layers)
        }
    }

    public func validate() throws {
        switch architecture {
        case let .mlp(m):
            for h in m.hidden where !(h > 0 && h <= 1 << 16) {
                throw ConfigurationError(field: "model.hidden", "must list layer sizes in 1...65536, got \(h)")
            }
            guard m.inputDropout.isFinite && m.inputDropout >= 0 && m.inputDropout < 1 else {
                throw ConfigurationError(field: "model.inputDropout", "must be in [0, 1), got \(m.inputDropout)")
            }
            guard m.hiddenDropout.isFinite && m.hiddenDropout >= 0 && m.hiddenDropout < 1 else {
                throw ConfigurationError(field: "model.hiddenDropout", "must be in [0, 1), got \(m.hiddenDropout)")
            }
        case let .described(description):
            do { _ = try description.plan() } catch let error as ModelDescriptionError {
                throw ConfigurationError(field: "model.description", "is not a valid network: \(error.description)")
            }
        case let .preset(name):
            guard ModelPresets.isKnown(name) else {
                throw ConfigurationError(field: "model.preset", "must be one of \(ModelPresets.names.joined(separator: ", ")) (or resnet<6n+2>), got '\(name)'")
            }
        }
    }
}

/// How the weights are updated: the optimizer, its learning-rate schedule and momentum ramp, and the constraints
/// applied after each step.
public struct OptimizerConfiguration: Codable, Equatable, Sendable {
    public var kind: OptimizerKind = .sgd
    public var learningRate: Float = 0.05
    /// SGD's momentum (PyTorch's convention: no dampening).
    public var momentum: Float = 0.9
    public var nesterov: Bool = false
    /// L2 for SGD and Adam, decoupled for AdamW.
    public var weightDecay: Float = 0
    /// Stepped per epoch; nil (the default) is cosine annealing from the learning rate to 0 over the run's epochs.
    public var schedule: LearningRateSchedule? = nil
    /// SGD's momentum rising linearly over the first epochs (Hinton et al. 2012, appendix A); nil = `momentum`
    /// throughout.
    public var momentumRamp: MomentumRamp? = nil
    /// Global gradient-norm clipping; nil = off.
    public var gradientClip: Float? = nil
    /// Max-norm constraint on each hidden unit's incoming weight vector (every layer with unit weights but the
    /// output layer); nil = off.
    public var maxNorm: Float? = nil

    public init() {}

    func validate() throws {
        func check(_ ok: Bool, _ field: String, _ problem: @autoclosure () -> String) throws {
            if !ok { throw ConfigurationError(field: "optimizer.\(field)", problem()) }
        }
        try check(learningRate.isFinite && learningRate > 0, "learningRate", "must be > 0, got \(learningRate)")
        try check(momentum.isFinite && momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1), got \(momentum)")
        try check(!nesterov || momentum > 0, "nesterov", "needs a momentum > 0")
        try check(weightDecay.isFinite && weightDecay >= 0, "weightDecay", "must be >= 0, got \(weightDecay)")
        if let gradientClip { try check(gradientClip.isFinite && gradientClip > 0, "gradientClip", "must be > 0, got \(gradientClip)") }
        if let maxNorm { try check(maxNorm.isFinite && maxNorm > 0, "maxNorm", "must be > 0, got \(maxNorm)") }
        if let problem = schedule?.validationError() { throw ConfigurationError(field: "optimizer.schedule", "is invalid: \(problem)") }
        if let ramp = momentumRamp {
            try check(kind == .sgd, "momentumRamp", "needs the SGD optimizer")
            try check(ramp.epochs >= 1, "momentumRamp", "epochs must be >= 1, got \(ramp.epochs)")
            try check(ramp.start.isFinite && ramp.start >= 0 && ramp.start <= momentum, "momentumRamp",
                      "starting momentum must be in [0, momentum], got \(ramp.start)")
        }
    }

    /// A new optimizer of the configured kind.
    public func makeOptimizer() -> Optimizer {
        switch kind {
        case .sgd:
            return SGD(learningRate: learningRate, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
        case .adam:
            return Adam(learningRate: learningRate, weightDecay: weightDecay)
        case .adamw:
            return Adam.adamW(learningRate: learningRate, weightDecay: weightDecay)
        }
    }
}

/// How the training examples are fed: batches, augmentation and the validation hold-out.
public struct DataConfiguration: Codable, Equatable, Sendable {
    public var batchSize: Int = 128
    /// Random shift of each training image by up to this many pixels in x and y (zero fill); 0 = off. Needs
    /// image-shaped samples.
    public var jitter: Int = 0
    /// Examples held out of the training set for model selection (never the test set); 0 = none.
    public var validationCount: Int = 0

    public init() {}

    func validate() throws {
        guard batchSize >= 1 && batchSize <= 1 << 20 else { throw ConfigurationError(field: "data.batchSize", "must be in 1...1048576, got \(batchSize)") }
        guard jitter >= 0 && jitter <= 14 else { throw ConfigurationError(field: "data.jitter", "must be in 0...14 pixels, got \(jitter)") }
        guard validationCount >= 0 else { throw ConfigurationError(field: "data.validationCount", "must be >= 0, got \(validationCount)") }
    }
}

/// Where and how the arithmetic runs. Part of a run's identity: a run resumes only on the library and kernels it
/// started with (they round differently), and experiment caches keep them apart.
public struct RuntimeConfiguration: Codable, Equatable, Sendable {
    /// The BLAS library of the matrix products.
    public enum BLAS: String, Codable, Sendable {
        /// The linked OpenBLAS (Accelerate on Apple platforms).
        case openblas
        /// Intel oneMKL, loaded at run time.
        case mkl
    }

    /// How a layer multiplies mostly-zero inputs (images).
    public enum InputKernels: String, Codable, Sendable {
        /// Every product in BLAS (also what a CPU without AVX-512 or AVX2 does).
        case dense
        /// `SparseKernels`: only the nonzero inputs are multiplied.
        case sparse
    }

    public var threads: Int = 2
    public var blas: BLAS = .openblas
    public var inputKernels: InputKernels = .dense
    /// The convolution kernels (``Convolution/Engine``; nil in files written before the choice existed). Engines
    /// differ in the last bits, like BLAS libraries.
    public var convolutions: Convolution.Engine?
    /// With two threads and a teacher that runs a model per batch, the teacher's pass for the next batch runs on the
    /// second core while the student trains (`BackgroundWork`); off: they take turns, each on every thread. Both are
    /// reproducible; they can differ in the last bits.
    public var overlapTeacher: Bool = true
    /// Data-parallel jobs: the size of a gradient bucket in MiB (``GradientBuckets``), summed over the processes while
    /// the backward pass runs; 0 = every gradient in one sum after the backward pass; nil = 25 MiB. The weights do not
    /// depend on it with two processes and may differ in the last bits with more.
    public var gradientBucketMegabytes: Double?

    public init() {}

    /// ``gradientBucketMegabytes`` in bytes (nil: one bucket).
    public var gradientBucketCapacity: Int? {
        guard let megabytes = gradientBucketMegabytes else { return GradientBuckets.defaultCapacity }
        return megabytes == 0 ? nil : max(1, Int(megabytes * 1_048_576))
    }

    /// The library and kernels selected in this process (`BLASLibrary.active`, `SparseKernels.active`,
    /// `Convolution.engine`), threads 2.
    public static var active: RuntimeConfiguration {
        var r = RuntimeConfiguration()
        r.blas = BLASLibrary.active == .mkl ? .mkl : .openblas
        r.inputKernels = SparseKernels.active ? .sparse : .dense
        r.convolutions = Convolution.engine
        return r
    }

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ConfigurationError(field: "runtime.threads", "must be in 1...256, got \(threads)") }
        if let megabytes = gradientBucketMegabytes, !(megabytes >= 0 && megabytes <= 65_536) {
            throw ConfigurationError(field: "runtime.gradientBucketMegabytes", "must be in 0...65536 (MiB; 0 = one bucket), got \(megabytes)")
        }
    }
}

/// Everything that defines a training run, by concern, checked once by `validate()`. Codable: state files, model
/// files and experiment caches record it as JSON.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var model = ModelConfiguration()
    public var optimizer = OptimizerConfiguration()
    public var data = DataConfiguration()
    public var runtime = RuntimeConfiguration()
    public var epochs: Int = 10
    /// Feeds weight initialisation, batch order, dropout and jitter.
    public var seed: UInt64 = 0

    public init() {}

    /// The learning-rate schedule in force: the configured one, or cosine annealing to 0 over `epochs`.
    public var schedule: LearningRateSchedule { optimizer.schedule ?? .cosine(totalEpochs: epochs, minimum: 0) }

    /// SGD's momentum during epoch `epoch` (0-based).
    public func momentum(epoch: Int) -> Float {
        optimizer.momentumRamp?.momentum(epoch: epoch, final: optimizer.momentum) ?? optimizer.momentum
    }

    /// Whether this run, with a teacher that does (or does not) run a model per batch, overlaps it with the student.
    public func overlapsTeacher(computingPerBatch: Bool) -> Bool {
        TrainingConfiguration.overlapsTeacher(enabled: runtime.overlapTeacher, threads: runtime.threads, computingPerBatch: computingPerBatch)
    }

    /// The overlap rule (also the bench's): enabled, exactly two threads, and a teacher that runs a model per batch.
    public static func overlapsTeacher(enabled: Bool, threads: Int, computingPerBatch: Bool) -> Bool {
        enabled && threads == 2 && computingPerBatch
    }

    /// Throws a ``ConfigurationError`` naming the first field out of range.
    public func validate() throws {
        guard epochs >= 1 else { throw ConfigurationError(field: "epochs", "must be >= 1, got \(epochs)") }
        guard epochs <= 100_000 else { throw ConfigurationError(field: "epochs", "must be <= 100000, got \(epochs)") }
        try model.validate()
        try optimizer.validate()
        try data.validate()
        try runtime.validate()
    }

    /// The network for inputs of per-example shape `inputShape` and `classCount` classes.
    public func modelDescription(inputShape: [Int], classCount: Int) throws -> ModelDescription {
        try model.description(inputShape: inputShape, classCount: classCount)
    }

    /// The settings that differ between two configurations, as `path: saved X, now Y` (JSON values), for the message
    /// that refuses a resume.
    public static func differences(saved: TrainingConfiguration, now: TrainingConfiguration) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func leaves(_ c: TrainingConfiguration) -> [String: String] {
            guard let data = try? encoder.encode(c), let object = try? JSONSerialization.jsonObject(with: data) else { return [:] }
            var out: [String: String] = [:]
            func walk(_ value: Any, _ path: String) {
                if let dictionary = value as? [String: Any], !dictionary.isEmpty {
                    for (key, inner) in dictionary { walk(inner, path.isEmpty ? key : "\(path).\(key)") }
                } else {
                    let encoded = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]))
                    out[path] = encoded.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
                }
            }
            walk(object, "")
            return out
        }
        let a = leaves(saved), b = leaves(now)
        let changed = Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }
        guard !changed.isEmpty else { return "no setting differs in its JSON form" }
        return changed.map { "\($0): saved \(a[$0] ?? "unset"), now \(b[$0] ?? "unset")" }.joined(separator: "; ")
    }

    // MARK: Codable (and the first, flat format)

    enum CodingKeys: String, CodingKey {
        case model, optimizer, data, runtime, epochs, seed
    }

    /// Keys of the first, flat format (state files and model files written before the configuration was split by
    /// concern); read so those runs still resume.
    enum FlatKeys: String, CodingKey {
        case hidden, inputDropout, hiddenDropout, jitter, maxNorm, epochs, batchSize, optimizer, learningRate, momentum
        case nesterov, weightDecay, schedule, momentumRamp, gradientClip, seed, threads, overlapTeacher, blas
        case inputKernels, validationCount
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if c.contains(.model) || c.contains(.runtime) || c.contains(.data) {
            model = try c.decode(ModelConfiguration.self, forKey: .model)
            optimizer = try c.decode(OptimizerConfiguration.self, forKey: .optimizer)
            data = try c.decode(DataConfiguration.self, forKey: .data)
            runtime = try c.decode(RuntimeConfiguration.self, forKey: .runtime)
            epochs = try c.decode(Int.self, forKey: .epochs)
            seed = try c.decode(UInt64.self, forKey: .seed)
            return
        }
        let f = try decoder.container(keyedBy: FlatKeys.self)
        model = .mlp(hidden: try f.decode([Int].self, forKey: .hidden), inputDropout: try f.decode(Float.self, forKey: .inputDropout),
                     hiddenDropout: try f.decode(Float.self, forKey: .hiddenDropout))
        optimizer.kind = try f.decode(OptimizerKind.self, forKey: .optimizer)
        optimizer.learningRate = try f.decode(Float.self, forKey: .learningRate)
        optimizer.momentum = try f.decode(Float.self, forKey: .momentum)
        optimizer.nesterov = try f.decode(Bool.self, forKey: .nesterov)
        optimizer.weightDecay = try f.decode(Float.self, forKey: .weightDecay)
        optimizer.schedule = try f.decode(LearningRateSchedule.self, forKey: .schedule)
        optimizer.momentumRamp = try f.decodeIfPresent(MomentumRamp.self, forKey: .momentumRamp)
        optimizer.gradientClip = try f.decodeIfPresent(Float.self, forKey: .gradientClip)
        optimizer.maxNorm = try f.decodeIfPresent(Float.self, forKey: .maxNorm)
        data.batchSize = try f.decode(Int.self, forKey: .batchSize)
        data.jitter = try f.decode(Int.self, forKey: .jitter)
        data.validationCount = try f.decode(Int.self, forKey: .validationCount)
        runtime.threads = try f.decode(Int.self, forKey: .threads)
        runtime.overlapTeacher = try f.decodeIfPresent(Bool.self, forKey: .overlapTeacher) ?? true
        runtime.blas = try f.decodeIfPresent(String.self, forKey: .blas) == "mkl" ? .mkl : .openblas
        runtime.inputKernels = try f.decodeIfPresent(String.self, forKey: .inputKernels) == "sparse" ? .sparse : .dense
        epochs = try f.decode(Int.self, forKey: .epochs)
        seed = try f.decode(UInt64.self, forKey: .seed)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(data, forKey: .data)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(seed, forKey: .seed)
    }
}
