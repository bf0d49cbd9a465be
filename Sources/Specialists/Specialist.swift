import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore

/// A specialist (the paper's section 5.2): the generalist's architecture with its output layer reduced to a subset
/// of the classes plus one "dustbin" class standing for every other class.
///
/// Output i < m is class `classes[i]`; output m is the dustbin. The model is trained on data in which half the
/// examples come from the subset, so its dustbin is under-represented by the factor
/// `oversampling` = (subset share / dustbin share in training) / (the same ratio in the natural data); afterwards
/// the dustbin logit is raised by log(oversampling) (``dustbinCorrection``), the paper's correction.
public struct Specialist {
    /// The subset, in output order (sorted).
    public let classes: [Int]
    /// The generalist's class count C.
    public let classCount: Int
    /// m + 1 outputs: the subset, then the dustbin.
    public let model: Sequential
    /// Added to the dustbin logit at inference: log of the oversampling factor (0 = uncorrected).
    public var dustbinCorrection: Float

    public init(classes: [Int], classCount: Int, model: Sequential, dustbinCorrection: Float) {
        self.classes = classes
        self.classCount = classCount
        self.model = model
        self.dustbinCorrection = dustbinCorrection
    }

    /// Output index of each generalist class: its position in the subset, or m (the dustbin).
    public var outputOfClass: [Int] { Specialist.outputMap(classes: classes, classCount: classCount) }

    public static func outputMap(classes: [Int], classCount: Int) -> [Int] {
        var map = [Int](repeating: classes.count, count: classCount)
        for (i, c) in classes.enumerated() { map[c] = i }
        return map
    }

    /// The corrected logits `[b, m + 1]` of `inputs`.
    public func logits(_ inputs: Tensor) -> Tensor {
        var z = model.infer(inputs)
        let m = classes.count, rows = z.shape[0]
        if dustbinCorrection != 0 { for r in 0..<rows { z[flat: r * (m + 1) + m] += dustbinCorrection } }
        return z
    }

    /// softmax of ``logits(_:)``: the specialist's distribution over its subset and the dustbin.
    public func probabilities(_ inputs: Tensor) -> Tensor { Softmax.softmax(logits(inputs)) }

    /// The initial model: a copy of `generalist` whose last layer (a Linear layer, [C, h]) keeps the rows of the
    /// subset's classes and gets one dustbin row, the mean of the other classes' rows, with bias
    /// mean(other biases) + log(C - m): the log-sum-exp of C - m equal logits, so the dustbin starts out near the
    /// generalist's total probability of the other classes.
    /// - Throws: ``SpecialistError`` when the generalist does not end in a Linear layer with C outputs, or the
    ///   subset is empty, holds every class, or has classes out of range.
    public static func initialModel(generalist: Sequential, classes: [Int]) throws -> Sequential {
        guard let description = generalist.modelDescription, let last = generalist.layers.last as? Linear else {
            throw SpecialistError("a specialist copies its generalist's layers and replaces the last, which must be a Linear layer")
        }
        let c = last.outputCount
        guard !classes.isEmpty, classes.count < c, classes.allSatisfy({ $0 >= 0 && $0 < c }), Set(classes).count == classes.count else {
            throw SpecialistError("a specialist's subset must hold 1 to \(c - 1) distinct classes in 0..<\(c), got \(classes)")
        }
        var generator = RandomGenerator(seed: 0)
        let copy = try description.build(generator: &generator)
        for (p, q) in zip(copy.namedState, generalist.namedState) { p.variable.value = q.variable.value }
        let h = last.inputCount, m = classes.count
        let others = (0..<c).filter { !Set(classes).contains($0) }
        let w = last.weight.value, b = last.bias.value
        var weight = [Float](repeating: 0, count: (m + 1) * h), bias = [Float](repeating: 0, count: m + 1)
        for (i, cls) in classes.enumerated() {
            for e in 0..<h { weight[i * h + e] = w[flat: cls * h + e] }
            bias[i] = b[flat: cls]
        }
        var meanBias = 0.0
        for o in others {
            for e in 0..<h { weight[m * h + e] += w[flat: o * h + e] / Float(others.count) }
            meanBias += Double(b[flat: o])
        }
        bias[m] = Float(meanBias / Double(others.count) + Foundation.log(Double(others.count)))
        let output = Linear(weight: Tensor(shape: [m + 1, h], scalars: weight), bias: Tensor(shape: [m + 1], scalars: bias))
        return Sequential(Array(copy.layers.dropLast()) + [output], inputShape: generalist.inputShape)
    }
}

/// The specialist's training set, half from its subset and half from the rest (the paper's composition): `rest`
/// examples drawn at random without replacement from outside the subset (all of them when there are fewer), and
/// the subset's examples repeated as often as it takes to match them (at least once each; repeats are spread evenly,
/// the remainder drawn at random). Labels are renumbered to outputs (dustbin = m). With `rest` nil, as many others
/// as the subset has examples. A larger `rest` shows the dustbin more of the other classes, which is what keeps a
/// specialist from forgetting them on a small data set.
public struct SpecialistData {
    /// Positions in the full training set (repeats included), in training-set order.
    public let indices: [Int]
    public let dataset: LabeledDataset
    /// (subset share / dustbin share in `dataset`) / (the same in the full set): log of it is the dustbin correction.
    public let oversampling: Double

    public init(training: LabeledDataset, classes: [Int], seed: UInt64, rest: Int? = nil) throws {
        let map = Specialist.outputMap(classes: classes, classCount: training.classCount)
        let m = classes.count
        let inside = (0..<training.count).filter { map[training.labels[$0]] < m }
        let outside = (0..<training.count).filter { map[training.labels[$0]] == m }
        guard !inside.isEmpty, !outside.isEmpty else {
            throw SpecialistError("the training set needs examples inside and outside the subset \(classes) (found \(inside.count) and \(outside.count))")
        }
        var generator = RandomGenerator(seed: seed)
        let wanted = Swift.min(outside.count, Swift.max(rest ?? inside.count, 1))
        let drawn = wanted == outside.count ? outside : generator.permutation(outside.count).prefix(wanted).map { outside[$0] }
        // The subset repeated to match: every example floor(wanted / inside) times, the remainder drawn at random.
        var repeated: [Int] = []
        let copies = Swift.max(1, drawn.count / inside.count)
        for _ in 0..<copies { repeated += inside }
        if drawn.count > repeated.count {
            repeated += generator.permutation(inside.count).prefix(drawn.count - repeated.count).map { inside[$0] }
        }
        indices = (repeated + drawn).sorted()
        dataset = training.subset(indices: indices).relabelled(indices.map { map[training.labels[$0]] }, classCount: m + 1)
        oversampling = (Double(repeated.count) / Double(drawn.count)) / (Double(inside.count) / Double(outside.count))
    }
}

/// The generalist's soft targets seen by a specialist: its probabilities at temperature T on the subset's classes,
/// and their remainder on the dustbin. T = 1 logits are the log of the T = 1 targets.
public final class SubsetTeacher: Teacher {
    public let base: Teacher
    public let classes: [Int]
    private let map: [Int]

    public init(base: Teacher, classes: [Int]) {
        self.base = base
        self.classes = classes
        self.map = Specialist.outputMap(classes: classes, classCount: base.classCount)
    }

    public var classCount: Int { classes.count + 1 }
    public var identity: String { "\(base.identity) subset \(classes.map(String.init).joined(separator: ","))" }
    public var computesPerBatch: Bool { base.computesPerBatch }

    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        project(try base.softTargets(batch: images, indices: indices, temperature: temperature))
    }

    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        var p = project(try base.softTargets(batch: images, indices: indices, temperature: 1))
        for i in 0..<p.count { p[flat: i] = Foundation.log(Swift.max(p[flat: i], .leastNormalMagnitude)) }
        return p
    }

    /// `[b, C]` probabilities -> `[b, m + 1]`: the subset's, then the rest summed.
    public func project(_ p: Tensor) -> Tensor {
        let rows = p.shape[0], c = p.shape[1], m = classes.count
        return Tensor(shape: [rows, m + 1]) { out in
            for i in 0..<out.count { out[i] = 0 }
            p.withUnsafeBufferPointer { pb in
                for r in 0..<rows { for j in 0..<c { out[r * (m + 1) + map[j]] += pb[r * c + j] } }
            }
        }
    }
}

/// Logits of `model` for every example of `dataset`, `[N, outputs]`, `batchSize` rows at a time (no dropout).
public func logitsOf(_ model: Sequential, _ dataset: LabeledDataset, batchSize: Int = 1000) -> Tensor {
    var parts: [Float] = []
    var width = 0
    var start = 0
    while start < dataset.count {
        let end = Swift.min(start + batchSize, dataset.count)
        let z = model.infer(dataset.inputs(rows: start..<end))
        width = z.shape[1]
        parts.append(contentsOf: z.scalars)
        start = end
    }
    return Tensor(shape: [dataset.count, width], scalars: parts)
}
