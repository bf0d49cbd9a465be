import Distillation
import Checkpoints
import Checkpoints
import Foundation
import TensorCore
import Inference
import NeuralNet
import Optimizers
import Datasets

/// Options shared by the benchmark driver and its per-phase subprocesses (mirrors `Scripts/torch_bench.py`).
public struct BenchmarkOptions: Codable, Sendable {
    public var threads = 2
    /// Timed epochs per phase (median reported); default 3, 1 with `quick`.
    public var epochs = 3
    /// Time only the first N batches of each epoch and scale to a full epoch (20 with `quick`); nil = whole epoch.
    public var maxBatches: Int? = nil
    public var quick = false
    public var dataDirectory: String? = nil
    /// Run an online teacher one batch ahead on its own thread (as `distill distill` does by default).
    public var overlapTeacher = true
    /// The BLAS library (`BLASLibrary.Choice` raw value) every child process selects; the driver selects it too.
    public var blas = "openblas"
    /// `--dense-inputs`: every child multiplies the images with BLAS instead of `SparseKernels`.
    public var denseInputs = false
    /// A kernel the training phases switch on and off every `Alternation.stepsPerSwitch` steps (one phase in this
    /// process: `distill bench --phase P --alternate K`), timing the steps of each setting apart.
    public var alternate: Alternation.Kernel? = nil
    /// The distillation phases' teacher: a trained 784-1200-1200-10 checkpoint (`--teacher FILE`; nil: the shipped
    /// `BenchmarkModels.defaultTeacherFile`), or a randomly initialised one (`--random-teacher`, which times
    /// dense hidden layers). A distillation teacher is trained, and its hidden units are far sparser than a random
    /// network's (the shipped one's: 7.5 % and 14 % nonzero, against ~50 %), which the sparse kernels use.
    public var teacherFile: String? = nil
    public var randomTeacher = false
    /// The inference and latency phases' model (a model file); nil: the random 784-800-800-10 student.
    public var inferenceModel: String? = nil
    public init() {}
}

/// An in-process A/B of one kernel: on a shared virtual machine another tenant's load comes and goes over seconds,
/// so separate runs of a few percent apart do not resolve (single-run ratios spread 0.7-1.2 on a 2-core VM); steps
/// that alternate every `stepsPerSwitch` meet the same load, and the medians of their times compare.
public struct Alternation: Codable, Sendable {
    public enum Kernel: String, Codable, Sendable, CaseIterable {
        /// `SparseKernels.forwardEnabled`: the sparse forward pass against BLAS.
        case sparseForward = "sparse-forward"
        /// `SparseKernels.gradientEnabled`: the sparse weight gradient against BLAS.
        case sparseGradient = "sparse-gradient"

        func set(_ on: Bool) {
            switch self {
            case .sparseForward: SparseKernels.forwardEnabled = on
            case .sparseGradient: SparseKernels.gradientEnabled = on
            }
        }
    }
    public static let stepsPerSwitch = 10
    public var kernel: Kernel
    /// Full batches timed with the kernel on, and off.
    public var stepsOn: Int
    public var stepsOff: Int
    /// Median step time x 60,000 / 128, with the kernel on and off; their ratio (on / off).
    public var onEpochSeconds: Double
    public var offEpochSeconds: Double
    public var ratio: Double
}

/// The measured figures of one phase, in this process.
public struct PhaseResult: Codable, Sendable {
    public var phase: String
    /// Training phases: median seconds per (scaled) 60,000-example epoch.
    public var secondsPerEpoch: Double?
    /// Every timed epoch (scaled when `batchesTimedPerEpoch` < a full epoch).
    public var epochSeconds: [Double]?
    public var batchesTimedPerEpoch: Int?
    /// Inference: median seconds for the 10,000 test images in batches of 1000.
    public var secondsPerPass: Double?
    /// Latency: median milliseconds for one image.
    public var latencyMilliseconds: Double?
    public var examplesPerSecond: Double?
    public var flopsPerExample: Double?
    public var gflops: Double?
    public var peakResidentBytes: Int
    public var loadAverage: Double
    /// BufferPool system allocations in the timed epochs after the first (nil with one timed epoch): 0 once the pool is
    /// warm. The first epoch's last batch is smaller (60,000 = 468 x 128 + 96) and sizes new buffers once.
    public var steadyStateAllocations: Int?
    /// BufferPool system allocations in each timed epoch.
    public var epochAllocations: [Int]?
    /// `distill_cached`: seconds to compute the teacher's logits for every training example once (not in the epochs).
    public var setupSeconds: Double?
    /// Training phases: the median time of one full batch over every timed epoch, in seconds, times the batches of
    /// an epoch (60,000 / 128). Steps that another process's work on this machine slowed (a noisy virtual machine's
    /// stolen time comes in bursts) move it less than the epoch's total: what A/B comparisons of a kernel read.
    public var medianStepEpochSeconds: Double?
    /// `BenchmarkOptions.alternate`'s timing.
    public var alternation: Alternation?
}

/// One scaling point: seconds per training example of a 784-W-W-10 student.
public struct ScalingPoint: Codable, Sendable {
    public var batch: Int
    public var width: Int
    public var secondsPerExample: Double
    public var steps: Int
    public var gflops: Double
}

/// Network sizes and FLOP counts of the benchmark (the same as torch_bench.py).
public enum BenchmarkModels {
    public static let batch = 128
    public static let learningRate: Float = 0.05
    public static let momentum: Float = 0.9
    public static let temperature: Float = 20

    /// The distillation phases' objective: 0.5 * CE(labels) + 0.5 * T^2 * soft CE at T = 20 (the library's
    /// `DistillationObjective`), the teacher computed online or looked up in a logit store.
    static func distillation(_ teacher: Teacher) throws -> DistillationObjective {
        try DistillationObjective(teacher: teacher, loss: DistillationLossConfiguration(temperature: temperature, hardWeight: 0.5, softWeight: 0.5))
    }
    public static let studentDims = [(784, 800), (800, 800), (800, 10)]
    public static let teacherDims = [(784, 1200), (1200, 1200), (1200, 10)]

    /// Forward + grad-weight + grad-input FLOPs (2mnk each), no grad-input for the first layer.
    public static func trainFlopsPerExample(_ dims: [(Int, Int)]) -> Double {
        Double(dims.reduce(0) { $0 + 6 * $1.0 * $1.1 } - 2 * dims[0].0 * dims[0].1)
    }

    public static func forwardFlopsPerExample(_ dims: [(Int, Int)]) -> Double {
        Double(dims.reduce(0) { $0 + 2 * $1.0 * $1.1 })
    }

    static func student(width: Int = 800, generator: inout RandomGenerator) -> Sequential {
        Sequential(specifications: [.linear(inputCount: 784, outputCount: width), .relu,
                                    .linear(inputCount: width, outputCount: width), .relu,
                                    .linear(inputCount: width, outputCount: 10)], generator: &generator)
    }

    /// The trained teacher the distillation phases use by default, found beside the embedded MNIST copy:
    /// `Data/teachers/bench-teacher.safetensors`, the teacher recipe of `distill reproduce` (dropout 0.2 / 0.5, +-2 px
    /// jitter, max-norm 3.5, SGD lr 0.1 momentum 0.9, cosine over 60 epochs) on all 60,000 training images, seed 0,
    /// stored as f16 (Benchmarks.md, the trained bench teacher, has the command). nil when it is not there.
    public static func defaultTeacherFile() -> URL? {
        let fileManager = FileManager.default
        var roots: [URL] = []
        if let mnist = MNIST.defaultDirectory() { roots.append(mnist.deletingLastPathComponent()) }
        roots.append(URL(fileURLWithPath: fileManager.currentDirectoryPath).appendingPathComponent("Data"))
        for root in roots {
            let url = root.appendingPathComponent("teachers/\(defaultTeacherName)")
            if fileManager.fileExists(atPath: url.path) { return url }
        }
        return nil
    }
    public static let defaultTeacherName = "bench-teacher.safetensors"

    /// The distillation phases' teacher (see `BenchmarkOptions.teacherFile`). The random teacher is drawn from
    /// `generator` either way, so the student that follows starts from the same weights whichever teacher is used.
    static func distillationTeacher(_ options: BenchmarkOptions, generator: inout RandomGenerator) throws -> Sequential {
        let random = teacher(generator: &generator)
        return options.randomTeacher ? random : try trainedTeacher(at: teacherFile(options))
    }

    /// The trained teacher in `url`: a 784-1200-1200-10 model, matching its SHA256SUMS entry when there is one.
    static func trainedTeacher(at url: URL) throws -> Sequential {
        let model = try ModelCheckpoint.read(url: url).model
        try verifyChecksum(url)
        let dims = model.flattenedLayers.compactMap { $0 as? Linear }.map { ($0.inputCount, $0.outputCount) }
        guard dims.elementsEqual(teacherDims, by: ==) else {
            throw TrainingError("\(url.path): the benchmark teacher must be \(describe(teacherDims)), the file holds \(describe(dims))")
        }
        return model
    }

    /// A teacher file listed in a SHA256SUMS beside it (the shipped one is) must match its digest: a damaged copy
    /// would still load and time, only not the teacher the figures were measured with.
    static func verifyChecksum(_ url: URL) throws {
        let sumsURL = url.deletingLastPathComponent().appendingPathComponent("SHA256SUMS")
        guard FileManager.default.fileExists(atPath: sumsURL.path) else { return }
        do {
            let sums = try SHA256Sums.read(sumsURL)
            guard sums.digests[url.lastPathComponent] != nil else { return }
            let bytes: [UInt8]
            do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
                throw TrainingError("\(url.path): cannot read it to check its SHA256: \(error.localizedDescription)")
            }
            try sums.verify(bytes, name: url.lastPathComponent, path: url.path)
        } catch let error as DataError {
            throw TrainingError("\(error)")
        }
    }

    /// `--teacher FILE`, else the shipped file; an error naming both ways out when neither is there.
    static func teacherFile(_ options: BenchmarkOptions) throws -> URL {
        guard let url = options.teacherFile.map({ URL(fileURLWithPath: $0) }) ?? defaultTeacherFile() else {
            throw TrainingError("no benchmark teacher: Data/teachers/\(defaultTeacherName) is not beside the embedded MNIST copy; pass --teacher FILE or --random-teacher")
        }
        return url
    }

    static func describe(_ dims: [(Int, Int)]) -> String {
        dims.isEmpty ? "no Linear layer" : ([dims[0].0] + dims.map(\.1)).map(String.init).joined(separator: "-")
    }

    /// The CNN phases' models (``ModelPresets``) on MNIST's 1x28x28 images, 10 classes.
    public static let cnnModels = ["lenet5", "resnet8"]

    /// The `features` phase's terms: LeNet-5 (student) against a ResNet-8 (teacher) as `distill reproduce cnn` pairs
    /// them -- a FitNets hint (layer 2 -> 6), attention transfer (1 -> 4, 2 -> 6), similarity-preserving KD
    /// (10 -> 8) -- beside decoupled KD. Weights 1: the work does not depend on them, and the randomly initialised
    /// teacher's features would make the experiment's weights diverge.
    static let featureTerms = [
        FeatureTerm(kind: .hint, studentLayer: 2, teacherLayer: 6, weight: 1),
        FeatureTerm(kind: .attention, studentLayer: 1, teacherLayer: 4, weight: 1),
        FeatureTerm(kind: .attention, studentLayer: 2, teacherLayer: 6, weight: 1),
        FeatureTerm(kind: .similarity, studentLayer: 10, teacherLayer: 8, weight: 1),
    ]

    /// A CNN preset with its weights drawn from `generator`.
    static func cnn(_ name: String, generator: inout RandomGenerator) throws -> Sequential {
        try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10).build(generator: &generator)
    }

    /// Multiply-adds per example of every convolution and linear layer's forward product, and those of the first
    /// such layer (whose input gradient training does not compute).
    static func multiplyAdds(_ layers: [Layer]) -> (total: Double, first: Double) {
        var total = 0.0, first: Double? = nil
        func visit(_ layer: Layer) {
            var macs: Double? = nil
            if let conv = layer as? Conv2d {
                let g = conv.geometry
                macs = Double(g.outChannels * g.outHeight * g.outWidth * g.filterSize)
            } else if let linear = layer as? Linear {
                macs = Double(linear.inputCount * linear.outputCount)
            } else if let sequential = layer as? Sequential {
                sequential.layers.forEach(visit)
            } else if let residual = layer as? Residual {
                residual.body.layers.forEach(visit)
                residual.shortcut?.layers.forEach(visit)
            }
            if let macs {
                total += macs
                if first == nil { first = macs }
            }
        }
        layers.forEach(visit)
        return (total, first ?? 0)
    }

    /// Training FLOPs per example of a CNN: forward, weight-gradient and input-gradient products (2 x multiply-adds
    /// each), the first layer without its input gradient (as `trainFlopsPerExample`, and torch_bench.py).
    public static func cnnTrainFlopsPerExample(_ model: Sequential) -> Double {
        let m = multiplyAdds(model.layers)
        return 6 * m.total - 2 * m.first
    }

    public static func cnnForwardFlopsPerExample(_ model: Sequential) -> Double { 2 * multiplyAdds(model.layers).total }

    static func teacher(generator: inout RandomGenerator) -> Sequential {
        Sequential(specifications: [.dropout(probability: 0.2), .linear(inputCount: 784, outputCount: 1200), .relu,
                                    .dropout(probability: 0.5), .linear(inputCount: 1200, outputCount: 1200), .relu,
                                    .dropout(probability: 0.5), .linear(inputCount: 1200, outputCount: 10)],
                   generator: &generator)
    }
}

/// Runs one benchmark phase in this process.
public enum BenchmarkPhases {
    public static let training = ["student", "teacher", "distill_online", "distill_cached", "distill_store"]
    /// The CNN training phases (one per ``BenchmarkModels/cnnModels`` entry: a full epoch on labels).
    public static let cnnTraining = BenchmarkModels.cnnModels
    /// The CNN inference phases (`<model>_inference`: 10,000 test images in batches of 1000).
    public static let cnnInference = BenchmarkModels.cnnModels.map { $0 + "_inference" }
    /// Feature distillation: an epoch of LeNet-5 distilled from a ResNet-8 with decoupled KD and every feature term
    /// (``BenchmarkModels/featureTerms``), the teacher's forward pass with its features on every batch.
    public static let featureDistillation = ["features"]
    public static let all = training + ["inference", "latency"] + cnnTraining + featureDistillation + cnnInference

    static var loadAverage: Double {
        var values = [Double](repeating: 0, count: 3)
        return getloadavg(&values, 3) > 0 ? values[0] : .nan
    }

    /// The phases that train (the MLP ones take `BenchmarkOptions.alternate`).
    public static let trainingPhases = ["student", "teacher", "distill_online", "distill_cached", "distill_store"] + cnnTraining
        + featureDistillation

    public static func run(_ phase: String, options: BenchmarkOptions) throws -> PhaseResult {
        ComputeThreads.set(options.threads)
        let data = try DataLocation.loadMNIST(options.dataDirectory)
        switch phase {
        case _ where trainingPhases.contains(phase):
            return try trainingPhase(phase, train: data.train, options: options)
        case _ where cnnInference.contains(phase):
            var generator = RandomGenerator(seed: 0)
            let model = try BenchmarkModels.cnn(String(phase.dropLast("_inference".count)), generator: &generator)
            return inferencePass(phase, model: model, test: data.test, options: options,
                                 flopsPerExample: BenchmarkModels.cnnForwardFlopsPerExample(model))
        case "inference":
            var generator = RandomGenerator(seed: 0)
            let model = try options.inferenceModel.map { try ModelCheckpoint.read(url: URL(fileURLWithPath: $0)).model }
                ?? BenchmarkModels.student(generator: &generator)
            return inferencePass(phase, model: model, test: data.test, options: options,
                                 flopsPerExample: BenchmarkModels.forwardFlopsPerExample(BenchmarkModels.studentDims))
        case "latency":
            var generator = RandomGenerator(seed: 0)
            let model = try options.inferenceModel.map { try ModelCheckpoint.read(url: URL(fileURLWithPath: $0)).model }
                ?? BenchmarkModels.student(generator: &generator)
            let one = data.test.inputs(rows: 0..<1)
            let calls = options.quick ? 50 : 200
            let infer = inference(model)
            for _ in 0..<10 { _ = infer(one) }
            var times: [Double] = []
            for _ in 0..<calls {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = infer(one)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
            return PhaseResult(phase: phase, latencyMilliseconds: median(times) * 1e3,
                               peakResidentBytes: ResourceUsage.peakResidentBytes, loadAverage: loadAverage)
        default:
            throw TrainingError("unknown benchmark phase \(phase); expected one of \(all.joined(separator: ", "))")
        }
    }

    /// The inference library's pass over `model` (``CompiledModel``), or the model's own evaluation-mode pass
    /// (`Sequential.infer`) with `DISTILL_INFERENCE=layers`, to compare the two.
    static func inference(_ model: Sequential) -> (Tensor) -> Tensor {
        if ProcessInfo.processInfo.environment["DISTILL_INFERENCE"] == "layers" { return { model.infer($0) } }
        let compiled = CompiledModel(model)
        return { compiled.infer($0) }
    }

    /// Median seconds of the inference library's pass (``inference(_:)``) over the 10,000 test images in batches of
    /// 1000 (after one warm-up batch).
    static func inferencePass(_ phase: String, model: Sequential, test: LabeledDataset, options: BenchmarkOptions,
                              flopsPerExample flops: Double) -> PhaseResult {
        let reps = options.quick ? 3 : 7
        let batches = stride(from: 0, to: test.count, by: 1000).map { test.inputs(rows: $0..<Swift.min($0 + 1000, test.count)) }
        let infer = inference(model)
        _ = infer(batches[0])
        var times: [Double] = []
        for _ in 0..<reps {
            let start = DispatchTime.now().uptimeNanoseconds
            for b in batches { _ = infer(b) }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        let s = median(times), n = Double(test.count)
        return PhaseResult(phase: phase, secondsPerPass: s, examplesPerSecond: n / s, flopsPerExample: flops,
                           gflops: flops * n / s / 1e9, peakResidentBytes: ResourceUsage.peakResidentBytes,
                           loadAverage: loadAverage)
    }

    /// The trainer's own SGD step (``TrainingStep``: forward, loss, backward, update, max-norm) on jittered batches.
    final class Stepper {
        let step: TrainingStep
        let jitter: Int
        var context: ForwardContext
        var jitterGenerator = RandomGenerator(seed: 2)
        var objective: TrainingObjective { step.objective }

        init(model: Sequential, objective: TrainingObjective, jitter: Int = 0, maxNorm: Float? = nil) {
            step = TrainingStep(model: model, objective: objective,
                                optimizer: SGD(learningRate: BenchmarkModels.learningRate, momentum: BenchmarkModels.momentum),
                                maxNorm: maxNorm)
            self.jitter = jitter
            self.context = ForwardContext(training: true, generator: RandomGenerator(seed: 1))
        }

        /// The batch's images after jitter (the jitter stream advances).
        func images(for batch: Batch) -> Tensor {
            jitter > 0 ? Jitter.shift(images: batch.inputs, maxShift: jitter, generator: &jitterGenerator) : batch.inputs
        }

        func step(_ batch: Batch) throws {
            try step(batch, images: images(for: batch), prepared: nil)
        }

        /// One step on `images` with the objective's `prepared` part (nil: computed inside).
        func step(_ batch: Batch, images: Tensor, prepared: Tensor?) throws {
            try step(batch: batch, inputs: images, prepared: prepared, context: &context)
        }
    }

    static func trainingPhase(_ phase: String, train: LabeledDataset, options: BenchmarkOptions) throws -> PhaseResult {
        var generator = RandomGenerator(seed: 0)
        let stepper: Stepper
        var flops = BenchmarkModels.trainFlopsPerExample(BenchmarkModels.studentDims)
        var setup: Double? = nil
        switch phase {
        case "teacher":
            stepper = Stepper(model: BenchmarkModels.teacher(generator: &generator), objective: LabelObjective(), jitter: 2, maxNorm: 3.5)
            flops = BenchmarkModels.trainFlopsPerExample(BenchmarkModels.teacherDims)
        case "distill_online":
            let teacher = try BenchmarkModels.distillationTeacher(options, generator: &generator)
            let student = BenchmarkModels.student(generator: &generator)
            stepper = Stepper(model: student, objective: try BenchmarkModels.distillation(ModelTeacher(model: teacher)))
            flops += BenchmarkModels.forwardFlopsPerExample(BenchmarkModels.teacherDims)
        case "distill_cached":
            // What `distill distill` does without jitter: the teacher's logits for all training examples computed
            // once in memory (timed separately as setup), then looked up and content-checked per batch.
            let teacher = try BenchmarkModels.distillationTeacher(options, generator: &generator)
            let student = BenchmarkModels.student(generator: &generator)
            let start = DispatchTime.now().uptimeNanoseconds
            let cached = try CachedTeacher(base: ModelTeacher(model: teacher), dataset: train)
            setup = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            stepper = Stepper(model: student, objective: try BenchmarkModels.distillation(cached))
        case _ where cnnTraining.contains(phase):
            let model = try BenchmarkModels.cnn(phase, generator: &generator)
            stepper = Stepper(model: model, objective: LabelObjective())
            flops = BenchmarkModels.cnnTrainFlopsPerExample(model)
        case "features":
            let teacher = try BenchmarkModels.cnn("resnet8", generator: &generator)
            let description = try ModelPresets.description(named: "lenet5", inputShape: [1, 28, 28], classCount: 10)
            let student = try description.build(generator: &generator)
            let objective = try FeatureDistillationObjective(
                teacher: ModelTeacher(model: teacher), loss: DistillationLossConfiguration(temperature: 4, hardWeight: 1, softWeight: 0),
                decoupled: DecoupledKDWeights(alpha: 1, beta: 2), terms: BenchmarkModels.featureTerms,
                studentDescription: description, seed: 0)
            stepper = Stepper(model: student, objective: objective)
            flops = BenchmarkModels.cnnTrainFlopsPerExample(student) + BenchmarkModels.cnnForwardFlopsPerExample(teacher)
        case "distill_store":
            let teacher = try BenchmarkModels.distillationTeacher(options, generator: &generator)
            let student = BenchmarkModels.student(generator: &generator)
            // Precomputed once, untimed: the teacher's logits for every training example, written and read back.
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("distill-bench-\(getpid()).logits.safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try TeacherLogitStore.write(teacher: ModelTeacher(model: teacher), dataset: train, to: url, overwrite: true)
            let store = try TeacherLogitStore.read(url: url)
            stepper = Stepper(model: student, objective: try BenchmarkModels.distillation(StoredLogitsTeacher(store: store)))
        default:
            stepper = Stepper(model: BenchmarkModels.student(generator: &generator), objective: LabelObjective())
        }
        let n = train.count
        var iterator = BatchIterator(dataset: train, batchSize: BenchmarkModels.batch, shuffle: true, dropLast: false,
                                     generator: RandomGenerator(seed: 3))
        // Untimed warm-up: fills the buffer pool, BLAS thread pool and momentum buffers.
        for _ in 0..<3 { if let b = iterator.next() { try stepper.step(b) } }
        var times: [Double] = []
        // Full steps' times, by the alternated kernel's setting (all in `stepsOff` without `alternate`).
        var stepsOn: [Double] = [], stepsOff: [Double] = []
        defer { options.alternate?.set(true) }
        var timedBatches = 0
        var allocations: [Int] = []
        // As `Trainer.run`: an online teacher runs one batch ahead on the second core while the parts of the student's
        // products run in turn on one core (on both once the teacher is done).
        let overlap = TrainingConfiguration.overlapsTeacher(enabled: options.overlapTeacher, threads: options.threads,
                                                            computingPerBatch: stepper.objective.preparesInBackground)
        let background = BackgroundWork()
        defer { background.cancel(); ComputeThreads.set(options.threads) }
        for _ in 0..<Swift.max(1, options.epochs) {
            iterator.startNextEpoch()
            let allocationsBefore = BufferPool.shared.systemAllocations
            let start = DispatchTime.now().uptimeNanoseconds
            var done = 0, batches = 0
            var current = iterator.next().map { ($0, stepper.images(for: $0)) }
            var stepStart = start
            var prepared = try current.flatMap { first in
                overlap ? try ComputeThreads.alone { try stepper.objective.prepare(batch: first.0, inputs: first.1) } : nil
            }
            while let (batch, images) = current {
                batches += 1
                let last = options.maxBatches.map { batches >= $0 } ?? false
                current = last ? nil : iterator.next().map { ($0, stepper.images(for: $0)) }
                if overlap, let (nextBatch, nextImages) = current {
                    let objective = stepper.objective
                    background.start { try objective.prepare(batch: nextBatch, inputs: nextImages) }
                }
                // Off for the first `stepsPerSwitch` full steps, on for the next, and so on.
                let on = options.alternate != nil && ((stepsOn.count + stepsOff.count) / Alternation.stepsPerSwitch) % 2 == 1
                options.alternate?.set(on)
                try stepper.step(batch, images: images, prepared: prepared)
                prepared = try background.wait()
                done += batch.count
                let now = DispatchTime.now().uptimeNanoseconds
                if batch.count == BenchmarkModels.batch {
                    let t = Double(now - stepStart) * 1e-9
                    if on { stepsOn.append(t) } else { stepsOff.append(t) }
                }
                stepStart = now
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            times.append(seconds * Double(n) / Double(done))
            timedBatches = batches
            allocations.append(BufferPool.shared.systemAllocations - allocationsBefore)
        }
        let perEpoch = Double(n) / Double(BenchmarkModels.batch)
        var alternation: Alternation? = nil
        if let kernel = options.alternate, !stepsOn.isEmpty, !stepsOff.isEmpty {
            let on = median(stepsOn) * perEpoch, off = median(stepsOff) * perEpoch
            alternation = Alternation(kernel: kernel, stepsOn: stepsOn.count, stepsOff: stepsOff.count,
                                      onEpochSeconds: on, offEpochSeconds: off, ratio: on / off)
        }
        let s = median(times)
        return PhaseResult(phase: phase, secondsPerEpoch: s, epochSeconds: times, batchesTimedPerEpoch: timedBatches,
                           examplesPerSecond: Double(n) / s, flopsPerExample: flops, gflops: flops * Double(n) / s / 1e9,
                           peakResidentBytes: ResourceUsage.peakResidentBytes, loadAverage: loadAverage,
                           steadyStateAllocations: allocations.count > 1 ? allocations.dropFirst().reduce(0, +) : nil,
                           epochAllocations: allocations, setupSeconds: setup,
                           medianStepEpochSeconds: stepsOn.isEmpty && stepsOff.isEmpty ? nil
                               : median(stepsOn + stepsOff) * perEpoch,
                           alternation: alternation)
    }

    /// Seconds per example of student training steps at one batch size and width (the scaling tables).
    public static func scalingPoint(width: Int, batch: Int, train: LabeledDataset, examples: Int, maxSeconds: Double) throws -> ScalingPoint {
        var generator = RandomGenerator(seed: 0)
        let stepper = Stepper(model: BenchmarkModels.student(width: width, generator: &generator), objective: LabelObjective())
        var iterator = BatchIterator(dataset: train, batchSize: batch, shuffle: true, dropLast: true, generator: RandomGenerator(seed: 4))
        func nextBatch() -> Batch {
            if let b = iterator.next() { return b }
            iterator.startNextEpoch()
            return iterator.next()!
        }
        try stepper.step(nextBatch())
        let steps = Swift.max(3, examples / batch)
        let start = DispatchTime.now().uptimeNanoseconds
        var done = 0
        var elapsed = 0.0
        for _ in 0..<steps {
            try stepper.step(nextBatch())
            done += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if done >= 3 && elapsed > maxSeconds { break }
        }
        let spe = elapsed / Double(done * batch)
        let dims = [(784, width), (width, width), (width, 10)]
        return ScalingPoint(batch: batch, width: width, secondsPerExample: spe, steps: done,
                            gflops: BenchmarkModels.trainFlopsPerExample(dims) / spe / 1e9)
    }

    public static let scalingBatches = [1, 4, 16, 64, 128, 256, 1024]
    public static let scalingWidths = [30, 100, 300, 800, 1200, 2400]

    /// The batch-size and width tables (in this process).
    public static func scaling(options: BenchmarkOptions) throws -> [ScalingPoint] {
        ComputeThreads.set(options.threads)
        let train = try DataLocation.loadMNIST(options.dataDirectory).train
        let examples = options.quick ? 1024 : 4096, maxSeconds = options.quick ? 0.5 : 2.0
        var points: [ScalingPoint] = []
        for b in scalingBatches { points.append(try scalingPoint(width: 800, batch: b, train: train, examples: examples, maxSeconds: maxSeconds)) }
        for w in scalingWidths { points.append(try scalingPoint(width: w, batch: BenchmarkModels.batch, train: train, examples: examples, maxSeconds: maxSeconds)) }
        return points
    }

    /// Best-of-several GFLOP/s of a square sgemm (the machine's practical peak with the current thread count).
    public static func sgemmPeak(size: Int = 2048, repeats: Int = 3) -> Double {
        var generator = RandomGenerator(seed: 5)
        let a = Tensor.uniform([size, size], low: -1, high: 1, generator: &generator)
        let b = Tensor.uniform([size, size], low: -1, high: 1, generator: &generator)
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = a.matmul(b)
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return 2 * pow(Double(size), 3) / best / 1e9
    }

    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
