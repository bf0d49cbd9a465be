import Foundation
import TensorCore
import TensorIO
import NeuralNet

/// A trained model on disk: a safetensors file whose tensors are the `nn.Sequential` state dict (`0.weight`,
/// `0.bias`, ...; float32) and whose `__metadata__` describes the network and how it was trained.
///
/// Format `distill-model/2` (written): metadata `model` holds the ``ModelDescription`` as JSON (input shape and
/// layers), plus `input_count` and `class_count` for tools that only need the sizes; anything else (`training`,
/// `role`, `test_errors`, ...) is the writer's. Also read:
/// - `distill-model/1`: metadata `architecture`, a JSON list of MLP layers (``LayerSpecification``); the input
///   shape is the first Linear layer's input.
/// - a plain PyTorch `save_file(model.state_dict())` of an MLP without metadata: the layers are inferred from the
///   names (a Linear at each weight index, ReLU in the slot after each hidden Linear, identity in any other slot).
public struct ModelCheckpoint {
    public static let format = "distill-model/2"
    /// The first format, still read.
    public static let formatVersion1 = "distill-model/1"

    public var model: Sequential
    public var description: ModelDescription
    public var metadata: [String: String]

    /// A checkpoint of `model`, whose input shape must be known (given or inferred, see ``Sequential/inputShape``).
    public init(model: Sequential, metadata: [String: String] = [:]) throws {
        guard let description = model.modelDescription else {
            throw CheckpointError("the model's input shape is unknown: build it from a ModelDescription or give Sequential an inputShape")
        }
        self.model = model
        self.description = description
        self.metadata = metadata
    }

    init(model: Sequential, description: ModelDescription, metadata: [String: String]) {
        self.model = model
        self.description = description
        self.metadata = metadata
    }

    /// Per-example input shape and its element count.
    public var inputShape: [Int] { description.inputShape }
    public var inputCount: Int { inputShape.reduce(1, *) }
    /// Number of outputs (classes) per example.
    public var classCount: Int { (try? description.plan().outputShape.reduce(1, *)) ?? 0 }

    /// Writes atomically (temporary file, then rename); refuses to replace an existing file unless `overwrite`.
    public func write(to url: URL, overwrite: Bool) throws {
        var meta = metadata
        meta["format"] = ModelCheckpoint.format
        meta["architecture"] = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]  // byte-identical files for identical models
        meta["model"] = String(decoding: try encoder.encode(description), as: UTF8.self)
        meta["input_count"] = String(inputCount)
        meta["class_count"] = String(classCount)
        let entries = ModelCheckpoint.stateEntries(model.namedState.map { ($0.name, $0.variable.value) })
        do {
            try SafeTensors.write(entries, metadata: meta, to: url, overwrite: overwrite)
        } catch let error as TensorIOError {
            throw CheckpointError("\(error)")
        }
    }

    /// A state dict as safetensors entries: float32, except counters PyTorch keeps as int64 (a batch norm's
    /// `num_batches_tracked`), written as I64 so `load_state_dict` restores them with their own type.
    public static func stateEntries(_ state: [(name: String, tensor: Tensor)]) -> [SafeTensorsEntry] {
        state.map { name, tensor in
            if ModelCheckpoint.isCounter(name), tensor.count == 1, let v = tensor.scalars.first, v.isFinite,
               v == v.rounded(), abs(v) < 1e15 {
                return .integers(name, [Int(v)], shape: tensor.shape)
            }
            return .tensor(name, tensor)
        }
    }

    /// Whether a state-dict entry is an integer counter (`num_batches_tracked`).
    public static func isCounter(_ name: String) -> Bool { name == "num_batches_tracked" || name.hasSuffix(".num_batches_tracked") }

    /// Reads a model file; every problem is a ``CheckpointError`` naming the file.
    public static func read(url: URL) throws -> ModelCheckpoint {
        try read(url: url, description: nil)
    }

    /// Reads a model file whose network is `description` when given (a plain state dict saved by PyTorch, e.g.
    /// `save_file(model.state_dict(), path)`, whose layers the names alone cannot tell), else the file's own.
    public static func read(url: URL, description: ModelDescription?) throws -> ModelCheckpoint {
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(url: url) } catch let error as TensorIOError {
            throw CheckpointError("\(error)")
        }
        return try load(file, source: url.path, description: description)
    }

    /// The model a file describes: `model` (format 2), `architecture` (format 1) or the tensor names.
    static func description(of file: SafeTensorsFile, source: String) throws -> ModelDescription {
        let format = file.metadata["format"]
        if let json = file.metadata["model"] {
            if let format, format != ModelCheckpoint.format {
                throw CheckpointError("\(source): metadata 'format' is '\(format)' but the file has a 'model' description of format '\(ModelCheckpoint.format)'")
            }
            do {
                return try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8))
            } catch {
                throw CheckpointError("\(source): metadata 'model' is not a valid model description: \(decodingMessage(error))")
            }
        }
        // Other writers' formats (PyTorch's save_file writes "pt") are read from their tensor names; only a later
        // version of this format is refused.
        if let format, format.hasPrefix("distill-model/"), format != ModelCheckpoint.formatVersion1 {
            throw CheckpointError("\(source): unknown model format '\(format)' (this version reads '\(ModelCheckpoint.format)' and '\(ModelCheckpoint.formatVersion1)')")
        }
        let specifications: [LayerSpecification]
        if let json = file.metadata["architecture"] {
            do {
                specifications = try JSONDecoder().decode([LayerSpecification].self, from: Data(json.utf8))
            } catch {
                throw CheckpointError("\(source): metadata 'architecture' is not a valid layer list: \(decodingMessage(error))")
            }
        } else {
            specifications = try inferArchitecture(file, source: source)
        }
        guard let inputCount = firstLinearInput(specifications) else {
            throw CheckpointError("\(source): the architecture has no Linear layer")
        }
        return ModelDescription(inputShape: [inputCount], specifications: specifications)
    }

    static func firstLinearInput(_ specifications: [LayerSpecification]) -> Int? {
        for spec in specifications {
            switch spec {
            case let .linear(i, _): return i
            case let .sequential(inner): if let i = firstLinearInput(inner) { return i }
            default: continue
            }
        }
        return nil
    }

    /// One line for a JSON decoding error (a model description's problem, a missing key, a wrong type).
    public static func decodingMessage(_ error: Error) -> String {
        if let error = error as? ModelDescriptionError { return error.description }
        if case let DecodingError.dataCorrupted(context)? = error as? DecodingError { return context.debugDescription }
        if case let DecodingError.keyNotFound(key, _)? = error as? DecodingError { return "'\(key.stringValue)' is missing" }
        if case let DecodingError.typeMismatch(_, context)? = error as? DecodingError {
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        }
        return error.localizedDescription
    }

    static func load(_ file: SafeTensorsFile, source: String, description given: ModelDescription? = nil) throws -> ModelCheckpoint {
        let description = try given ?? self.description(of: file, source: source)
        // Check the description (shapes, sizes, settings) before building it: a layer must not be allocated larger
        // than the tensors the file actually holds.
        let plan: LayerPlan
        do { plan = try description.plan() } catch let error as ModelDescriptionError {
            throw CheckpointError("\(source): \(error.description)")
        }
        var available = 0
        for name in file.names { available += (try? file.info(named: name).elementCount) ?? 0 }
        guard plan.stateCount <= available else {
            throw CheckpointError("\(source): the model description needs \(plan.stateCount) parameters and buffers, the file holds \(available) elements")
        }
        if plan.parameterShapes.isEmpty { throw CheckpointError("\(source): the model has no parameters") }
        var generator = RandomGenerator(seed: 0)
        let model: Sequential
        do { model = try description.build(generator: &generator) } catch let error as ModelDescriptionError {
            throw CheckpointError("\(source): \(error.description)")
        }
        let names = Set(file.names)
        for (name, parameter) in model.namedState {
            guard names.contains(name) else {
                throw CheckpointError("\(source): missing tensor '\(name)' required by the architecture")
            }
            let info = try wrap(source) { try file.info(named: name) }
            guard info.shape == parameter.shape else {
                throw CheckpointError("\(source): tensor '\(name)' has shape \(info.shape), the architecture needs \(parameter.shape)")
            }
            let value = try wrap(source) { try file.tensor(named: name) }
            guard value.isFinite else { throw CheckpointError("\(source): tensor '\(name)' contains NaN or infinity") }
            parameter.value = value
        }
        let extra = names.subtracting(model.namedState.map(\.name))
        if let name = extra.sorted().first {
            throw CheckpointError("\(source): unexpected tensor '\(name)' (not part of the architecture)")
        }
        return ModelCheckpoint(model: model, description: description, metadata: file.metadata)
    }

    static func wrap<T>(_ source: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TensorIOError { throw CheckpointError("\(error)") }
    }

    /// Infers an MLP from state-dict names `<index>.weight` / `<index>.bias`.
    static func inferArchitecture(_ file: SafeTensorsFile, source: String) throws -> [LayerSpecification] {
        var linearIndices: [Int: [Int]] = [:]  // index -> weight shape
        for name in file.names {
            let parts = name.split(separator: ".")
            guard parts.count == 2, let index = Int(parts[0]), index >= 0, index < 10_000, parts[1] == "weight" || parts[1] == "bias" else {
                throw CheckpointError("\(source): tensor '\(name)' is not an nn.Sequential Linear parameter ('<index>.weight' or '<index>.bias') and the file has no model description")
            }
            if parts[1] == "weight" {
                let info = try wrap(source) { try file.info(named: name) }
                guard info.shape.count == 2 else { throw CheckpointError("\(source): '\(name)' must be a matrix [out, in], got shape \(info.shape)") }
                linearIndices[index] = info.shape
            }
        }
        guard let last = linearIndices.keys.max() else { throw CheckpointError("\(source): no '<index>.weight' tensors found") }
        var layers: [LayerSpecification] = []
        var previousWasHiddenLinear = false
        for index in 0...last {
            if let shape = linearIndices[index] {
                guard shape[0] > 0, shape[1] > 0 else { throw CheckpointError("\(source): '\(index).weight' has an empty shape \(shape)") }
                layers.append(.linear(inputCount: shape[1], outputCount: shape[0]))
                previousWasHiddenLinear = index != last
            } else if previousWasHiddenLinear {
                layers.append(.relu)
                previousWasHiddenLinear = false
            } else {
                layers.append(.dropout(probability: 0))
            }
        }
        return layers
    }
}

/// A model file that cannot be read or written: one line naming the file and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
