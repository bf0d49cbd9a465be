import Datasets
import Foundation
import Distributed
import NeuralNet
import TensorCore
import TensorIO

/// Teacher logits precomputed once for every example of a dataset, so training need not run the teacher.
///
/// File: safetensors holding either `"logits"` `[N, C]` (F32 or F16) or, for a top-k store, `"topk_values"`
/// `[N, K]` (F32 or F16, descending per row), `"topk_indices"` `[N, K]` (I64 or I32, the class of each value) and
/// `"topk_logsumexp"` `[N]` (F32, log sum_j exp(z_j) over all C classes: what the kept classes leave out, for
/// ``MissingMass``; stores without it support only ``MissingMass/renormalize``).
/// `__metadata__` stamps what the logits belong to: `format` = `distill-teacher-logits/1`, `teacher_identity`,
/// `dataset_fingerprint` (``LabeledDataset/fingerprint``), `example_count`, `class_count`, `augmentation` = `none`,
/// `dtype` (`float32`/`float16`) and `top_k` (`none` or K). Row i is example i of that exact dataset.
///
/// Logits are T = 1 raw scores of the **un-augmented** images. Training with jitter changes every image on every
/// pass, so its soft targets must come from the teacher run online; ``validate(against:jitter:expectedTeacher:)``
/// refuses jitter > 0. Soft targets at temperature T are softmax(z / T) of the stored row. For a top-k store
/// (as DistillKit-style stores do) the softmax runs over the k stored logits only and every other class gets
/// probability 0; `logits(indices:)` returns -infinity for those classes. Training reads a top-k store through
/// ``sparseSoftTargets(indices:temperature:missingMass:)``, which never forms a `[batch, C]` tensor.
public struct TeacherLogitStore {
    /// How the logits are stored.
    public enum StorageType: String, Codable, Sendable {
        case float32
        case float16
        var dtype: DType { self == .float32 ? .f32 : .f16 }
    }

    /// The largest class count `read` accepts (2^24).
    public static let maximumClassCount = 1 << 24

    /// The `format` metadata value this version writes and reads.
    public static let format = "distill-teacher-logits/1"

    /// The file the store was read from or written to (used in errors).
    public let source: String
    public let teacherIdentity: String
    public let datasetFingerprint: String
    /// N, the number of examples (rows).
    public let exampleCount: Int
    /// C, the number of classes.
    public let classCount: Int
    public let storageType: StorageType
    /// K for a top-k store, nil when full logits are stored.
    public let topK: Int?

    /// Full logits `[N, C]`, or top-k values `[N, K]` with their classes (row-major `[N * K]`).
    private let values: Tensor
    private let topKClasses: [Int]?
    /// Per row, the log-sum-exp of all C logits (top-k stores that recorded it).
    private let topKLogSumExp: [Float]?

    /// Whether this top-k store records what its kept classes leave out (so every ``MissingMass`` can be used).
    public var recordsMissingMass: Bool { topKLogSumExp != nil }

    /// Computes the teacher's T = 1 logits for every example of `dataset` (in order, `batchSize` at a time, no
    /// augmentation) and writes them atomically (see `AtomicFile`).
    /// - Throws: ``TrainingError`` when the teacher's class count differs from the dataset's, top-k is outside
    ///   `1...classCount`, a logit is not finite or too large for float16, the teacher fails, or the write fails
    ///   (an existing file without `overwrite`).
    ///
    /// In a job of several processes (`communicator`, e.g. `World.current` under mpirun) the batches are dealt out
    /// in turn (batch b to rank b mod N, so every batch is computed exactly as one process computes it), the rows are
    /// summed into every process with one allreduce (each row is nonzero on one process only, so the sum is exact),
    /// and rank 0 alone writes the file.
    public static func write(teacher: Teacher, dataset: LabeledDataset, to url: URL, dtype: StorageType = .float32,
                             topK: Int? = nil, batchSize: Int = 1000, overwrite: Bool,
                             communicator: Communicator = SingleProcess()) throws {
        let path = url.path, n = dataset.count, c = dataset.classCount
        guard teacher.classCount == c else {
            throw TrainingError("\(path): teacher has \(teacher.classCount) classes but the dataset has \(c)")
        }
        if let k = topK, !(1...c).contains(k) {
            throw ConfigurationError(field: "store.topK", "must be in 1...\(c) (the classes), got \(k)")
        }
        // Several processes: one that hangs would leave the others waiting in the allreduce for ever.
        let watchdog = communicator.isDistributed
            ? Watchdog(rank: communicator.rank, size: communicator.size, communicator: communicator, work: ("teacher batch", "batches")) : nil
        defer { watchdog?.stop() }
        var all = try computeLogits(teacher: teacher, dataset: dataset, batchSize: batchSize, context: path,
                                    shard: (communicator.rank, communicator.size), batchDone: { watchdog?.beat() })
        if communicator.isDistributed {
            all.withUnsafeMutableBufferPointer { communicator.allreduceSum($0) }
            guard communicator.isRoot else { return }
        }
        if let bad = all.scalars.firstIndex(where: { !$0.isFinite || (dtype == .float16 && abs($0) > 65504) }) {
            throw TrainingError("\(path): teacher logit \(all[flat: bad]) for example \(bad / c) cannot be stored as \(dtype.rawValue)")
        }
        var metadata = [
            "format": format, "teacher_identity": teacher.identity, "dataset_fingerprint": dataset.fingerprint,
            "example_count": String(n), "class_count": String(c), "augmentation": "none",
            "dtype": dtype.rawValue, "top_k": topK.map(String.init) ?? "none",
        ]
        var entries: [SafeTensorsEntry]
        if let k = topK {
            var topValues = [Float](), topClasses = [Int](), logSumExp = [Float]()
            topValues.reserveCapacity(n * k)
            topClasses.reserveCapacity(n * k)
            logSumExp.reserveCapacity(n)
            all.withUnsafeBufferPointer { z in
                for r in 0..<n {
                    let order = (0..<c).sorted { z[r * c + $0] > z[r * c + $1] || (z[r * c + $0] == z[r * c + $1] && $0 < $1) }
                    for j in order.prefix(k) { topValues.append(z[r * c + j]); topClasses.append(j) }
                    let m = Double(z[r * c + order[0]])
                    var sum = 0.0
                    for j in 0..<c { sum += Foundation.exp(Double(z[r * c + j]) - m) }
                    logSumExp.append(Float(m + Foundation.log(sum)))
                }
            }
            entries = [.tensor("topk_values", Tensor(shape: [n, k], scalars: topValues), dtype: dtype.dtype),
                       .integers("topk_indices", topClasses, shape: [n, k], dtype: .i64),
                       .tensor("topk_logsumexp", Tensor(shape: [n], scalars: logSumExp), dtype: .f32)]
        } else {
            entries = [.tensor("logits", all, dtype: dtype.dtype)]
        }
        metadata["tensors"] = entries.map(\.name).joined(separator: ",")
        do {
            try SafeTensors.write(entries, metadata: metadata, to: url, overwrite: overwrite)
        } catch let error as TensorIOError {
            throw TrainingError(error.message)
        }
    }

    /// The teacher's T = 1 logits for every example of `dataset`, `[count, teacher.classCount]`: the rows in order,
    /// `batchSize` at a time, un-augmented. Shared by `write` and ``CachedTeacher`` so both see the same numbers.
    /// - Throws: ``TrainingError`` (prefixed with `context`) when the teacher fails or returns another shape.
    /// The teacher's logits for every example, `[n, C]`; with `shard` (rank, size) only the batches b with
    /// b mod size == rank (the other rows stay 0).
    static func computeLogits(teacher: Teacher, dataset: LabeledDataset, batchSize: Int, context: String,
                              shard: (rank: Int, size: Int) = (0, 1), batchDone: () -> Void = {}) throws -> Tensor {
        let n = dataset.count, c = teacher.classCount, step = Swift.max(1, batchSize)
        var all = Tensor(shape: [n, c], repeating: 0)
        var start = 0
        var batch = -1
        while start < n {
            let end = Swift.min(start + step, n)
            batch += 1
            if batch % shard.size != shard.rank {
                start = end
                continue
            }
            let logits = try teacher.logits(batch: dataset.inputs(rows: start..<end), indices: Array(start..<end))
            guard logits.shape == [end - start, c] else {
                throw TrainingError("\(context): teacher returned logits of shape \(logits.shape), expected [\(end - start), \(c)]")
            }
            all.withUnsafeMutableBufferPointer { out in
                logits.withUnsafeBufferPointer { (out.baseAddress! + start * c).update(from: $0.baseAddress!, count: $0.count) }
            }
            batchDone()
            start = end
        }
        return all
    }

    /// Reads and checks a store.
    /// - Throws: ``TrainingError`` naming the file for an unreadable or malformed safetensors file, a wrong or
    ///   missing format stamp, bad metadata, missing tensors, wrong dtypes or shapes, non-finite logits, or top-k
    ///   classes out of range or repeated within a row.
    public static func read(url: URL) throws -> TeacherLogitStore {
        let path = url.path
        func fail(_ what: String) -> TrainingError { TrainingError("\(path): not a valid teacher logit store: \(what)") }
        let file: SafeTensorsFile
        do {
            file = try SafeTensors.read(url: url)
        } catch let error as TensorIOError {
            throw TrainingError("teacher logit store \(error.message)")
        }
        let meta = file.metadata
        guard meta["format"] == format else {
            throw fail("format \(meta["format"].map { "\"\($0)\"" } ?? "missing"), expected \"\(format)\"")
        }
        func field(_ key: String) throws -> String {
            guard let v = meta[key], !v.isEmpty else { throw fail("metadata \"\(key)\" missing") }
            return v
        }
        func count(_ key: String) throws -> Int {
            let v = try field(key)
            guard let n = Int(v), n >= 0 else { throw fail("metadata \"\(key)\" is \"\(v)\", expected a non-negative integer") }
            return n
        }
        let n = try count("example_count"), c = try count("class_count")
        guard c > 0 else { throw fail("class_count is 0") }
        // A top-k store's class count is not bounded by its tensors, and lookups allocate [batch, class_count].
        guard c <= maximumClassCount else {
            throw fail("metadata \"class_count\" is \(c), expected at most \(maximumClassCount)")
        }
        guard let storage = StorageType(rawValue: try field("dtype")) else {
            throw fail("metadata \"dtype\" is \"\(meta["dtype"]!)\", expected float32 or float16")
        }
        guard meta["augmentation"] == "none" else {
            throw fail("augmentation \"\(meta["augmentation"] ?? "missing")\", expected \"none\"")
        }
        let topKText = try field("top_k")
        let topK: Int? = topKText == "none" ? nil : Int(topKText)
        if topKText != "none", topK.map({ !(1...c).contains($0) }) ?? true {
            throw fail("top_k \"\(topKText)\", expected none or 1...\(c)")
        }
        func floats(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard file.names.contains(name) else { throw fail("tensor \"\(name)\" missing") }
            let info = try file.info(named: name)
            guard info.dtype == .f32 || info.dtype == .f16 else { throw fail("\"\(name)\" has dtype \(info.dtype.rawValue), expected F32 or F16") }
            guard info.shape == shape else { throw fail("\"\(name)\" has shape \(info.shape), expected \(shape)") }
            let t = try file.tensor(named: name)
            guard t.isFinite else { throw fail("\"\(name)\" holds non-finite values") }
            return t
        }
        var classes: [Int]?
        var logSumExp: [Float]?
        let values: Tensor
        if let k = topK {
            values = try floats("topk_values", [n, k])
            guard file.names.contains("topk_indices") else { throw fail("tensor \"topk_indices\" missing") }
            let info = try file.info(named: "topk_indices")
            guard info.dtype == .i64 || info.dtype == .i32 else { throw fail("\"topk_indices\" has dtype \(info.dtype.rawValue), expected I64 or I32") }
            guard info.shape == [n, k] else { throw fail("\"topk_indices\" has shape \(info.shape), expected \([n, k])") }
            let ids = try file.integers(named: "topk_indices")
            var seen = [Int](repeating: -1, count: c)
            for r in 0..<n {
                for i in (r * k)..<((r + 1) * k) {
                    let j = ids[i]
                    guard j >= 0 && j < c else { throw fail("topk_indices row \(r) holds class \(j), out of range 0..<\(c)") }
                    guard seen[j] != r else { throw fail("topk_indices row \(r) repeats class \(j)") }
                    seen[j] = r
                }
            }
            classes = ids
            if file.names.contains("topk_logsumexp") {
                let lse = try floats("topk_logsumexp", [n]).scalars
                let kept = values.scalars
                for r in 0..<n {
                    // The whole row's log-sum-exp is at least its largest kept logit (allowing for float16 rounding).
                    let top = kept[r * k]
                    guard lse[r] >= top - Swift.max(1e-3, abs(top) * 1e-3) else {
                        throw fail("topk_logsumexp row \(r) is \(lse[r]), below the row's largest logit \(top)")
                    }
                }
                logSumExp = lse
            }
        } else {
            values = try floats("logits", [n, c])
        }
        return TeacherLogitStore(source: path, teacherIdentity: try field("teacher_identity"),
                                 datasetFingerprint: try field("dataset_fingerprint"), exampleCount: n, classCount: c,
                                 storageType: storage, topK: topK, values: values, topKClasses: classes,
                                 topKLogSumExp: logSumExp)
    }

    /// Refuses to use this store for `dataset`: a different dataset fingerprint, example count or class count, any
    /// jitter (the store holds un-augmented logits; run the teacher online instead), or, when `expectedTeacher` is
    /// given, another teacher identity.
    /// - Throws: ``TrainingError`` naming the store file and the expected versus found values.
    public func validate(against dataset: LabeledDataset, jitter: Int, expectedTeacher: String?) throws {
        guard jitter <= 0 else {
            throw TrainingError("\(source): stored teacher logits are un-augmented (augmentation none) but the run jitters its images by up to \(jitter) px; run the teacher online when training with jitter")
        }
        guard exampleCount == dataset.count else {
            throw TrainingError("\(source): expected \(dataset.count) examples (the dataset), found \(exampleCount) in the store")
        }
        guard classCount == dataset.classCount else {
            throw TrainingError("\(source): expected \(dataset.classCount) classes (the dataset), found \(classCount) in the store")
        }
        let fingerprint = dataset.fingerprint
        guard datasetFingerprint == fingerprint else {
            throw TrainingError("\(source): expected dataset fingerprint \(fingerprint), found \(datasetFingerprint) (logits of other data)")
        }
        if let expected = expectedTeacher, expected != teacherIdentity {
            throw TrainingError("\(source): expected teacher identity \(expected), found \(teacherIdentity) (logits of another teacher)")
        }
    }

    /// Throws unless every index is in `0..<exampleCount`.
    func checkIndices(_ indices: [Int]) throws {
        if let bad = indices.first(where: { $0 < 0 || $0 >= exampleCount }) {
            throw TrainingError("\(source): example index \(bad) out of range 0..<\(exampleCount)")
        }
    }

    /// The stored T = 1 logits of examples `indices`, `[b, C]`; for a top-k store, -infinity outside the stored
    /// classes. Indices must be in `0..<exampleCount` (precondition).
    public func logits(indices: [Int]) -> Tensor {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < exampleCount }, "\(source): example index out of range 0..<\(exampleCount)")
        guard let classes = topKClasses, let k = topK else { return values.gatherRows(indices) }
        let c = classCount
        return Tensor(shape: [indices.count, c]) { out in
            for i in 0..<out.count { out[i] = -.infinity }
            values.withUnsafeBufferPointer { v in
                for (r, e) in indices.enumerated() {
                    for i in (e * k)..<((e + 1) * k) { out[r * c + classes[i]] = v[i] }
                }
            }
        }
    }

    /// Soft targets softmax(z / T) of examples `indices`, `[b, C]` probabilities. For a top-k store the softmax is
    /// over the k stored logits; other classes get exactly 0. Indices must be in range and T > 0 (preconditions).
    public func softTargets(indices: [Int], temperature: Float) -> Tensor {
        precondition(temperature > 0 && temperature.isFinite, "softTargets: temperature must be > 0, got \(temperature)")
        return Softmax.softmax(logits(indices: indices), temperature: temperature)
    }

    /// Soft targets of a top-k store in sparse form (nil for a full store), with the missing classes treated as
    /// `missingMass` says. Indices must be in range and T > 0 (preconditions).
    /// - Throws: ``ConfigurationError`` (`loss.missingMass`) when `missingMass` needs the row log-sum-exp and the
    ///   store does not record it.
    public func sparseSoftTargets(indices: [Int], temperature: Float, missingMass: MissingMass) throws -> SparseSoftTargets? {
        guard let classes = topKClasses, let k = topK else { return nil }
        precondition(indices.allSatisfy { $0 >= 0 && $0 < exampleCount }, "\(source): example index out of range 0..<\(exampleCount)")
        if missingMass != .renormalize && topKLogSumExp == nil {
            throw ConfigurationError(field: "loss.missingMass", "\(missingMass.rawValue) needs a store that records each row's log-sum-exp; \(source) does not (write it again, or use renormalize)")
        }
        var kept = [Float](), keptClasses = [Int32](), lse = [Float]()
        kept.reserveCapacity(indices.count * k)
        keptClasses.reserveCapacity(indices.count * k)
        values.withUnsafeBufferPointer { v in
            for e in indices {
                for i in (e * k)..<((e + 1) * k) { kept.append(v[i]); keptClasses.append(Int32(classes[i])) }
                if let all = topKLogSumExp { lse.append(all[e]) }
            }
        }
        return SparseSoftTargets(logits: kept, classes: keptClasses, logSumExp: topKLogSumExp == nil ? nil : lse,
                                 rowCount: indices.count, classCount: classCount, temperature: temperature,
                                 missingMass: missingMass)
    }
}
