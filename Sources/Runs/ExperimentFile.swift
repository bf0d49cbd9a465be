import Foundation
import Yams
import Optimizers
import DataFormats
import Distillation

/// An experiment described in a file (YAML, or JSON, which YAML reads too): data, a teacher (trained or loaded), a
/// student, the loss, the seeds and the comparisons to run.
///
///     name: digits                       # the run directory under the work directory (default: the file's name)
///     data:
///       file: Data/digits/digits.csv.gz  # CSV, CSV.gz or NPY (with labels:); test_file/test_labels or test_split
///       label_column: last
///     teacher:
///       train: {hidden: [256, 256], hidden_dropout: 0.3, epochs: 60, learning_rate: 0.05}
///       # or: file: teacher.safetensors
///       # an ensemble: members: 5 (trained from seeds seed, seed + 1000, ...), or files: [a.safetensors, b.safetensors];
///       # ensemble: mean-probabilities (the paper's) or mean-logits
///     student: {hidden: [32], epochs: 60, learning_rate: 0.05, schedule: "warmup:3:cosine"}
///     # or a named network sized to the data, or a description file: {model: lenet5, ...}, {model: net.json, ...}
///     loss: {temperature: 4, hard_weight: 0.5, soft_weight: 0.5}
///     # decoupled KD in place of Hinton's term, and feature terms (the teacher one model; layers are top-level
///     # indices): logit: dkd, dkd: {alpha: 1, beta: 8, warmup: 0},
///     # features: [{kind: hint, student: 3, teacher: 9, weight: 100}, {kind: attention, ...}, {kind: similarity, ...}]
///     seeds: [0, 1, 2]
///     compare: {label_only: true, temperatures: [1, 4, 20]}
///
/// Every key is checked: an unknown one, a wrong type or a value out of range is refused with its path and line
/// (`loss.temperature: must be > 0, line 7`).
public struct ExperimentFile: Sendable {
    public var name: String
    public var data: DataRequest
    /// A teacher to train (nil when loaded from `teacherFile`).
    public var teacherTraining: TrainingConfiguration?
    /// Teachers trained from `teacherTraining`: more than one makes an ensemble (member k from seed + 1000 k).
    public var teacherMembers: Int = 1
    public var teacherFile: String?
    /// Further teacher files after `teacherFile`: an ensemble of them all.
    public var moreTeacherFiles: [String] = []
    /// How an ensemble's members are combined.
    public var ensembleCombination: EnsembleTeacher.Combination = .meanProbabilities
    /// Every teacher file, in order.
    public var teacherFiles: [String] { (teacherFile.map { [$0] } ?? []) + moreTeacherFiles }
    public var student: TrainingConfiguration
    public var loss: DistillationLossConfiguration
    /// Decoupled KD in place of Hinton's term (`loss.logit: dkd`); nil for Hinton's.
    public var decoupled: DecoupledKDWeights?
    /// Feature terms (`loss.features`), beside the logit term.
    public var features: [FeatureTerm] = []
    public var seeds: [UInt64]
    public var labelOnly: Bool
    public var temperatures: [Float]
    /// The file's text, kept in the run directory.
    public var text: String

    /// A problem in the file: where (dotted path, line) and what.
    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let path: String
        public let line: Int?
        public let message: String
        public var description: String {
            "\(file): \(path.isEmpty ? "" : path + ": ")\(message)\(line.map { ", line \($0)" } ?? "")"
        }
    }

    public static func read(url: URL) throws -> ExperimentFile {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw Problem(file: url.path, path: "", line: nil, message: "cannot be read (\(error.localizedDescription))")
        }
        return try parse(text, file: url.path, defaultName: url.deletingPathExtension().lastPathComponent)
    }

    public static func parse(_ text: String, file: String, defaultName: String = "experiment") throws -> ExperimentFile {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw Problem(file: file, path: "", line: nil, message: "is empty; expected an experiment (data, teacher, student, ...)")
            }
            root = node
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(file: file, path: "", line: nil, message: "is not valid YAML or JSON: \(error)")
        }
        var reader = Reader(file: file)
        return try reader.experiment(root, text: text, defaultName: defaultName)
    }

    /// Reads nodes with their paths.
    struct Reader {
        let file: String

        func problem(_ path: String, _ node: Node?, _ message: String) -> Problem {
            Problem(file: file, path: path, line: node?.mark?.line, message: message)
        }

        func mapping(_ node: Node, _ path: String, keys: [String]) throws -> [String: Node] {
            guard let mapping = node.mapping else { throw problem(path, node, "must be a mapping of \(keys.joined(separator: ", "))") }
            var out: [String: Node] = [:]
            for (k, v) in mapping {
                guard let key = k.string else { throw problem(path, k, "keys must be names") }
                let full = path.isEmpty ? key : "\(path).\(key)"
                guard keys.contains(key) else {
                    throw problem(full, k, "unknown field (expected one of \(keys.joined(separator: ", ")))")
                }
                out[key] = v
            }
            return out
        }

        func string(_ node: Node, _ path: String) throws -> String {
            guard let s = node.scalar?.string else { throw problem(path, node, "must be a string") }
            return s
        }

        func int(_ node: Node, _ path: String, minimum: Int = Int.min, maximum: Int = Int.max) throws -> Int {
            guard let v = node.int else { throw problem(path, node, "must be a whole number, got '\(node.scalar?.string ?? "a list or mapping")'") }
            guard v >= minimum, v <= maximum else {
                throw problem(path, node, maximum == Int.max ? "must be >= \(minimum), got \(v)" : "must be in \(minimum)...\(maximum), got \(v)")
            }
            return v
        }

        func number(_ node: Node, _ path: String) throws -> Double {
            guard let v = node.float, v.isFinite else { throw problem(path, node, "must be a finite number, got '\(node.scalar?.string ?? "a list or mapping")'") }
            return v
        }

        func bool(_ node: Node, _ path: String) throws -> Bool {
            guard let v = node.bool else { throw problem(path, node, "must be true or false") }
            return v
        }

        func list(_ node: Node, _ path: String) throws -> [Node] {
            if let sequence = node.sequence { return Array(sequence) }
            if node.scalar != nil { return [node] }
            throw problem(path, node, "must be a list")
        }

        mutating func experiment(_ root: Node, text: String, defaultName: String) throws -> ExperimentFile {
            let top = try mapping(root, "", keys: ["name", "data", "teacher", "student", "loss", "seeds", "compare", "threads"])
            var e = ExperimentFile(name: defaultName, data: DataRequest(), teacherTraining: nil, teacherFile: nil,
                                   student: TrainingConfiguration(), loss: DistillationLossConfiguration(temperature: 4, hardWeight: 0.5, softWeight: 0.5),
                                   seeds: [0], labelOnly: true, temperatures: [], text: text)
            if let n = top["name"] {
                e.name = try string(n, "name")
                guard !e.name.isEmpty, !e.name.contains("/"), e.name != ".", e.name != ".." else {
                    throw problem("name", n, "must be a plain directory name")
                }
            }
            guard let dataNode = top["data"] else { throw problem("data", root, "is required (the data file)") }
            e.data = try data(dataNode)
            guard let teacherNode = top["teacher"] else { throw problem("teacher", root, "is required (train: ... or file: ...)") }
            let teacher = try mapping(teacherNode, "teacher", keys: ["train", "members", "file", "files", "ensemble"])
            switch (teacher["train"], teacher["file"], teacher["files"]) {
            case let (t?, nil, nil):
                e.teacherTraining = try training(t, "teacher.train")
                if let m = teacher["members"] { e.teacherMembers = try int(m, "teacher.members", minimum: 1, maximum: 100) }
            case let (nil, f?, nil):
                e.teacherFile = try string(f, "teacher.file")
            case let (nil, nil, f?):
                let files = try list(f, "teacher.files").enumerated().map { try string($0.element, "teacher.files[\($0.offset)]") }
                guard let first = files.first else { throw problem("teacher.files", f, "must list at least one file") }
                e.teacherFile = first
                e.moreTeacherFiles = Array(files.dropFirst())
            default: throw problem("teacher", teacherNode, "needs exactly one of train, file or files")
            }
            if let m = teacher["members"], e.teacherTraining == nil { throw problem("teacher.members", m, "goes with train (files: lists an ensemble's files)") }
            if let c = teacher["ensemble"] {
                let name = try string(c, "teacher.ensemble")
                let spellings: [String: EnsembleTeacher.Combination] = [
                    "mean-probabilities": .meanProbabilities, "meanProbabilities": .meanProbabilities,
                    "mean-logits": .meanLogits, "meanLogits": .meanLogits]
                guard let combination = spellings[name] else {
                    throw problem("teacher.ensemble", c, "must be mean-probabilities or mean-logits, got '\(name)'")
                }
                e.ensembleCombination = combination
            }
            guard let studentNode = top["student"] else { throw problem("student", root, "is required") }
            e.student = try training(studentNode, "student")
            if let l = top["loss"] { (e.loss, e.decoupled, e.features) = try loss(l) }
            if let s = top["seeds"] {
                e.seeds = try list(s, "seeds").enumerated().map { UInt64(try int($0.element, "seeds[\($0.offset)]", minimum: 0)) }
                guard !e.seeds.isEmpty else { throw problem("seeds", s, "must list at least one seed") }
            }
            if let c = top["compare"] {
                let compare = try mapping(c, "compare", keys: ["label_only", "temperatures"])
                if let v = compare["label_only"] { e.labelOnly = try bool(v, "compare.label_only") }
                if let v = compare["temperatures"] {
                    e.temperatures = try list(v, "compare.temperatures").enumerated().map { i, node in
                        let t = try number(node, "compare.temperatures[\(i)]")
                        guard t > 0 else { throw problem("compare.temperatures[\(i)]", node, "must be > 0, got \(t)") }
                        return Float(t)
                    }
                }
            }
            if e.temperatures.isEmpty { e.temperatures = [e.loss.temperature] }
            if !e.features.isEmpty && (e.teacherMembers > 1 || e.teacherFiles.count > 1), let f = top["loss"] {
                throw problem("loss.features", f, "need one teacher model (its layers' outputs), not an ensemble")
            }
            if let t = top["threads"] {
                let threads = try int(t, "threads", minimum: 1, maximum: 256)
                e.student.runtime.threads = threads
                e.teacherTraining?.runtime.threads = threads
            }
            return e
        }

        func data(_ node: Node) throws -> DataRequest {
            let d = try mapping(node, "data", keys: ["file", "labels", "test_file", "test_labels", "test_split", "label_column",
                                                      "header", "delimiter", "skip_rows", "class_order", "standardize"])
            var r = DataRequest()
            guard let file = d["file"] else { throw problem("data.file", node, "is required") }
            r.data = try string(file, "data.file")
            if let v = d["labels"] { r.labels = try string(v, "data.labels") }
            if let v = d["test_file"] { r.testData = try string(v, "data.test_file") }
            if let v = d["test_labels"] { r.testLabels = try string(v, "data.test_labels") }
            if let v = d["test_split"] {
                let f = try number(v, "data.test_split")
                guard f > 0 && f < 1 else { throw problem("data.test_split", v, "must be in (0, 1), got \(f)") }
                r.testSplit = f
            }
            if let v = d["label_column"] {
                if let i = v.int { r.csv.labelColumn = .index(i) } else {
                    let s = try string(v, "data.label_column")
                    r.csv.labelColumn = s == "last" ? .last : .name(s)
                }
            }
            if let v = d["header"] {
                if let b = v.bool { r.csv.header = b ? .yes : .no } else {
                    guard let h = CSVReader.Header(rawValue: try string(v, "data.header")) else { throw problem("data.header", v, "must be auto, yes or no") }
                    r.csv.header = h
                }
            }
            if let v = d["delimiter"] {
                let s = try string(v, "data.delimiter")
                guard s.utf8.count == 1 else { throw problem("data.delimiter", v, "must be one character, got '\(s)'") }
                r.csv.delimiter = s.utf8.first
            }
            if let v = d["skip_rows"] { r.csv.skipRows = try int(v, "data.skip_rows", minimum: 0) }
            if let v = d["class_order"] {
                guard let o = TabularData.ClassOrder(rawValue: try string(v, "data.class_order")) else {
                    throw problem("data.class_order", v, "must be sorted or appearance")
                }
                r.csv.classOrder = o
            }
            if let v = d["standardize"] { r.standardize = try bool(v, "data.standardize") }
            if r.data!.hasSuffix(".npy") && r.labels == nil { throw problem("data.labels", node, "is required with an NPY data file") }
            return r
        }

        func loss(_ node: Node) throws -> (DistillationLossConfiguration, DecoupledKDWeights?, [FeatureTerm]) {
            let l = try mapping(node, "loss", keys: ["temperature", "hard_weight", "soft_weight", "scale_soft_by_t2", "logit", "dkd", "features"])
            var c = DistillationLossConfiguration(temperature: 4, hardWeight: 0.5, softWeight: 0.5)
            if let v = l["temperature"] { c.temperature = Float(try number(v, "loss.temperature")) }
            if let v = l["hard_weight"] { c.hardWeight = Float(try number(v, "loss.hard_weight")) }
            if let v = l["soft_weight"] { c.softWeight = Float(try number(v, "loss.soft_weight")) }
            if let v = l["scale_soft_by_t2"] { c.scaleSoftBySquaredTemperature = try bool(v, "loss.scale_soft_by_t2") }
            do { try c.validate() } catch let error as ConfigurationError {
                let key = error.field.replacingOccurrences(of: "hardWeight", with: "hard_weight").replacingOccurrences(of: "softWeight", with: "soft_weight")
                throw problem(key, l[String(key.dropFirst("loss.".count))] ?? node, error.problem)
            }
            var decoupled: DecoupledKDWeights? = nil
            if let v = l["logit"] {
                switch try string(v, "loss.logit") {
                case "hinton": break
                case "dkd": decoupled = DecoupledKDWeights()
                case let other: throw problem("loss.logit", v, "must be hinton or dkd, got '\(other)'")
                }
            }
            if let node = l["dkd"] {
                guard var weights = decoupled else { throw problem("loss.dkd", node, "goes with logit: dkd") }
                let d = try mapping(node, "loss.dkd", keys: ["alpha", "beta", "warmup"])
                func weight(_ key: String) throws -> Float? {
                    guard let n = d[key] else { return nil }
                    let v = try number(n, "loss.dkd.\(key)")
                    guard v >= 0 else { throw problem("loss.dkd.\(key)", n, "must be >= 0, got \(v)") }
                    return Float(v)
                }
                if let v = try weight("alpha") { weights.alpha = v }
                if let v = try weight("beta") { weights.beta = v }
                if let n = d["warmup"] { weights.warmupEpochs = try int(n, "loss.dkd.warmup", minimum: 0) }
                decoupled = weights
            }
            var features: [FeatureTerm] = []
            if let node = l["features"] {
                for (i, item) in try list(node, "loss.features").enumerated() {
                    let path = "loss.features[\(i)]"
                    let f = try mapping(item, path, keys: ["kind", "student", "teacher", "weight"])
                    guard let kindNode = f["kind"] else { throw problem(path, item, "needs kind (hint, attention or similarity)") }
                    let name = try string(kindNode, path + ".kind")
                    guard let kind = FeatureTerm.Kind(rawValue: name) else {
                        throw problem(path + ".kind", kindNode, "must be hint, attention or similarity, got '\(name)'")
                    }
                    guard let s = f["student"], let t = f["teacher"] else {
                        throw problem(path, item, "needs student and teacher (top-level layer indices)")
                    }
                    var weight = FeatureTerm.defaultWeight(kind)
                    if let w = f["weight"] {
                        let v = try number(w, path + ".weight")
                        guard v >= 0 else { throw problem(path + ".weight", w, "must be >= 0, got \(v)") }
                        weight = Float(v)
                    }
                    features.append(FeatureTerm(kind: kind, studentLayer: try int(s, path + ".student", minimum: 0),
                                                teacherLayer: try int(t, path + ".teacher", minimum: 0), weight: weight))
                }
            }
            return (c, decoupled, features)
        }

        /// A training configuration: the network (hidden, dropout), optimisation and data handling.
        func training(_ node: Node, _ path: String) throws -> TrainingConfiguration {
            let keys = ["model", "hidden", "input_dropout", "hidden_dropout", "jitter", "max_norm", "epochs", "batch_size", "optimizer",
                        "learning_rate", "momentum", "nesterov", "weight_decay", "schedule", "clip_grad_norm", "validation"]
            let t = try mapping(node, path, keys: keys)
            var c = TrainingConfiguration()
            var mlp = ModelConfiguration.MLP()
            if let v = t["hidden"] { mlp.hidden = try list(v, "\(path).hidden").enumerated().map { try int($0.element, "\(path).hidden[\($0.offset)]", minimum: 1, maximum: 65536) } }
            if let v = t["input_dropout"] { mlp.inputDropout = Float(try number(v, "\(path).input_dropout")) }
            if let v = t["hidden_dropout"] { mlp.hiddenDropout = Float(try number(v, "\(path).hidden_dropout")) }
            c.model = ModelConfiguration(architecture: .mlp(mlp))
            if let v = t["model"] {
                // A named network (lenet5, resnet8, ...) or a model description file (.json, relative to the working
                // directory like data.file).
                let name = try string(v, "\(path).model")
                for key in ["hidden", "input_dropout", "hidden_dropout"] where t[key] != nil {
                    throw problem("\(path).\(key)", t[key] ?? v, "sizes an MLP; it cannot be combined with model")
                }
                do { c.model = try ModelConfiguration.named(name) } catch let error as TrainingError {
                    throw problem("\(path).model", v, error.description)
                }
            }
            if let v = t["jitter"] { c.data.jitter = try int(v, "\(path).jitter", minimum: 0, maximum: 14) }
            if let v = t["max_norm"] { c.optimizer.maxNorm = Float(try number(v, "\(path).max_norm")) }
            if let v = t["epochs"] { c.epochs = try int(v, "\(path).epochs", minimum: 1, maximum: 100_000) }
            if let v = t["batch_size"] { c.data.batchSize = try int(v, "\(path).batch_size", minimum: 1) }
            if let v = t["optimizer"] {
                guard let kind = OptimizerKind(rawValue: try string(v, "\(path).optimizer")) else { throw problem("\(path).optimizer", v, "must be sgd, adam or adamw") }
                c.optimizer.kind = kind
            }
            if let v = t["learning_rate"] { c.optimizer.learningRate = Float(try number(v, "\(path).learning_rate")) }
            if let v = t["momentum"] { c.optimizer.momentum = Float(try number(v, "\(path).momentum")) }
            if let v = t["nesterov"] { c.optimizer.nesterov = try bool(v, "\(path).nesterov") }
            if let v = t["weight_decay"] { c.optimizer.weightDecay = Float(try number(v, "\(path).weight_decay")) }
            if let v = t["clip_grad_norm"] { c.optimizer.gradientClip = Float(try number(v, "\(path).clip_grad_norm")) }
            if let v = t["validation"] { c.data.validationCount = try int(v, "\(path).validation", minimum: 0) }
            if let v = t["schedule"] { c.optimizer.schedule = try schedule(try string(v, "\(path).schedule"), epochs: c.epochs, path: "\(path).schedule", node: v) }
            do { try c.validate() } catch let error as ConfigurationError {
                let names = ["model.preset": "model", "model.description": "model", "model.hidden": "hidden", "model.inputDropout": "input_dropout", "model.hiddenDropout": "hidden_dropout",
                             "optimizer.learningRate": "learning_rate", "optimizer.momentum": "momentum", "optimizer.nesterov": "nesterov",
                             "optimizer.weightDecay": "weight_decay", "optimizer.gradientClip": "clip_grad_norm", "optimizer.maxNorm": "max_norm",
                             "optimizer.schedule": "schedule", "data.batchSize": "batch_size", "data.jitter": "jitter",
                             "data.validationCount": "validation", "epochs": "epochs"]
                let key = names[error.field] ?? error.field
                throw problem("\(path).\(key)", t[key] ?? node, error.problem)
            }
            return c
        }

        /// `cosine`, `constant`, `step:E:G`, `warmup:E[:cosine]` (as the command line's `--schedule`).
        func schedule(_ text: String, epochs: Int, path: String, node: Node) throws -> LearningRateSchedule? {
            let parts = text.split(separator: ":").map(String.init)
            switch parts.first ?? "" {
            case "cosine" where parts.count == 1: return nil
            case "constant" where parts.count == 1: return .constant
            case "step" where parts.count == 3:
                if let size = Int(parts[1]), let gamma = Float(parts[2]) { return .step(stepSize: size, gamma: gamma) }
            case "warmup" where parts.count >= 2:
                if let warm = Int(parts[1]), warm >= 0, warm < epochs {
                    let then: LearningRateSchedule = parts.count > 2 && parts[2] == "cosine" ? .cosine(totalEpochs: epochs - warm, minimum: 0) : .constant
                    return .warmup(epochs: warm, startFactor: 0.1, then: then)
                }
            default: break
            }
            throw problem(path, node, "must be cosine, constant, step:EPOCHS:GAMMA or warmup:EPOCHS[:cosine] (fewer warm-up epochs than epochs), got '\(text)'")
        }
    }
}
