import Checkpoints
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest
import Distillation

/// Seeded mutation fuzzing of `ModelCheckpoint.read(url:)`: every mutated model file must load (and the loaded
/// model must then run on an input of its width) or throw a `CheckpointError` naming the file; never trap.
/// Longer: `DISTILL_FUZZ_ITERATIONS=100000 DISTILL_FUZZ_SEED=3 swift test --filter ModelCheckpointFuzzTests`.
final class ModelCheckpointFuzzTests: XCTestCase {
    static func seeds(in dir: URL) throws -> [[UInt8]] {
        var g = RandomGenerator(seed: 5)
        var files: [[UInt8]] = []
        let architectures: [[LayerSpecification]] = [
            [.dropout(probability: 0.2), .linear(inputCount: 6, outputCount: 5), .relu, .dropout(probability: 0.3),
             .linear(inputCount: 5, outputCount: 3)],
            [.flatten, .linear(inputCount: 4, outputCount: 2)],
            [.sequential([.linear(inputCount: 3, outputCount: 4), .relu]), .linear(inputCount: 4, outputCount: 2)],
        ]
        for (i, specs) in architectures.enumerated() {
            let model = Sequential(specifications: specs, generator: &g)
            let url = dir.appendingPathComponent("seed\(i).safetensors")
            try ModelCheckpoint(model: model, metadata: ["role": "student", "training": #"{"epochs":3,"hidden":[5]}"#])
                .write(to: url, overwrite: true)
            files.append(Array(try Data(contentsOf: url)))
        }
        // A plain PyTorch state dict of Linear(6, 5), ReLU, Dropout, Linear(5, 3): no architecture metadata.
        files.append(Array(try SafeTensors.serialize(
            [.tensor("0.weight", Tensor.normal([5, 6], generator: &g)), .tensor("0.bias", Tensor.normal([5], generator: &g)),
             .tensor("3.weight", Tensor.normal([3, 5], generator: &g)), .tensor("3.bias", Tensor.normal([3], generator: &g))],
            metadata: ["format": "pt"])))
        return files
    }

    static let tokens = ["inputCount", "outputCount", "probability", "linear", "relu", "dropout", "flatten", "sequential",
                         "architecture", "input_count", "class_count", "0.weight", "0.bias", "3.weight", "1.weight",
                         "F32", "F16", "I64", "shape", "data_offsets", "0.2", "0.3", "[5,6]", "[3]", "{}",
                         "model", "kind", "inputShape", "layers", "identity", "distill-model/1", "distill-model/2"]

    /// Loads `bytes` from `url`; true when it loaded. Fails the test on any error other than a `CheckpointError`
    /// naming the file.
    static func check(_ bytes: [UInt8], at url: URL) -> Bool {
        do {
            try Data(bytes).write(to: url)
            let checkpoint = try ModelCheckpoint.read(url: url)
            XCTAssertGreaterThan(checkpoint.inputCount, 0)
            XCTAssertGreaterThan(checkpoint.classCount, 0)
            var g = RandomGenerator(seed: 1)
            let output = checkpoint.model.infer(Tensor.normal([2, checkpoint.inputCount], generator: &g))
            XCTAssertEqual(output.shape, [2, checkpoint.classCount])
            _ = checkpoint.training
            return true
        } catch let error as CheckpointError {
            XCTAssertTrue(error.description.contains(url.lastPathComponent), error.description)
            return false
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return false
        }
    }

    /// Structured fuzzing of the architecture metadata: random (often nonsensical) layer lists, with sizes and
    /// dropout probabilities from an adversarial set, over tensors that fit them, do not, or are missing.
    func testRandomArchitectureFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("model-arch-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("arch.safetensors")
        let iterations = Fuzz.iterations(default: 1000)
        var rng = RandomGenerator(seed: Fuzz.seed(default: 20_260_111))
        let sizes = ["1", "2", "3", "0", "-1", "-3", "1000000", "4294967296", "9223372036854775807", "99999999999999999999", "2.5", "null", "\"3\""]
        let probabilities = ["0", "0.5", "0.99", "1", "-0.1", "2", "1e40", "-1e40", "null", "\"0.5\"", "1e-45"]
        func pick(_ a: [String]) -> String { a[rng.next(below: a.count)] }
        var width = 2  // the chain's current width, so that most layer lists are nearly valid
        var tensors: [SafeTensorsEntry] = []
        /// A layer list (JSON) plus tensors named as `Sequential` names them; sizes are sometimes adversarial and
        /// tensors are sometimes missing or of the wrong shape.
        var v2 = false  // this iteration writes format 2 ("model": {"inputShape", "layers"}) instead of format 1
        func layers(depth: Int, prefix: String) -> String {
            (0..<(1 + rng.next(below: 4))).map { position -> String in
                let name = "\(prefix)\(position)."
                switch rng.next(below: depth < 2 ? 8 : 7) {
                case 0, 1, 2, 3:
                    let o = 1 + rng.next(below: 3)
                    var i = rng.next(below: 6) == 0 ? 1 + rng.next(below: 3) : width
                    var iText = String(i), oText = String(o)
                    if rng.next(below: 6) == 0 { iText = pick(sizes); i = Int(iText) ?? i }
                    if rng.next(below: 6) == 0 { oText = pick(sizes) }
                    let wrong = rng.next(below: 12) == 0
                    if rng.next(below: 12) != 0, i > 0, i < 10 {
                        tensors.append(.tensor(name + "weight", Tensor(shape: [o, wrong ? i + 1 : i], repeating: 0.5)))
                    }
                    if rng.next(below: 12) != 0 { tensors.append(.tensor(name + "bias", Tensor(shape: [o], repeating: 0.1))) }
                    width = o
                    return v2 ? #"{"kind":"linear","inputCount":\#(iText),"outputCount":\#(oText)}"#
                              : #"{"linear":{"inputCount":\#(iText),"outputCount":\#(oText)}}"#
                case 4: return v2 ? #"{"kind":"relu"}"# : #"{"relu":{}}"#
                case 5:
                    let p = rng.next(below: 2) == 0 ? pick(probabilities) : "0.25"
                    return v2 ? #"{"kind":"dropout","probability":\#(p)}"# : #"{"dropout":{"probability":\#(p)}}"#
                case 6:
                    if v2 { return [#"{"kind":"flatten"}"#, #"{"kind":"identity"}"#, #"{"kind":"bogus"}"#, #"{"kind":"relu","extra":1}"#][rng.next(below: 4)] }
                    return rng.next(below: 4) != 0 ? #"{"flatten":{}}"# : #"{"bogus":{}}"#
                default:
                    return v2 ? #"{"kind":"sequential","layers":[\#(layers(depth: depth + 1, prefix: name))]}"#
                              : #"{"sequential":{"_0":[\#(layers(depth: depth + 1, prefix: name))]}}"#
                }
            }.joined(separator: ",")
        }
        var loaded = 0, rejected = 0
        let start = Date()
        for _ in 0..<iterations {
            width = 1 + rng.next(below: 3)
            let inputWidth = rng.next(below: 8) == 0 ? pick(sizes) : String(width)
            tensors = []
            v2 = rng.next(below: 2) == 0
            let architecture = "[\(layers(depth: 0, prefix: ""))]"
            if rng.next(below: 10) == 0 { tensors.append(.tensor("extra", Tensor([1]))) }
            var metadata: [String: String]
            if v2 {
                metadata = ["format": ModelCheckpoint.format, "model": #"{"inputShape":[\#(inputWidth)],"layers":\#(architecture)}"#]
                if rng.next(below: 10) == 0 { metadata["model"] = pick(["", "[]", "{}", #"{"layers":[]}"#, #"{"inputShape":[],"layers":[]}"#, "7", "null"]) }
            } else {
                metadata = ["format": ModelCheckpoint.formatVersion1, "architecture": architecture]
                if rng.next(below: 10) == 0 { metadata["architecture"] = pick(["", "[]", "{}", "[null]", "[[]]", "7", "null"]) }
            }
            let bytes = Array(try SafeTensors.serialize(tensors, metadata: metadata))
            if Self.check(bytes, at: url) { loaded += 1 } else { rejected += 1 }
        }
        print("fuzz ModelCheckpoint architectures: \(iterations) files: \(loaded) loaded, \(rejected) rejected in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        XCTAssertGreaterThan(rejected, iterations / 3)
        XCTAssertGreaterThan(loaded, iterations / 20)
    }

    func testMutationFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("model-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let seeds = try Self.seeds(in: dir)
        let url = dir.appendingPathComponent("fuzz.safetensors")
        let iterations = Fuzz.iterations(default: 2000)
        let tally = Fuzz.run("ModelCheckpoint.read", seeds: seeds, iterations: iterations, seed: Fuzz.seed(default: 20_260_101),
                             tokens: Self.tokens) { Self.check($0, at: url) }
        XCTAssertGreaterThan(tally.rejected, iterations / 3)
        XCTAssertGreaterThan(tally.loaded, seeds.count)
    }
}
