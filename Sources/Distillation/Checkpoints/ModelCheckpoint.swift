import Foundation
import TensorCore
import TensorIO
import NeuralNet

/// A trained model on disk: a safetensors file whose tensors are the `nn.Sequential` state dict (`0.weight`,
/// `0.bias`, ...; float32) and whose `__metadata__` records the architecture and how it was trained.
///
/// Metadata keys: `format` (`distill-model/1`), `architecture` (JSON list of layers), `input_count`, `class_count`,
/// and optional `training` (JSON `TrainingConfiguration`), `role` (teacher/student), `dataset_fingerprint`.
/// A plain PyTorch `save_file(model.state_dict())` of an MLP also loads: without `architecture` the layers are
/// inferred from the names (a Linear at each weight index, ReLU in the slot after each hidden Linear, identity
/// (dropout) in any other slot).
public struct ModelCheckpoint {
    public static let format = "distill-model/1"

    public var model: Sequential
    public var metadata: [String: String]

    public init(model: Sequential, metadata: [String: String] = [:]) {
        self.model = model
        self.metadata = metadata
    }

    public var inputCount: Int { model.linearLayers.first?.inputCount ?? 0 }
    public var classCount: Int { model.linearLayers.last?.outputCount ?? 0 }

    /// The training configuration recorded in the file, if any.
    public var training: TrainingConfiguration? {
        metadata["training"].flatMap { try? JSONDecoder().decode(TrainingConfiguration.self, from: Data($0.utf8)) }
    }

    /// Writes atomically (temporary file, then rename); refuses to replace an existing file unless `overwrite`.
    public func write(to url: URL, overwrite: Bool) throws {
        var meta = metadata
        meta["format"] = ModelCheckpoint.format
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]  // byte-identical files for identical models
        let architecture = try encoder.encode(model.specifications)
        meta["architecture"] = String(decoding: architecture, as: UTF8.self)
        meta["input_count"] = String(inputCount)
        meta["class_count"] = String(classCount)
        let tensors = model.namedParameters.map { (name: $0.name, tensor: $0.parameter.value, dtype: DType.f32) }
        try SafeTensors.write(tensors: tensors, metadata: meta, to: url, overwrite: overwrite)
    }

    /// Reads a model file; every problem is a `TrainingError` naming the file.
    public static func read(url: URL) throws -> ModelCheckpoint {
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(url: url) } catch let error as TensorIOError {
            throw TrainingError("\(error)")
        }
        return try load(file, source: url.path)
    }

    static func load(_ file: SafeTensorsFile, source: String) throws -> ModelCheckpoint {
        let specifications: [LayerSpecification]
        if let json = file.metadata["architecture"] {
            do {
                specifications = try JSONDecoder().decode([LayerSpecification].self, from: Data(json.utf8))
            } catch {
                throw TrainingError("\(source): metadata 'architecture' is not a valid layer list: \(error.localizedDescription)")
            }
        } else {
            specifications = try inferArchitecture(file, source: source)
        }
        // Check the layer list before building it: Linear and Dropout trap on bad sizes, and a layer must not be
        // allocated larger than the tensors the file actually holds.
        var available = 0
        for name in file.names { available += (try? file.info(named: name).elementCount) ?? 0 }
        _ = try checkSpecifications(specifications, available: available, source: source)
        var generator = RandomGenerator(seed: 0)
        let model = Sequential(specifications: specifications, generator: &generator)
        let expected = model.namedParameters
        if expected.isEmpty { throw TrainingError("\(source): the architecture has no Linear layer") }
        let names = Set(file.names)
        for (name, parameter) in expected {
            guard names.contains(name) else {
                throw TrainingError("\(source): missing tensor '\(name)' required by the architecture")
            }
            let info = try wrap(source) { try file.info(named: name) }
            guard info.shape == parameter.shape else {
                throw TrainingError("\(source): tensor '\(name)' has shape \(info.shape), the architecture needs \(parameter.shape)")
            }
            let value = try wrap(source) { try file.tensor(named: name) }
            guard value.isFinite else { throw TrainingError("\(source): tensor '\(name)' contains NaN or infinity") }
            parameter.value = value
        }
        let extra = names.subtracting(expected.map(\.name))
        if let name = extra.sorted().first {
            throw TrainingError("\(source): unexpected tensor '\(name)' (not part of the architecture)")
        }
        // Consecutive Linear layers must chain.
        let linears = model.linearLayers
        for (a, b) in zip(linears, linears.dropFirst()) where a.outputCount != b.inputCount {
            throw TrainingError("\(source): layer sizes do not chain: \(a.outputCount) outputs feed \(b.inputCount) inputs")
        }
        return ModelCheckpoint(model: model, metadata: file.metadata)
    }

    /// Validates layer sizes and dropout probabilities; returns the parameter count, which must not exceed the
    /// `available` elements stored in the file.
    static func checkSpecifications(_ specifications: [LayerSpecification], available: Int, source: String) throws -> Int {
        var total = 0
        for spec in specifications {
            var count = 0
            switch spec {
            case let .linear(i, o):
                guard i > 0, o > 0 else {
                    throw TrainingError("\(source): metadata 'architecture' has a Linear layer of size \(i) -> \(o); sizes must be positive")
                }
                let (weights, overflow) = i.multipliedReportingOverflow(by: o)
                guard !overflow, weights <= available - o else {
                    throw TrainingError("\(source): metadata 'architecture' has a Linear layer \(i) -> \(o), larger than the file's tensors (\(available) elements)")
                }
                count = weights + o
            case let .dropout(p):
                guard p.isFinite, p >= 0, p < 1 else {
                    throw TrainingError("\(source): metadata 'architecture' has dropout probability \(p); expected [0, 1)")
                }
            case .relu, .flatten:
                break
            case let .sequential(inner):
                count = try checkSpecifications(inner, available: available, source: source)
            }
            total += count
            guard total <= available else {
                throw TrainingError("\(source): metadata 'architecture' needs \(total)+ parameters, the file holds \(available) elements")
            }
        }
        return total
    }

    static func wrap<T>(_ source: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TensorIOError { throw TrainingError("\(error)") }
    }

    /// Infers an MLP from state-dict names `<index>.weight` / `<index>.bias`.
    static func inferArchitecture(_ file: SafeTensorsFile, source: String) throws -> [LayerSpecification] {
        var linearIndices: [Int: [Int]] = [:]  // index -> weight shape
        for name in file.names {
            let parts = name.split(separator: ".")
            guard parts.count == 2, let index = Int(parts[0]), index >= 0, index < 10_000, parts[1] == "weight" || parts[1] == "bias" else {
                throw TrainingError("\(source): tensor '\(name)' is not an nn.Sequential Linear parameter ('<index>.weight' or '<index>.bias') and the file has no 'architecture' metadata")
            }
            if parts[1] == "weight" {
                let info = try wrap(source) { try file.info(named: name) }
                guard info.shape.count == 2 else { throw TrainingError("\(source): '\(name)' must be a matrix [out, in], got shape \(info.shape)") }
                linearIndices[index] = info.shape
            }
        }
        guard let last = linearIndices.keys.max() else { throw TrainingError("\(source): no '<index>.weight' tensors found") }
        var layers: [LayerSpecification] = []
        var previousWasHiddenLinear = false
        for index in 0...last {
            if let shape = linearIndices[index] {
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
