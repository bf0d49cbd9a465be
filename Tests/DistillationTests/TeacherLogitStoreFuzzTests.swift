import Datasets
import Foundation
import TensorCore
import TensorIO
import XCTest
import Distillation

/// Seeded mutation fuzzing of `TeacherLogitStore.read(url:)`: every mutated store must load (and then `logits` and
/// `softTargets` must work for every example) or throw a `TrainingError` naming the file; never trap.
/// Longer: `DISTILL_FUZZ_ITERATIONS=100000 DISTILL_FUZZ_SEED=3 swift test --filter TeacherLogitStoreFuzzTests`.
final class TeacherLogitStoreFuzzTests: XCTestCase {
    static func seeds(in dir: URL) throws -> [[UInt8]] {
        let dataset = try oneHotDataset(count: 6, classes: 4, seed: 3)
        let teacher = FixedTeacher(randomLogits(6, 4, seed: 4), identity: "fixed-teacher")
        var files: [[UInt8]] = []
        let variants: [(TeacherLogitStore.StorageType, Int?)] = [(.float32, nil), (.float16, nil), (.float32, 2), (.float16, 3)]
        for (i, (dtype, k)) in variants.enumerated() {
            let url = dir.appendingPathComponent("seed\(i).logits")
            try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, dtype: dtype, topK: k, overwrite: true)
            files.append(Array(try Data(contentsOf: url)))
        }
        return files
    }

    static let tokens = ["float32", "float16", "none", "example_count", "class_count", "top_k", "topk_values", "topk_indices",
                         "logits", "F32", "F16", "I64", "I32", "U8", "[6,4]", "[6,2]", "[6,3]", "\"6\"", "\"4\"", "\"2\"", "\"3\""]

    static func check(_ bytes: [UInt8], at url: URL) -> Bool {
        do {
            try Data(bytes).write(to: url)
            let store = try TeacherLogitStore.read(url: url)
            let indices = Array(0..<min(store.exampleCount, 64))
            let z = store.logits(indices: indices)
            XCTAssertEqual(z.shape, [indices.count, store.classCount])
            let p = store.softTargets(indices: indices, temperature: 2)
            XCTAssertEqual(p.shape, [indices.count, store.classCount])
            XCTAssertTrue(p.isFinite)
            return true
        } catch let error as TrainingError {
            XCTAssertTrue(error.description.contains(url.lastPathComponent), error.description)
            return false
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return false
        }
    }

    /// Structured fuzzing of the metadata and tensors: counts, top-k and dtypes from an adversarial set, tensors
    /// of matching or mismatched shapes and dtypes, top-k classes in and out of range or repeated.
    func testRandomMetadataFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("logit-meta-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("meta.logits")
        let iterations = Fuzz.iterations(default: 1000)
        var rng = RandomGenerator(seed: Fuzz.seed(default: 20_260_112))
        let odd = ["0", "-1", "", "x", "1.5", "999999999", "9223372036854775807", "99999999999999999999", " 3", "none"]
        var loaded = 0, rejected = 0
        let start = Date()
        for _ in 0..<iterations {
            let n = rng.next(below: 5), c = 1 + rng.next(below: 5)
            let k: Int? = rng.next(below: 2) == 0 ? nil : 1 + rng.next(below: c)
            func text(_ v: Int) -> String { rng.next(below: 8) == 0 ? odd[rng.next(below: odd.count)] : String(v) }
            var metadata = ["format": TeacherLogitStore.format, "teacher_identity": "t", "dataset_fingerprint": "f",
                            "example_count": text(n), "class_count": text(c), "augmentation": "none",
                            "dtype": rng.next(below: 12) == 0 ? "float64" : (rng.next(below: 2) == 0 ? "float32" : "float16"),
                            "top_k": k.map(text) ?? (rng.next(below: 8) == 0 ? text(c + 1) : "none")]
            if rng.next(below: 20) == 0 { metadata.removeValue(forKey: ["augmentation", "teacher_identity", "dataset_fingerprint"][rng.next(below: 3)]) }
            func dim(_ v: Int) -> Int { rng.next(below: 10) == 0 ? max(0, v + rng.next(below: 3) - 1) : v }
            var g = RandomGenerator(seed: rng.nextUInt64())
            var tensors: [SafeTensorsEntry] = []
            if let k {
                let vr = dim(n), vc = dim(k)
                var values = Tensor.normal([vr, vc], generator: &g)
                if rng.next(below: 10) == 0, values.count > 0 { values[flat: 0] = .nan }
                tensors.append(.tensor("topk_values", values, dtype: rng.next(below: 2) == 0 ? .f32 : .f16))
                let ir = dim(n), ic = dim(k)
                let classes = (0..<(ir * ic)).map { i -> Int in
                    switch rng.next(below: 30) {
                    case 0: return -1
                    case 1: return c
                    case 2: return Int.max
                    case 3: return i > 0 ? (i - 1) % Swift.max(c, 1) : 0
                    default: return i % ic % Swift.max(c, 1)
                    }
                }
                tensors.append(.integers("topk_indices", classes, shape: [ir, ic], dtype: rng.next(below: 2) == 0 ? .i64 : .i32))
            } else {
                var logits = Tensor.normal([dim(n), dim(c)], generator: &g)
                if rng.next(below: 10) == 0, logits.count > 0 { logits[flat: logits.count - 1] = .infinity }
                tensors.append(.tensor("logits", logits, dtype: [.f32, .f16, .bf16][rng.next(below: 3)]))
            }
            if rng.next(below: 15) == 0 { tensors.removeLast() }
            guard let bytes = try? SafeTensors.serialize(tensors, metadata: metadata) else { continue }  // e.g. i32 overflow
            if Self.check(Array(bytes), at: url) { loaded += 1 } else { rejected += 1 }
        }
        print("fuzz TeacherLogitStore metadata: \(iterations) files: \(loaded) loaded, \(rejected) rejected in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        XCTAssertGreaterThan(rejected, iterations / 5)
        XCTAssertGreaterThan(loaded, iterations / 10)
    }

    func testMutationFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("logit-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let seeds = try Self.seeds(in: dir)
        let url = dir.appendingPathComponent("fuzz.logits")
        let iterations = Fuzz.iterations(default: 2000)
        let tally = Fuzz.run("TeacherLogitStore.read", seeds: seeds, iterations: iterations, seed: Fuzz.seed(default: 20_260_102),
                             tokens: Self.tokens) { Self.check($0, at: url) }
        XCTAssertGreaterThan(tally.rejected, iterations / 3)
        XCTAssertGreaterThan(tally.loaded, seeds.count)
    }
}
