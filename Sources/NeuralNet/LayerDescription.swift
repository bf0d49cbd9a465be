import Foundation

/// One layer of a ``ModelDescription``: its kind and its settings, written flat in JSON,
/// `{"kind": "linear", "inputCount": 784, "outputCount": 1200}` or `{"kind": "dropout", "probability": 0.5}`.
///
/// The settings are plain values (numbers, booleans, strings, lists of integers, nested layer lists); each layer kind
/// reads its own (``LayerKind``), so the description format never changes when a kind is added.
public struct LayerDescription: Codable, Equatable, Sendable {
    /// A setting's value.
    public indirect enum Value: Codable, Equatable, Sendable {
        case integer(Int)
        case number(Double)
        case bool(Bool)
        case string(String)
        case integers([Int])
        case layers([LayerDescription])

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Bool.self) { self = .bool(v); return }
            if let v = try? c.decode(Int.self) { self = .integer(v); return }
            if let v = try? c.decode(Double.self) { self = .number(v); return }
            if let v = try? c.decode(String.self) { self = .string(v); return }
            if let v = try? c.decode([Int].self) { self = .integers(v); return }
            if let v = try? c.decode([LayerDescription].self) { self = .layers(v); return }
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a layer setting must be a number, boolean, string, list of integers or list of layers")
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .integer(v): try c.encode(v)
            case let .number(v): try c.encode(v)
            case let .bool(v): try c.encode(v)
            case let .string(v): try c.encode(v)
            case let .integers(v): try c.encode(v)
            case let .layers(v): try c.encode(v)
            }
        }
    }

    public var kind: String
    public var settings: [String: Value]

    public init(kind: String, settings: [String: Value] = [:]) {
        self.kind = kind
        self.settings = settings
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        kind = try c.decode(String.self, forKey: Key("kind"))
        var settings: [String: Value] = [:]
        for key in c.allKeys where key.stringValue != "kind" {
            settings[key.stringValue] = try c.decode(Value.self, forKey: key)
        }
        self.settings = settings
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(kind, forKey: Key("kind"))
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) { try c.encode(value, forKey: Key(name)) }
    }

    // Typed access for layer kinds: each throws a ModelDescriptionError naming the layer kind and setting.

    /// A whole number >= `minimum`.
    public func integer(_ name: String, minimum: Int = Int.min, default defaultValue: Int? = nil) throws -> Int {
        let value: Int
        switch settings[name] {
        case let .integer(v)?: value = v
        case let .number(v)? where v == v.rounded() && abs(v) < 1e15: value = Int(v)
        case nil:
            guard let defaultValue else { throw ModelDescriptionError("layer '\(kind)': setting '\(name)' is missing") }
            value = defaultValue
        default: throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be a whole number")
        }
        guard value >= minimum else { throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be >= \(minimum), got \(value)") }
        return value
    }

    /// A finite number in `range`.
    public func number(_ name: String, in range: ClosedRange<Double>? = nil, default defaultValue: Double? = nil) throws -> Double {
        let value: Double
        switch settings[name] {
        case let .integer(v)?: value = Double(v)
        case let .number(v)?: value = v
        case nil:
            guard let defaultValue else { throw ModelDescriptionError("layer '\(kind)': setting '\(name)' is missing") }
            value = defaultValue
        default: throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be a number")
        }
        guard value.isFinite, range.map({ $0.contains(value) }) ?? true else {
            throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be a finite number\(range.map { " in \($0.lowerBound)...\($0.upperBound)" } ?? ""), got \(value)")
        }
        return value
    }

    /// A size per spatial axis, written as one whole number (both axes) or a list of two, each >= `minimum`
    /// (PyTorch's `kernel_size=3` or `(3, 5)`); `defaultValue` when absent (nil: required).
    public func pair(_ name: String, minimum: Int, default defaultValue: (Int, Int)? = nil) throws -> (Int, Int) {
        let value: (Int, Int)
        switch settings[name] {
        case let .integer(v)?: value = (v, v)
        case let .number(v)? where v == v.rounded() && abs(v) < 1e9: value = (Int(v), Int(v))
        case let .integers(v)? where v.count == 2: value = (v[0], v[1])
        case nil:
            guard let defaultValue else { throw ModelDescriptionError("layer '\(kind)': setting '\(name)' is missing") }
            value = defaultValue
        default: throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be a whole number or a list of two")
        }
        guard value.0 >= minimum, value.1 >= minimum, value.0 <= 1 << 20, value.1 <= 1 << 20 else {
            throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be in \(minimum)...\(1 << 20), got [\(value.0), \(value.1)]")
        }
        return value
    }

    /// A boolean; `defaultValue` when absent.
    public func bool(_ name: String, default defaultValue: Bool) throws -> Bool {
        switch settings[name] {
        case let .bool(v)?: return v
        case nil: return defaultValue
        default: throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be true or false")
        }
    }

    /// An optional nested layer list (empty when absent).
    public func optionalLayers(_ name: String) throws -> [LayerDescription] {
        settings[name] == nil ? [] : try layers(name)
    }

    /// A nested layer list.
    public func layers(_ name: String) throws -> [LayerDescription] {
        if case .integers([])? = settings[name] { return [] }  // `[]` reads as an empty list of integers
        guard case let .layers(v)? = settings[name] else {
            throw ModelDescriptionError("layer '\(kind)': setting '\(name)' must be a list of layers")
        }
        return v
    }

    /// Throws when a setting other than `known` is present (a misspelt setting must not be ignored silently).
    public func checkSettings(_ known: Set<String>) throws {
        if let unknown = settings.keys.sorted().first(where: { !known.contains($0) }) {
            throw ModelDescriptionError("layer '\(kind)': unknown setting '\(unknown)' (expected \(known.isEmpty ? "none" : known.sorted().joined(separator: ", ")))")
        }
    }
}

/// A model description that cannot be built: one line naming the layer and what was expected.
public struct ModelDescriptionError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
