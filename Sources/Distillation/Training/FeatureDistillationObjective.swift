import Foundation
import TensorCore
import NeuralNet
import Datasets

/// A term of feature distillation: the output of student layer `studentLayer` matched to the output of teacher
/// layer `teacherLayer` (top-level layer indices, 0-based, the output after that layer), weighted by `weight`.
public struct FeatureTerm: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// FitNets (Romero et al. 2015): a learned regressor maps the student's features to the teacher's shape
        /// (a 1x1 convolution for feature maps of the same size, a linear layer otherwise), then the mean squared
        /// error (``hintLoss(studentFeatures:teacherFeatures:)``).
        case hint
        /// Attention transfer (Zagoruyko and Komodakis 2017): the mean squared difference of the normalised
        /// attention maps, sum over channels of |F|^2 (``attentionTransferLoss(studentFeatures:teacherFeatures:p:)``);
        /// both layers must give feature maps of the same height and width, channels may differ.
        case attention
        /// Similarity-preserving KD (Tung and Mori 2019): the batch's row-normalised similarity matrices F F^T of
        /// the two layers matched by mean squared difference (``similarityPreservingLoss(studentFeatures:teacherFeatures:)``);
        /// any two layers, their sizes may differ.
        case similarity
    }

    public var kind: Kind
    public var studentLayer: Int
    public var teacherLayer: Int
    public var weight: Float

    public init(kind: Kind, studentLayer: Int, teacherLayer: Int, weight: Float) {
        self.kind = kind
        self.studentLayer = studentLayer
        self.teacherLayer = teacherLayer
        self.weight = weight
    }

    /// The weight mdistiller's configurations use: FitNets 100, attention transfer 1000, similarity-preserving 3000.
    public static func defaultWeight(_ kind: Kind) -> Float {
        switch kind {
        case .hint: return 100
        case .attention: return 1000
        case .similarity: return 3000
        }
    }
}

/// Decoupled KD's weights (Zhao et al. 2022): target-class KD `alpha`, non-target-class KD `beta` (the paper's
/// defaults 1 and 8), at the loss configuration's temperature, and its warm-up: over the first `warmupEpochs`
/// epochs the DKD term's weight rises linearly, epoch e (counted from 1) weighing min(e / warmupEpochs, 1), as
/// mdistiller's `DKD.WARMUP` (20 of its 240 CIFAR-100 epochs). 0: full weight from the first batch.
public struct DecoupledKDWeights: Codable, Equatable, Sendable {
    public var alpha: Float
    public var beta: Float
    public var warmupEpochs: Int
    public init(alpha: Float = 1, beta: Float = 8, warmupEpochs: Int = 0) {
        self.alpha = alpha
        self.beta = beta
        self.warmupEpochs = warmupEpochs
    }

    /// The DKD term's weight in `epoch` (counted from 0): min((epoch + 1) / warmupEpochs, 1), or 1 without warm-up.
    public func warmupFactor(epoch: Int) -> Float {
        warmupEpochs > 0 ? Swift.min(Float(epoch + 1) / Float(warmupEpochs), 1) : 1
    }

    enum CodingKeys: String, CodingKey { case alpha, beta, warmupEpochs }

    /// Reads files written before the warm-up existed (no `warmupEpochs`: none).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        alpha = try c.decode(Float.self, forKey: .alpha)
        beta = try c.decode(Float.self, forKey: .beta)
        warmupEpochs = try c.decodeIfPresent(Int.self, forKey: .warmupEpochs) ?? 0
    }
}

/// Distillation beyond Hinton's soft targets, combinable with weights:
///
///     L = hardWeight * CE(y, z_s)
///       + (decoupled == nil ? softWeight * T^2 * H(p_t^T, q_s^T)       -- Hinton et al. (``distillationLoss``)
///                           : alpha * TCKD + beta * NCKD)               -- DKD (``decoupledKDLoss``)
///       + sum over feature terms of weight * (hint or attention loss)
///
/// The teacher's per-batch work (``prepare(batch:inputs:)``, which the trainer may run one batch ahead on the second
/// core) is one evaluation-mode forward pass that returns, per example, its T = 1 logits followed by every paired
/// teacher layer's output, flattened: one `[b, C + features]` matrix. Feature terms need a teacher model
/// (``ModelTeacher``); decoupled KD alone works with any teacher that gives logits (a stored-logit store, a cache).
///
/// A FitNets regressor is trained with the student (``namedParameters``, saved in training states, not in the
/// student's model file); its initial weights come from `seed`.
public final class FeatureDistillationObjective: TrainingObjective {
    public let teacher: Teacher
    public let loss: DistillationLossConfiguration
    public let decoupled: DecoupledKDWeights?
    public let terms: [FeatureTerm]
    public let exampleIndices: [Int]?
    /// The teacher's network (feature terms only).
    let teacherModel: Sequential?
    /// Per term: the teacher feature's per-example shape and its column range in the prepared matrix.
    let teacherShapes: [[Int]]
    let columns: [Range<Int>]
    /// Per term: the FitNets regressor (nil for attention terms).
    let regressors: [Layer?]
    let width: Int

    /// - Parameters:
    ///   - studentDescription: the student's network (its layers' output shapes decide the regressors).
    ///   - seed: initialises the regressors.
    /// - Throws: ``TrainingError`` or ``ConfigurationError`` naming the term, layer and shapes.
    public init(teacher: Teacher, loss: DistillationLossConfiguration, decoupled: DecoupledKDWeights? = nil,
                terms: [FeatureTerm] = [], studentDescription: ModelDescription, seed: UInt64 = 0,
                exampleIndices: [Int]? = nil) throws {
        try loss.validate()
        if let decoupled {
            for (field, v) in [("alpha", decoupled.alpha), ("beta", decoupled.beta)] where !(v.isFinite && v >= 0) {
                throw ConfigurationError(field: "loss.decoupled.\(field)", "must be a finite number >= 0, got \(v)")
            }
            guard decoupled.warmupEpochs >= 0 else {
                throw ConfigurationError(field: "loss.decoupled.warmupEpochs", "must be >= 0, got \(decoupled.warmupEpochs)")
            }
        }
        self.teacher = teacher
        self.loss = loss
        self.decoupled = decoupled
        self.terms = terms
        self.exampleIndices = exampleIndices
        let studentShapes: [[Int]]
        do { studentShapes = try studentDescription.layerOutputShapes() } catch let error as ModelDescriptionError {
            throw TrainingError("the student cannot be built: \(error.description)")
        }
        var teacherShapes: [[Int]] = [], columns: [Range<Int>] = [], regressors: [Layer?] = []
        var width = teacher.classCount
        var teacherModel: Sequential? = nil
        if !terms.isEmpty {
            guard let model = (teacher as? ModelTeacher)?.model, let shapes = model.layerOutputShapes else {
                throw TrainingError("feature distillation (--hint, --attention, --similarity) needs one teacher model file, not an ensemble or a logit store")
            }
            teacherModel = model
            var generator = RandomGenerator(seed: seed ^ 0x6665_6174_7572_6573)  // "features"
            for (k, term) in terms.enumerated() {
                let name = "--\(term.kind.rawValue) \(term.studentLayer):\(term.teacherLayer)"
                guard term.weight.isFinite, term.weight >= 0 else {
                    throw ConfigurationError(field: "features[\(k)].weight", "must be a finite number >= 0, got \(term.weight)")
                }
                guard studentShapes.indices.contains(term.studentLayer) else {
                    throw TrainingError("\(name): the student has layers 0...\(studentShapes.count - 1) (\(Self.describe(studentDescription.layers, studentShapes)))")
                }
                guard shapes.indices.contains(term.teacherLayer) else {
                    throw TrainingError("\(name): the teacher has layers 0...\(shapes.count - 1) (\(Self.describe(model.layers.map(\.layerDescription), shapes)))")
                }
                let s = studentShapes[term.studentLayer], t = shapes[term.teacherLayer]
                switch term.kind {
                case .attention:
                    guard s.count == 3, t.count == 3, s[1] == t[1], s[2] == t[2] else {
                        throw TrainingError("\(name): attention transfer needs feature maps [channels, height, width] of the same height and width; student layer \(term.studentLayer) gives \(s), teacher layer \(term.teacherLayer) gives \(t)")
                    }
                    regressors.append(nil)
                case .similarity:
                    regressors.append(nil)
                case .hint:
                    if s.count == 3, t.count == 3, s[1] == t[1], s[2] == t[2] {
                        let g = ConvolutionGeometry(inChannels: s[0], outChannels: t[0], height: s[1], width: s[2], kernel: (1, 1))
                        regressors.append(Conv2d(geometry: g, bias: true, generator: &generator))
                    } else if s.count == 1 {
                        regressors.append(Linear(inputCount: s[0], outputCount: t.reduce(1, *), generator: &generator))
                    } else {
                        throw TrainingError("\(name): no regressor maps student features \(s) to teacher features \(t) (feature maps of the same height and width, or a flat student layer, e.g. after flatten)")
                    }
                }
                teacherShapes.append(t)
                columns.append(width..<(width + t.reduce(1, *)))
                width += t.reduce(1, *)
            }
        }
        self.teacherModel = teacherModel
        self.teacherShapes = teacherShapes
        self.columns = columns
        self.regressors = regressors
        self.width = width
    }

    static func describe(_ layers: [LayerDescription], _ shapes: [[Int]]) -> String {
        zip(layers, shapes).enumerated().map { "\($0.offset) \($0.element.0.kind) \($0.element.1)" }.joined(separator: ", ")
    }

    public var name: String { "distillation" }

    public var identity: String {
        var text = "distillation teacher=\(teacher.identity) T=\(loss.temperature) hard=\(loss.hardWeight) soft=\(loss.softWeight) T2=\(loss.scaleSoftBySquaredTemperature)"
        if let decoupled {
            text += " dkd=\(decoupled.alpha),\(decoupled.beta)"
            if decoupled.warmupEpochs > 0 { text += ",warmup=\(decoupled.warmupEpochs)" }
        }
        for term in terms { text += " \(term.kind.rawValue)=\(term.studentLayer):\(term.teacherLayer):\(term.weight)" }
        return text
    }

    /// The epoch in progress (counted from 0), which DKD's warm-up reads.
    public private(set) var epoch = 0
    public func beginEpoch(_ epoch: Int) { self.epoch = epoch }

    public var preparesInBackground: Bool { teacher.computesPerBatch }
    public var studentFeatureLayers: Set<Int> { Set(terms.map(\.studentLayer)) }

    public var namedParameters: [(name: String, parameter: Variable)] {
        regressors.enumerated().flatMap { k, layer in
            (layer?.namedParameters ?? []).map { ("regressor\(k).\($0.name)", $0.parameter) }
        }
    }

    /// The teacher's T = 1 logits and paired features, `[b, C + features]`.
    public func prepare(batch: Batch, inputs: Tensor) throws -> Tensor? {
        let indices = exampleIndices.map { map in batch.indices.map { map[$0] } } ?? batch.indices
        guard let teacherModel else { return try teacher.logits(batch: inputs, indices: indices) }
        let b = batch.count, c = teacher.classCount
        // One forward pass gives the logits and the paired layers' outputs.
        try checkModelInput(teacherModel, inputs, what: "teacher \(teacher.identity.prefix(12))")
        let (logits, captured) = teacherModel.infer(inputs, capturing: Set(terms.map(\.teacherLayer)))
        guard logits.shape == [b, c] else {
            throw TrainingError("teacher \(teacher.identity.prefix(12)): output shape \(logits.shape), expected [\(b), \(c)]")
        }
        return Tensor(shape: [b, width]) { out in
            logits.withUnsafeBufferPointer { lb in
                for r in 0..<b { for j in 0..<c { out[r * width + j] = lb[r * c + j] } }
            }
            for (k, term) in terms.enumerated() {
                guard let features = captured[term.teacherLayer] else { continue }
                let n = columns[k].count
                features.withUnsafeBufferPointer { fb in
                    for r in 0..<b { for j in 0..<n { out[r * width + columns[k].lowerBound + j] = fb[r * n + j] } }
                }
            }
        }
    }

    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor) throws -> (loss: Variable, parts: [String: Double]) {
        try loss(studentLogits: studentLogits, studentFeatures: [:], batch: batch, inputs: inputs, prepared: nil)
    }

    public func loss(studentLogits: Variable, batch: Batch, inputs: Tensor, prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double]) {
        try loss(studentLogits: studentLogits, studentFeatures: [:], batch: batch, inputs: inputs, prepared: prepared)
    }

    public func loss(studentLogits: Variable, studentFeatures: [Int: Variable], batch: Batch, inputs: Tensor,
                     prepared: Tensor?) throws -> (loss: Variable, parts: [String: Double]) {
        let b = batch.count, c = teacher.classCount
        let teacherRows = try prepared ?? prepare(batch: batch, inputs: inputs) ?? Tensor.zeros([b, width])
        guard teacherRows.shape == [b, width] else {
            throw TrainingError("teacher outputs of shape \(teacherRows.shape) for a batch of \(b), expected [\(b), \(width)]")
        }
        func slice(_ range: Range<Int>, _ shape: [Int]) -> Tensor {
            Tensor(shape: [b] + shape) { out in
                teacherRows.withUnsafeBufferPointer { tb in
                    let n = range.count
                    for r in 0..<b { for j in 0..<n { out[r * n + j] = tb[r * width + range.lowerBound + j] } }
                }
            }
        }
        let teacherLogits = slice(0..<c, [c])
        var parts: [String: Double] = [:]
        var total: Variable
        if let decoupled {
            let factor = decoupled.warmupFactor(epoch: epoch)
            let (dkd, tckd, nckd) = decoupledKDLoss(studentLogits: studentLogits, teacherLogits: teacherLogits, labels: batch.labels,
                                                    alpha: decoupled.alpha * factor, beta: decoupled.beta * factor,
                                                    temperature: loss.temperature)
            parts["tckd"] = tckd
            parts["nckd"] = nckd
            total = dkd
            if loss.hardWeight > 0 {
                let hard = crossEntropy(logits: studentLogits, labels: batch.labels)
                parts["hard"] = Double(hard.value.scalar)
                total = total + loss.hardWeight * hard
            }
        } else if loss.softWeight > 0 {
            let targets = Softmax.softmax(teacherLogits, temperature: loss.temperature)
            let (value, p) = distillationLoss(studentLogits: studentLogits, teacherProbabilities: targets, labels: batch.labels,
                                              configuration: loss)
            parts = DistillationObjective.reported(p)
            total = value
        } else {
            let hard = crossEntropy(logits: studentLogits, labels: batch.labels)
            parts["hard"] = Double(hard.value.scalar)
            total = loss.hardWeight * hard
        }
        for (k, term) in terms.enumerated() where term.weight > 0 {
            guard let features = studentFeatures[term.studentLayer] else {
                throw TrainingError("the student's layer \(term.studentLayer) output was not captured")
            }
            let target = slice(columns[k], teacherShapes[k])
            let value: Variable
            switch term.kind {
            case .attention:
                value = attentionTransferLoss(studentFeatures: features, teacherFeatures: target)
            case .similarity:
                value = similarityPreservingLoss(studentFeatures: features, teacherFeatures: target)
            case .hint:
                var context = ForwardContext(training: true)
                guard let regressor = regressors[k] else { continue }
                var mapped = regressor.forward(features, context: &context)
                if mapped.shape != target.shape { mapped = reshape(mapped, target.shape) }
                value = hintLoss(studentFeatures: mapped, teacherFeatures: target)
            }
            parts["\(term.kind.rawValue)\(k)", default: 0] += Double(value.value.scalar)
            total = total + term.weight * value
        }
        return (total, parts)
    }
}
