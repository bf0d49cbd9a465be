import Foundation
import TensorCore
import TensorIO

/// A resumable training checkpoint (`<output>.state`): a safetensors file holding everything a `Trainer` needs to
/// continue a run exactly where it stopped.
///
/// Tensors (all F32, bit-exact): the model's weights and buffers (batch-norm statistics) under their state-dict names
/// (`0.weight`, `0.bias`, `1.running_mean`, ...), the
/// optimizer state as `optimizer.<name>` (`optimizer.momentum_buffer.0`, `optimizer.exp_avg.0`, `optimizer.step.0`,
/// ...), and, when a validation split is used and an epoch has been selected, the best weights so far as
/// `best.<name>`.
///
/// Metadata (`__metadata__`, every value a string):
/// - `format`: `distill-training-state/1`
/// - `training`: the `TrainingConfiguration` as JSON
/// - `objective`: the objective's identity (`labels`, or a distillation objective's teacher hash); `objective_name`
/// - `epoch`: finished epochs (0-based index of the epoch in progress); `batch`: batches done within it (the cursor)
/// - `generators`: JSON `{"batch_order": [4 hex words], "dropout": [...], "jitter": [...]}`; `batch_order` is the
///   batch iterator's generator at the start of the current epoch (it rebuilds the epoch's order)
/// - `report`: the `TrainingReport` so far (finished epochs) as JSON
/// - `loss_sums`: JSON `{"batches": n, "loss": hex bits, "parts": {name: hex bits}}`, the running sums of the
///   epoch in progress (Double bit patterns, so the epoch's mean loss does not depend on where the run resumed)
/// - `best_errors`: best validation errors so far (only with a validation split and a selected epoch)
/// - `train_count`, `class_count`, `feature_count`, `validation_count`, `train_fingerprint`
///   (`LabeledDataset.fingerprint` of the training split after the validation hold-out)
public struct TrainingState {
    public static let format = "distill-training-state/1"

    public var configuration: TrainingConfiguration
    public var objectiveIdentity: String
    public var objectiveName: String
    public var epoch: Int
    public var batch: Int
    public var batchOrderGenerator: RandomGenerator
    public var dropoutGenerator: RandomGenerator
    public var jitterGenerator: RandomGenerator
    public var report: TrainingReport
    public var epochBatches: Int
    public var epochLossSum: Double
    public var epochPartSums: [String: Double]
    public var bestErrors: Int?
    public var trainCount: Int
    public var classCount: Int
    public var featureCount: Int
    public var validationCount: Int
    public var trainFingerprint: String
    /// Model weights by state-dict name.
    public var weights: [(name: String, tensor: Tensor)]
    /// Optimizer state (names without the `optimizer.` prefix).
    public var optimizerState: [String: Tensor]
    /// Best weights by state-dict name (empty when none).
    public var bestWeights: [(name: String, tensor: Tensor)]

    struct Generators: Codable {
        var batch_order: [String]
        var dropout: [String]
        var jitter: [String]
    }

    struct LossSums: Codable {
        var batches: Int
        var loss: String
        var parts: [String: String]
    }

    static func hex(_ g: RandomGenerator) -> [String] { g.stateWords.map { String($0, radix: 16) } }
    static func hex(_ d: Double) -> String { String(d.bitPattern, radix: 16) }

    /// Writes the state atomically (temporary file, fsync, rename over any previous state).
    public func write(to url: URL) throws {
        var tensors: [(name: String, tensor: Tensor, dtype: DType)] = []
        for (name, t) in weights { tensors.append((name, t, .f32)) }
        for name in optimizerState.keys.sorted() { tensors.append(("optimizer." + name, optimizerState[name]!, .f32)) }
        for (name, t) in bestWeights { tensors.append(("best." + name, t, .f32)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        var meta: [String: String] = [
            "format": TrainingState.format,
            "training": try json(configuration),
            "objective": objectiveIdentity,
            "objective_name": objectiveName,
            "epoch": String(epoch),
            "batch": String(batch),
            "generators": try json(Generators(batch_order: TrainingState.hex(batchOrderGenerator),
                                              dropout: TrainingState.hex(dropoutGenerator),
                                              jitter: TrainingState.hex(jitterGenerator))),
            "report": try json(report),
            "loss_sums": try json(LossSums(batches: epochBatches, loss: TrainingState.hex(epochLossSum),
                                           parts: epochPartSums.mapValues(TrainingState.hex))),
            "train_count": String(trainCount),
            "class_count": String(classCount),
            "feature_count": String(featureCount),
            "validation_count": String(validationCount),
            "train_fingerprint": trainFingerprint,
        ]
        if let bestErrors { meta["best_errors"] = String(bestErrors) }
        do {
            try SafeTensors.write(tensors: tensors, metadata: meta, to: url, overwrite: true)
        } catch let error as TensorIOError {
            throw TrainingError("cannot write the training state: \(error)")
        }
    }

    /// Reads a state file; every problem is a `TrainingError` naming the file.
    public static func read(url: URL) throws -> TrainingState {
        let source = url.path
        func fail(_ text: String) -> TrainingError { TrainingError("\(source): \(text)") }
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(url: url) } catch let error as TensorIOError {
            throw TrainingError("cannot read the training state: \(error)")
        }
        let meta = file.metadata
        guard meta["format"] == format else {
            throw fail("not a training state file (metadata format is \(meta["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)')")
        }
        func string(_ key: String) throws -> String {
            guard let v = meta[key] else { throw fail("metadata '\(key)' is missing") }
            return v
        }
        func int(_ key: String) throws -> Int {
            guard let v = Int(try string(key)) else { throw fail("metadata '\(key)' is not an integer") }
            return v
        }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            do { return try JSONDecoder().decode(type, from: Data(try string(key).utf8)) } catch let e as TrainingError { throw e } catch {
                throw fail("metadata '\(key)' is not valid: \(error)")
            }
        }
        func generator(_ words: [String], _ key: String) throws -> RandomGenerator {
            let parsed = words.compactMap { UInt64($0, radix: 16) }
            guard parsed.count == 4, words.count == 4 else { throw fail("generator '\(key)' needs 4 hex words") }
            return RandomGenerator(stateWords: parsed)
        }
        func double(_ text: String) throws -> Double {
            guard let bits = UInt64(text, radix: 16) else { throw fail("loss sum '\(text)' is not a hex bit pattern") }
            return Double(bitPattern: bits)
        }
        let generators = try decode(Generators.self, "generators")
        let sums = try decode(LossSums.self, "loss_sums")
        var weights: [(String, Tensor)] = []
        var optimizer: [String: Tensor] = [:]
        var best: [(String, Tensor)] = []
        for name in file.names {
            let tensor: Tensor
            do { tensor = try file.tensor(named: name) } catch { throw fail("\(error)") }
            if name.hasPrefix("optimizer.") { optimizer[String(name.dropFirst("optimizer.".count))] = tensor }
            else if name.hasPrefix("best.") { best.append((String(name.dropFirst("best.".count)), tensor)) }
            else { weights.append((name, tensor)) }
        }
        var parts: [String: Double] = [:]
        for (k, v) in sums.parts { parts[k] = try double(v) }
        return TrainingState(
            configuration: try decode(TrainingConfiguration.self, "training"),
            objectiveIdentity: try string("objective"), objectiveName: meta["objective_name"] ?? "",
            epoch: try int("epoch"), batch: try int("batch"),
            batchOrderGenerator: try generator(generators.batch_order, "batch_order"),
            dropoutGenerator: try generator(generators.dropout, "dropout"),
            jitterGenerator: try generator(generators.jitter, "jitter"),
            report: try decode(TrainingReport.self, "report"),
            epochBatches: sums.batches, epochLossSum: try double(sums.loss), epochPartSums: parts,
            bestErrors: meta["best_errors"].flatMap { Int($0) },
            trainCount: try int("train_count"), classCount: try int("class_count"), featureCount: try int("feature_count"),
            validationCount: try int("validation_count"), trainFingerprint: try string("train_fingerprint"),
            weights: weights, optimizerState: optimizer, bestWeights: best)
    }
}
