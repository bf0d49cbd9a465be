import Foundation
import TensorCore
import NeuralNet
import Checkpoints

/// A trained model ready to answer: loads a model file, applies the input standardisation it was trained with, and
/// returns class probabilities and the predicted class by name. No training code: this module depends on the
/// network definition and the model file format only.
///
///     let predictor = try Predictor(contentsOf: URL(fileURLWithPath: "student.safetensors"))
///     for p in try predictor.predict([features]) { print(p.className, p.probability) }
public final class Predictor {
    /// One example's answer.
    public struct Prediction: Sendable {
        public var classIndex: Int
        public var className: String
        /// The predicted class's probability.
        public var probability: Float
        /// Every class's probability (softmax of the logits at T = 1), by class index.
        public var probabilities: [Float]
    }

    public let model: Sequential
    /// The model prepared for inference (``CompiledModel``), what `predict` runs.
    public let compiled: CompiledModel
    /// Class names by index ("0", "1", ... when the model file has none).
    public let classNames: [String]
    /// Values per example the model takes.
    public let featureCount: Int
    let mean: [Float]?
    let std: [Float]?

    /// The data description a model file records (what prediction needs of it).
    struct DataDescription: Decodable {
        struct Standardization: Decodable { var mean: [Float]; var std: [Float] }
        var class_names: [String]?
        var standardization: Standardization?
    }

    public init(contentsOf url: URL) throws {
        let checkpoint = try ModelCheckpoint.read(url: url)
        model = checkpoint.model
        compiled = CompiledModel(checkpoint.model)
        featureCount = checkpoint.inputCount
        let data = try checkpoint.metadata["data"].map { text -> DataDescription in
            do { return try JSONDecoder().decode(DataDescription.self, from: Data(text.utf8)) } catch {
                throw CheckpointError("\(url.path): metadata 'data' is not a data description")
            }
        }
        let classes = checkpoint.classCount
        let names = data?.class_names ?? (0..<classes).map(String.init)
        guard names.count == classes else {
            throw CheckpointError("\(url.path): \(names.count) class names for \(classes) outputs")
        }
        classNames = names
        if let s = data?.standardization {
            guard s.mean.count == featureCount, s.std.count == featureCount else {
                throw CheckpointError("\(url.path): the standardisation has \(s.mean.count) features, the model takes \(featureCount)")
            }
            mean = s.mean
            std = s.std
        } else {
            mean = nil
            std = nil
        }
    }

    /// Predictions for examples given as rows of raw features.
    public func predict(_ rows: [[Float]]) throws -> [Prediction] {
        for (i, row) in rows.enumerated() {
            guard row.count == featureCount else {
                throw CheckpointError("example \(i): \(row.count) values, the model takes \(featureCount)")
            }
        }
        return try predict(batch: Tensor(shape: [rows.count, featureCount], scalars: rows.flatMap { $0 }))
    }

    /// Predictions for a batch `[n, ...]` of raw features (`featureCount` values per example).
    public func predict(batch: Tensor) throws -> [Prediction] {
        guard batch.rank >= 1, batch.count == batch.shape[0] * featureCount else {
            throw CheckpointError("inputs of shape \(batch.shape): expected [examples, \(featureCount)]")
        }
        let n = batch.shape[0]
        guard n > 0 else { return [] }
        if let bad = batch.withUnsafeBufferPointer({ $0.firstIndex { !$0.isFinite } }) {
            throw CheckpointError("example \(bad / featureCount), value \(bad % featureCount): \(batch[flat: bad]) is not a finite number")
        }
        var x = batch.reshaped([n, featureCount])
        if let mean, let std {
            let f = featureCount
            x = Tensor(shape: [n, f]) { out in
                batch.withUnsafeBufferPointer { b in for i in 0..<(n * f) { out[i] = (b[i] - mean[i % f]) / std[i % f] } }
            }
        }
        let logits = compiled.infer(x)
        let c = classNames.count
        var out: [Prediction] = []
        out.reserveCapacity(n)
        logits.withUnsafeBufferPointer { z in
            for r in 0..<n {
                let row = UnsafeBufferPointer(rebasing: z[(r * c)..<((r + 1) * c)])
                let top = row.max() ?? 0
                var p = row.map { Foundation.exp(Double($0 - top)) }
                let sum = p.reduce(0, +)
                p = p.map { $0 / sum }
                let best = p.indices.max { p[$0] < p[$1] } ?? 0
                out.append(Prediction(classIndex: best, className: classNames[best], probability: Float(p[best]),
                                      probabilities: p.map(Float.init)))
            }
        }
        return out
    }
}
