import ArgumentParser
import Foundation
import Distillation
import Distributed
import Datasets
import DataFormats
import Checkpoints
import TensorIO
import NeuralNet

/// The loss flags of `distill distill` and the experiments.
struct LossOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Softmax temperature T of the soft targets (the saved student runs at T = 1).") var temperature: Float = 20
    @Option(parsing: .unconditional, help: "Weight of the cross-entropy with the true labels.") var hardWeight: Float = 0.5
    @Option(parsing: .unconditional, help: "Weight of the soft-target term (multiplied by T^2 unless --no-temperature-scaling).") var softWeight: Float = 0.5
    @Flag(help: "Do not multiply the soft term by T^2 (the paper's advice is to multiply).") var noTemperatureScaling = false
    @Option(parsing: .unconditional, help: ArgumentHelp("With a top-k teacher store: how the classes it did not keep enter the soft term.",
            discussion: "renormalize: they get probability 0 (DistillKit's zero). uniform: the store's recorded missing probability is spread evenly over them. bucket: that probability is one bucket compared with the student's mass on them (DistillKit's symmetric_uniform)."))
    var missingMass: MissingMass = .renormalize

    var configuration: DistillationLossConfiguration {
        DistillationLossConfiguration(temperature: temperature, hardWeight: hardWeight, softWeight: softWeight,
                                      scaleSoftBySquaredTemperature: !noTemperatureScaling, missingMass: missingMass)
    }

    func validate() throws {
        do { try configuration.validate() } catch let error as ConfigurationError { throw ValidationError(Flags.message(error)) }
    }
}

/// Decoupled KD and feature distillation (`distill distill`).
struct FeatureOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The logit term: hinton (soft targets at T, the default) or dkd (Decoupled KD, Zhao et al. 2022: alpha * TCKD + beta * NCKD at T, plus --hard-weight * CE; --soft-weight is unused).", valueName: "hinton|dkd"))
    var logitLoss: String = "hinton"
    @Option(parsing: .unconditional, help: "DKD: weight of the target-class term.") var dkdAlpha: Float = 1
    @Option(parsing: .unconditional, help: "DKD: weight of the non-target-class term.") var dkdBeta: Float = 8
    @Option(parsing: .unconditional, help: ArgumentHelp("DKD: warm-up epochs; epoch e (from 1) weighs the DKD term min(e / N, 1), as mdistiller's DKD.WARMUP (20 of its 240 CIFAR epochs). 0: full weight from the start.", valueName: "N"))
    var dkdWarmup: Int = 0
    @Option(help: ArgumentHelp("FitNets hint: student layer S's output, through a learned regressor (1x1 convolution or linear), matched to teacher layer T's by mean squared error, weighted by W (default 100). Layers are top-level indices (0-based, the output after that layer). Repeatable.", valueName: "S:T[:W]"))
    var hint: [String] = []
    @Option(help: ArgumentHelp("Attention transfer: the normalised attention maps (sum over channels of squares) of student layer S and teacher layer T (same height and width) matched by mean squared error, weighted by W (default 1000). Repeatable.", valueName: "S:T[:W]"))
    var attention: [String] = []
    @Option(help: ArgumentHelp("Similarity-preserving KD (Tung and Mori 2019): the batch's similarity matrices (each example's features dotted with every other's, rows L2-normalised) of student layer S and teacher layer T matched by mean squared error, weighted by W (default 3000); any two layers. Repeatable.", valueName: "S:T[:W]"))
    var similarity: [String] = []

    var decoupled: DecoupledKDWeights? {
        logitLoss == "dkd" ? DecoupledKDWeights(alpha: dkdAlpha, beta: dkdBeta, warmupEpochs: dkdWarmup) : nil
    }

    var terms: [FeatureTerm] {
        (try? parsedTerms()) ?? []
    }

    func parsedTerms() throws -> [FeatureTerm] {
        func parse(_ text: String, _ kind: FeatureTerm.Kind) throws -> FeatureTerm {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 3, let s = Int(parts[0]), let t = Int(parts[1]), s >= 0, t >= 0 else {
                throw ValidationError("--\(kind.rawValue) expects STUDENT_LAYER:TEACHER_LAYER[:WEIGHT] (e.g. 3:9 or 1:4:1000), got '\(text)'")
            }
            var weight = FeatureTerm.defaultWeight(kind)
            if parts.count == 3 {
                guard let w = Float(parts[2]), w.isFinite, w >= 0 else {
                    throw ValidationError("--\(kind.rawValue) '\(text)': the weight must be a finite number >= 0")
                }
                weight = w
            }
            return FeatureTerm(kind: kind, studentLayer: s, teacherLayer: t, weight: weight)
        }
        return try hint.map { try parse($0, .hint) } + attention.map { try parse($0, .attention) }
            + similarity.map { try parse($0, .similarity) }
    }

    func validate() throws {
        guard ["hinton", "dkd"].contains(logitLoss) else { throw ValidationError("--logit-loss must be hinton or dkd, got '\(logitLoss)'") }
        for (flag, v) in [("--dkd-alpha", dkdAlpha), ("--dkd-beta", dkdBeta)] where !(v.isFinite && v >= 0) {
            throw ValidationError("\(flag) must be a finite number >= 0, got \(v)")
        }
        guard dkdWarmup >= 0 else { throw ValidationError("--dkd-warmup must be a number of epochs >= 0, got \(dkdWarmup)") }
        if dkdWarmup > 0 && logitLoss != "dkd" { throw ValidationError("--dkd-warmup needs --logit-loss dkd") }
        _ = try parsedTerms()
    }
}

extension MissingMass: ExpressibleByArgument {}

/// The documented spellings are `meanProbabilities` / `meanLogits` (the case names); the raw values
/// (`mean-probabilities` / `mean-logits`, used in JSON) are accepted too.
extension EnsembleTeacher.Combination: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "meanProbabilities", "mean-probabilities": self = .meanProbabilities
        case "meanLogits", "mean-logits": self = .meanLogits
        default: return nil
        }
    }
    public var defaultValueDescription: String { self == .meanProbabilities ? "meanProbabilities" : "meanLogits" }
    public static var allValueStrings: [String] { ["meanProbabilities", "meanLogits"] }
}

struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Train a student on a teacher's soft targets (and optionally the labels).",
        discussion: """
        Loss: hardWeight * CE(labels, softmax(z_s)) + softWeight * T^2 * CE(softmax(z_t/T), softmax(z_s/T)), batch mean.
        The reported soft part is the cross-entropy; KL(teacher || student) differs from it by the teacher's entropy,
        which has no gradient. Several --teacher files form an ensemble (mean of softened probabilities by default).
        """)

    @Option(help: "Teacher model file(s), comma-separated for an ensemble.", transform: { $0.split(separator: ",").map(String.init) })
    var teacher: [String] = []
    @Option(help: "A teacher-logit store written by `distill teacher-logits` (instead of --teacher).") var teacherLogits: String?
    @Option(help: "How an ensemble combines: meanProbabilities (the paper) or meanLogits.") var ensemble: EnsembleTeacher.Combination = .meanProbabilities
    @Flag(help: "Run the teacher on every batch. By default, without --jitter, its logits for the training images are computed once (in blocks of 1000, in memory) and reused every epoch: the same logits up to float rounding; a batch that differs from the cached images goes to the teacher.")
    var noTeacherCache = false
    @Flag(help: "With a teacher run on every batch and --threads 2, take turns: teacher, then student, each on both threads. By default the teacher's pass for the next batch runs on the second core while the student trains, its products split in parts that use both cores once the teacher is done (same result up to float rounding). Other thread counts always take turns.")
    var noTeacherOverlap = false
    @Option(help: ArgumentHelp("The teacher's network when its file is a plain state dict without a model description (a PyTorch save_file of model.state_dict()): a named model sized to the data (lenet5, resnet8, ...) or a description file (.json).", valueName: "NAME|FILE.json"))
    var teacherModel: String?
    @OptionGroup var loss: LossOptions
    @OptionGroup var features: FeatureOptions
    @OptionGroup var options: TrainingOptions
    @Option(help: "Where to write the student (safetensors).") var output: String
    @Flag(help: "Overwrite an existing output file.") var force = false
    @Flag(help: "Print one JSON object with the results on stdout.") var json = false
    @OptionGroup var resumeOptions: ResumeOptions

    /// Largest in-memory teacher-logit cache `distill` builds on its own (bytes).
    static let teacherCacheBudget: Double = 1_073_741_824  // 1 GiB

    func validate() throws {
        if teacher.isEmpty == (teacherLogits == nil) {
            throw ValidationError("give exactly one of --teacher FILE[,FILE...] or --teacher-logits FILE")
        }
        if !features.terms.isEmpty && (teacher.count != 1 || teacherLogits != nil) {
            throw ValidationError("--hint, --attention and --similarity need one --teacher model file (its layers' outputs), not an ensemble or --teacher-logits")
        }
    }

    func run() throws {
        let job = ResumableRun(options: options, resumeOptions: resumeOptions, output: output, force: force, json: json,
                               label: "distill", role: "distilled student")
        var (configuration, stateURL, data, specification) = try job.prepare()
        if noTeacherOverlap { configuration.runtime.overlapTeacher = false }
        let teacherSource: Teacher
        var teacherCache = "store"
        if let path = teacherLogits {
            let store = try TeacherLogitStore.read(url: URL(fileURLWithPath: path))
            try store.validate(against: data.train, jitter: configuration.data.jitter, expectedTeacher: nil)
            teacherSource = StoredLogitsTeacher(store: store)
        } else {
            // The cache holds count x classes floats per teacher; past a budget the teacher runs per batch instead.
            let cacheBytes = Double(data.train.count) * Double(data.train.classCount) * 4 * Double(teacher.count)
            // Feature terms compare the teacher's layers on every batch: nothing to cache.
            let cache = !noTeacherCache && configuration.data.jitter == 0 && cacheBytes <= DistillCommand.teacherCacheBudget
                && features.terms.isEmpty
            teacherCache = cache ? "memory" : "off"
            if !cache && !noTeacherCache && configuration.data.jitter == 0 && features.terms.isEmpty {
                if World.current.isRoot { FileHandle.standardError.write(Data(("teacher: not caching its logits (\(Int(cacheBytes / 1048576)) MiB would exceed "
                    + "\(Int(DistillCommand.teacherCacheBudget / 1048576)) MiB); running it on every batch\n").utf8)) }
            }
            try checkTeachers(teacher, against: specification)
            let teacherDescription = try teacherModel.map { try describeTeacher($0, for: data.train) }
            teacherSource = try TeacherLoader.load(paths: teacher, combination: ensemble, dataset: data.train, cacheLogits: cache,
                                                   description: teacherDescription)
            if cache {
                if World.current.isRoot { FileHandle.standardError.write(Data(("teacher: logits for the \(data.train.count) training images computed once, kept in memory "
                    + "(no --jitter; --no-teacher-cache runs the teacher on every batch)\n").utf8)) }
            }
        }
        let lossConfiguration = loss.configuration
        let terms = features.terms
        let decoupled = features.decoupled
        let studentDescription: ModelDescription
        do {
            studentDescription = try configuration.modelDescription(inputShape: data.train.sampleShape, classCount: data.train.classCount)
        } catch let error as ModelDescriptionError { throw TrainingError("the student cannot be built: \(error.description)") }
        // Built once here, so a bad pairing is reported before any training.
        if !terms.isEmpty || decoupled != nil {
            _ = try FeatureDistillationObjective(teacher: teacherSource, loss: lossConfiguration, decoupled: decoupled, terms: terms,
                                                 studentDescription: studentDescription, seed: configuration.seed)
        }
        var extra: [String: Any] = ["distillation": try jsonObject(lossConfiguration)]
        if let decoupled { extra["decoupled_kd"] = try jsonObject(decoupled) }
        if !terms.isEmpty { extra["features"] = try jsonObject(terms) }
        var metadata = ["distillation": String(decoding: try sortedEncoder.encode(lossConfiguration), as: UTF8.self)]
        if let decoupled { metadata["decoupled_kd"] = String(decoding: try sortedEncoder.encode(decoupled), as: UTF8.self) }
        if !terms.isEmpty { metadata["features"] = String(decoding: try sortedEncoder.encode(terms), as: UTF8.self) }
        let overlap = configuration.overlapsTeacher(computingPerBatch: teacherSource.computesPerBatch)
        if overlap {
            if World.current.isRoot { FileHandle.standardError.write(Data(("teacher: run on every batch, one batch ahead on its own thread while the student "
                + "trains (--no-teacher-overlap takes turns instead)\n").utf8)) }
        }
        try job.run(configuration: configuration, stateURL: stateURL, data: data, specification: specification,
                    metadata: metadata.merging(["teacher_identity": teacherSource.identity]) { a, _ in a },
                    extra: extra.merging(["teacher_cache": teacherCache, "teacher_overlap": overlap]) { a, _ in a },
                    metricsTeacher: teacherLogits == nil ? teacherSource : nil) { indices in
            if terms.isEmpty && decoupled == nil {
                return try DistillationObjective(teacher: teacherSource, loss: lossConfiguration, exampleIndices: indices)
            }
            return try FeatureDistillationObjective(teacher: teacherSource, loss: lossConfiguration, decoupled: decoupled, terms: terms,
                                                    studentDescription: studentDescription, seed: configuration.seed,
                                                    exampleIndices: indices)
        }
    }
}

/// `--teacher-model NAME|FILE.json` as a description for the data's input shape and classes.
func describeTeacher(_ value: String, for train: LabeledDataset) throws -> ModelDescription {
    let model = try TrainingOptions.modelConfiguration(value, flag: "--teacher-model")
    do { return try model.description(inputShape: train.sampleShape, classCount: train.classCount) } catch let error as ModelDescriptionError {
        throw TrainingError("--teacher-model \(value): \(error.description)")
    }
}

/// A teacher trained on data of its own reads inputs prepared its own way: its standardisation and class names
/// must be the student's.
func checkTeachers(_ paths: [String], against specification: DataSpecification) throws {
    for path in paths {
        let metadata: [String: String]
        do { metadata = try SafeTensors.read(url: URL(fileURLWithPath: path)).metadata } catch { continue }  // the loader reports it
        guard let teacher = try DataSpecification.from(metadata: metadata) else { continue }
        if teacher.standardization != specification.standardization {
            throw TrainingError("\(path): the teacher was trained on differently standardised inputs than this run's data (\(teacher.source ?? teacher.format)); use the same data and split, or --no-standardize for both")
        }
        if (teacher.classNames ?? []) != (specification.classNames ?? []) {
            throw TrainingError("\(path): the teacher's classes \((teacher.classNames ?? []).prefix(6)) differ from the data's \((specification.classNames ?? []).prefix(6))")
        }
    }
}

struct TeacherLogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacher-logits",
        abstract: "Write a teacher's logits for every training example once (a store for `distill --teacher-logits`).",
        discussion: "The store is stamped with the teacher's and the dataset's hashes; it holds un-augmented logits only, so training with --jitter must run the teacher online.")

    @Argument(help: "Teacher model file(s); several form an ensemble.") var teachers: [String]
    @Option(help: "How an ensemble combines: meanProbabilities or meanLogits.") var ensemble: EnsembleTeacher.Combination = .meanProbabilities
    @Option(help: ArgumentHelp("The teachers' network when their files are plain state dicts without a model description: a named model (lenet5, resnet8, ...) or a description file (.json).", valueName: "NAME|FILE.json"))
    var teacherModel: String?
    @Option(help: "Output store (safetensors).") var output: String
    @Option(help: "float32 or float16.") var dtype: String = "float32"
    @Option(parsing: .unconditional, help: "Keep only the K largest logits per example.") var topK: Int?
    @OptionGroup var dataOptions: DataOptions
    @Option(parsing: .unconditional, help: "The seed of the run the store is for (its --seed: the test split of --data).") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @OptionGroup var kernelOptions: KernelOptions
    @Flag(help: "Overwrite an existing output file.") var force = false

    func validate() throws {
        guard !teachers.isEmpty else { throw ValidationError("give at least one teacher model file") }
        guard dtype == "float32" || dtype == "float16" else { throw ValidationError("--dtype must be float32 or float16, got '\(dtype)'") }
        guard threads >= 1 else { throw ValidationError("--threads must be >= 1, got \(threads)") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be >= 1, got \(topK)") }
    }

    func run() throws {
        try DataLocation.checkOutput(output, force: force)
        try kernelOptions.apply()
        ComputeThreads.set(threads)
        let data = try DataLoader.load(dataOptions.request(seed: seed))
        try checkTeachers(teachers, against: data.specification)
        let description = try teacherModel.map { try describeTeacher($0, for: data.train) }
        let teacher = try TeacherLoader.load(paths: teachers, combination: ensemble, dataset: data.train, description: description)
        let world = World.current
        try TeacherLogitStore.write(teacher: teacher, dataset: data.train, to: URL(fileURLWithPath: output),
                                    dtype: dtype == "float16" ? .float16 : .float32, topK: topK, overwrite: force,
                                    communicator: world)
        if world.isRoot {
            print("wrote logits of \(data.train.count) examples to \(output)\(world.isDistributed ? " (batches shared by \(world.size) processes)" : "")")
        }
    }
}

func jsonObject<T: Encodable>(_ value: T) throws -> Any {
    try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
}

/// The metrics' fields (test_errors, per_class_errors, confusion_matrix, ...) for the top level of a JSON report;
/// with class names, also `class_names` and `per_class` (errors, count and accuracy by name).
func metricsFields(_ metrics: EvaluationMetrics, classNames: [String]? = nil) throws -> [String: Any] {
    var fields = (try jsonObject(metrics) as? [String: Any]) ?? [:]
    if let classNames, classNames.count == metrics.perClassErrors.count {
        fields["class_names"] = classNames
        var perClass: [String: Any] = [:]
        for (i, name) in classNames.enumerated() {
            let count = metrics.confusionMatrix.indices.contains(i) ? metrics.confusionMatrix[i].reduce(0, +) : 0
            perClass[name] = ["errors": metrics.perClassErrors[i], "count": count,
                              "accuracy": count == 0 ? 0 : 1 - Double(metrics.perClassErrors[i]) / Double(count)]
        }
        fields["per_class"] = perClass
    }
    return fields
}

import TensorCore

/// JSON with sorted keys, so that identical runs write byte-identical metadata.
let sortedEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return encoder
}()
