import Foundation
import XCTest
import TensorCore
import NeuralNet
import TensorIO

/// The committed PyTorch fixture for the convolutional layers (Scripts/make_cnn_fixtures.py), read once.
enum CNNFixture {
    nonisolated(unsafe) private static var cached: SafeTensorsFile?

    static func file() throws -> SafeTensorsFile {
        if let cached { return cached }
        let file: SafeTensorsFile
        if let url = Bundle.module.url(forResource: "Fixtures/cnn", withExtension: "safetensors") {
            file = try SafeTensors.read(url: url)
        } else {
            file = try SafeTensors.read(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/cnn.safetensors"))
        }
        cached = file
        return file
    }

    /// The list stored as JSON under metadata `key` (the case tags).
    static func tags(_ key: String) throws -> [String] {
        let json = try XCTUnwrap(try file().metadata[key], "metadata '\(key)' missing")
        return try JSONDecoder().decode([String].self, from: Data(json.utf8))
    }

    /// The layer description stored under metadata `key`.
    static func layer(_ key: String) throws -> LayerDescription {
        let json = try XCTUnwrap(try file().metadata[key], "metadata '\(key)' missing")
        return try JSONDecoder().decode(LayerDescription.self, from: Data(json.utf8))
    }

    /// The model description stored under metadata `key`.
    static func model(_ key: String) throws -> ModelDescription {
        let json = try XCTUnwrap(try file().metadata[key], "metadata '\(key)' missing")
        return try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8))
    }

    static func tensor(_ name: String) throws -> Tensor { try file().tensor(named: name) }

    static func has(_ name: String) throws -> Bool { try file().names.contains(name) }

    /// A layer built from the description under `key` for per-example input `inputShape`, its state set from the
    /// fixture tensors `<statePrefix>.<name>` (when given).
    static func build(_ key: String, inputShape: [Int], statePrefix: String? = nil) throws -> Layer {
        var generator = RandomGenerator(seed: 0)
        let layer = try LayerKinds.make(try self.layer(key), inputShape: inputShape, generator: &generator)
        if let statePrefix {
            for (name, variable) in layer.namedState {
                let value = try tensor("\(statePrefix).\(name)")
                XCTAssertEqual(value.shape, variable.shape, name)
                variable.value = value
            }
        }
        return layer
    }
}

/// max |a - b| / max |b|: the error relative to the expected tensor's largest magnitude (1 when `b` is all zero
/// and `a` is not).
func relativeError(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(a.shape, b.shape, "shape", file: file, line: line)
    guard a.count == b.count else { return .infinity }
    var worst = 0.0, scale = 0.0
    for (x, y) in zip(a.scalars, b.scalars) {
        worst = max(worst, abs(Double(x) - Double(y)))
        scale = max(scale, abs(Double(y)))
    }
    return scale > 0 ? worst / scale : (worst > 0 ? 1 : 0)
}

/// Asserts `relativeError(actual, expected) < tolerance`; returns the error.
@discardableResult
func assertClose(_ actual: Tensor?, _ expected: Tensor, _ tolerance: Double, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) -> Double {
    guard let actual else {
        XCTFail("\(label): missing", file: file, line: line)
        return .infinity
    }
    let error = relativeError(actual, expected, file: file, line: line)
    XCTAssertLessThan(error, tolerance, label, file: file, line: line)
    return error
}

/// sum(y * u) for a fixed upstream `u`: its gradient with respect to y is u.
func weightedSum(_ y: Variable, _ u: Tensor) -> Variable { sum(y * Variable(u)) }
