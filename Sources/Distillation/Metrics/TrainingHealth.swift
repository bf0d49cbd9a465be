import Foundation
import TensorCore
import NeuralNet
import Datasets

/// Whether a trained network is in a sane state: dead ReLU units and weight norms per `Linear` and `Conv2d` layer.
///
/// A collapsed run can hide behind a plausible error count (a student with 700 of its 800 first-layer units dead
/// still classifies most digits), so every experiment reports this beside its errors. A unit is *dead* when its ReLU
/// output is zero on every example of the sample (the first `sampleCount` training examples, un-augmented, in
/// evaluation mode).
public struct TrainingHealth: Codable, Equatable, Sendable {
    public struct LayerHealth: Codable, Equatable, Sendable {
        /// Position of the layer among the model's `Linear` and `Conv2d` layers (0-based).
        public var index: Int
        public var inputCount: Int
        public var outputCount: Int
        /// Frobenius norm of the weight matrix.
        public var weightNorm: Double
        /// Largest L2 norm of one unit's incoming weights (what a max-norm constraint bounds).
        public var maxUnitNorm: Double
        /// Units whose ReLU output is zero on every sample example; nil for a layer without a ReLU after it.
        public var deadUnits: Int?
        /// Mean fraction of the layer's ReLU outputs that are nonzero over the sample; nil without a ReLU.
        public var activeFraction: Double?

        enum CodingKeys: String, CodingKey {
            case index
            case inputCount = "input_count", outputCount = "output_count", weightNorm = "weight_norm"
            case maxUnitNorm = "max_unit_norm", deadUnits = "dead_units", activeFraction = "active_fraction"
        }
    }

    public var layers: [LayerHealth]
    public var sampleCount: Int

    /// Dead units over all hidden (ReLU) units.
    public var deadFraction: Double {
        let hidden = layers.filter { $0.deadUnits != nil }
        let total = hidden.reduce(0) { $0 + $1.outputCount }
        return total == 0 ? 0 : Double(hidden.reduce(0) { $0 + ($1.deadUnits ?? 0) }) / Double(total)
    }

    /// The largest dead fraction a run may have and still be called healthy.
    public static let deadFractionLimit = 0.25

    /// Finite weights and at most `deadFractionLimit` of the hidden units dead.
    public var healthy: Bool {
        deadFraction <= TrainingHealth.deadFractionLimit && layers.allSatisfy { $0.weightNorm.isFinite }
    }

    public init(layers: [LayerHealth], sampleCount: Int) {
        self.layers = layers
        self.sampleCount = sampleCount
    }

    enum CodingKeys: String, CodingKey {
        case layers, sampleCount = "sample_count", deadFraction = "dead_fraction", healthy
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode([LayerHealth].self, forKey: .layers)
        sampleCount = try c.decode(Int.self, forKey: .sampleCount)
    }

    /// Encodes the measured figures and the derived `dead_fraction` and `healthy`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(layers, forKey: .layers)
        try c.encode(sampleCount, forKey: .sampleCount)
        try c.encode(deadFraction, forKey: .deadFraction)
        try c.encode(healthy, forKey: .healthy)
    }

    /// The JSON form used in reports (the `Encodable` form as a dictionary).
    public func jsonObject() -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [:] }
        return object
    }

    /// One line: dead units and weight norms per layer, e.g. `dead 0/800 3/800, |W| 31.2 28.4 6.1, healthy`.
    public var summary: String {
        let dead = layers.compactMap { l in l.deadUnits.map { "\($0)/\(l.outputCount)" } }.joined(separator: " ")
        let norms = layers.map { String(format: "%.1f", $0.weightNorm) }.joined(separator: " ")
        return "dead units \(dead.isEmpty ? "-" : dead), weight norms \(norms), \(healthy ? "healthy" : "UNHEALTHY")"
    }

    /// Measures `model` on the first `sampleCount` examples of `dataset` (all of them when fewer).
    public static func measure(model: Sequential, dataset: LabeledDataset, sampleCount: Int = 10_000) -> TrainingHealth {
        let n = Swift.min(sampleCount, dataset.count)
        return measure(model: model, inputs: dataset.inputs(rows: 0..<n))
    }

    /// Measures `model` on `inputs` `[n, features]`, layer by layer in evaluation mode. Weight layers are the
    /// `Linear` and `Conv2d` layers of the top-level sequence (nested sequences expanded; a residual block counts as
    /// one layer without weights of its own); a layer's units are its outputs (a convolution's: its channels), dead
    /// when the ReLU right after it (or after its batch norm) is zero for every example (and position). The examples
    /// run in chunks small enough to keep each activation tensor under 64 MiB.
    public static func measure(model: Sequential, inputs: Tensor) -> TrainingHealth {
        let flat = flatten(model.layers)
        let n = inputs.rank >= 1 ? inputs.shape[0] : 0
        // Weight layers and where their ReLU is: the next layer, or the one after a batch norm.
        var weightLayers: [(position: Int, relu: Int?)] = []
        for (i, layer) in flat.enumerated() where layer is Linear || layer is Conv2d {
            var next = i + 1
            if next < flat.count, flat[next] is BatchNormalization { next += 1 }
            weightLayers.append((i, next < flat.count && flat[next] is ReLU ? next : nil))
        }
        var result: [LayerHealth] = weightLayers.enumerated().map { k, entry in
            let layer = flat[entry.position]
            let weight = (layer as? Linear)?.weight.value ?? (layer as? Conv2d)?.weight.value ?? Tensor.zeros([1, 1])
            let (norm, maxUnit) = norms(weight)
            let (inputs, outputs) = (layer as? Linear).map { ($0.inputCount, $0.outputCount) }
                ?? (layer as? Conv2d).map { ($0.geometry.inChannels, $0.geometry.outChannels) } ?? (0, 0)
            return LayerHealth(index: k, inputCount: inputs, outputCount: outputs, weightNorm: norm, maxUnitNorm: maxUnit,
                               deadUnits: nil, activeFraction: nil)
        }
        guard n > 0 else { return TrainingHealth(layers: result, sampleCount: 0) }
        let largest = max(model.layerOutputShapes?.map { $0.reduce(1, *) }.max() ?? 1, model.inputShape?.reduce(1, *) ?? 1, 1)
        let chunk = max(1, min(n, (1 << 24) / largest))
        var alive: [Int: [Bool]] = [:]
        var nonzero: [Int: Int] = [:], total: [Int: Int] = [:]
        var start = 0
        while start < n {
            let end = min(start + chunk, n)
            let rows = inputs.rows(start..<end)
            var x = model.inputShape.map { rows.reshaped([end - start] + $0) } ?? rows
            var i = 0
            while i < flat.count {
                if let linear = flat[i] as? Linear, i + 1 < flat.count, flat[i + 1] is ReLU {
                    x = linearForward(x, weight: linear.weight.value, bias: linear.bias.value, activation: .relu)
                    i += 1
                } else {
                    x = flat[i].infer(x)
                }
                if let k = weightLayers.firstIndex(where: { $0.relu == i }) {
                    let (units, active, count) = activity(x)
                    alive[k] = zip(alive[k] ?? units, units).map { $0 || $1 }
                    nonzero[k, default: 0] += active
                    total[k, default: 0] += count
                }
                i += 1
            }
            start = end
        }
        for k in result.indices {
            guard let units = alive[k] else { continue }
            result[k].deadUnits = units.filter { !$0 }.count
            result[k].activeFraction = Double(nonzero[k] ?? 0) / Double(max(total[k] ?? 1, 1))
        }
        return TrainingHealth(layers: result, sampleCount: n)
    }

    static func flatten(_ layers: [Layer]) -> [Layer] {
        layers.flatMap { layer -> [Layer] in (layer as? Sequential).map { flatten($0.layers) } ?? [layer] }
    }

    /// Frobenius norm and the largest row norm of a `[out, in]` weight matrix.
    static func norms(_ weight: Tensor) -> (Double, Double) {
        let rows = weight.shape[0], columns = weight.count / Swift.max(rows, 1)
        var total = 0.0, largest = 0.0
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                var s = 0.0
                for c in 0..<columns { let v = Double(w[r * columns + c]); s += v * v }
                total += s
                largest = Swift.max(largest, s)
            }
        }
        return (total.squareRoot(), largest.squareRoot())
    }

    /// Per unit of `[n, units, ...]` ReLU outputs (a channel for feature maps), whether it is nonzero anywhere;
    /// the nonzero outputs and all outputs.
    static func activity(_ activations: Tensor) -> (alive: [Bool], nonzero: Int, count: Int) {
        let n = activations.shape[0], units = activations.rank >= 2 ? activations.shape[1] : 1
        let positions = activations.shape.dropFirst(2).reduce(1, *)
        var alive = [Bool](repeating: false, count: units)
        var nonzero = 0
        activations.withUnsafeBufferPointer { a in
            for r in 0..<n {
                for u in 0..<units {
                    let base = (r * units + u) * positions
                    var count = 0
                    for p in 0..<positions where a[base + p] != 0 { count += 1 }
                    if count > 0 { alive[u] = true }
                    nonzero += count
                }
            }
        }
        return (alive, nonzero, n * units * positions)
    }
}
