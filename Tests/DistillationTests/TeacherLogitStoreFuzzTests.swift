import Datasets
import Foundation
import TensorCore
import XCTest
import Distillation

/// Seeded mutation fuzzing of `TeacherLogitStore.read(url:)`: every mutated store must load (and then `logits` and
/// `softTargets` must work for every example) or throw a `DistillationError` naming the file; never trap.
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
        } catch let error as DistillationError {
            XCTAssertTrue(error.message.contains(url.lastPathComponent), error.message)
            return false
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return false
        }
    }

    func testMutationFuzz() throws {
        let dir = try Fuzz.temporaryDirectory("logit-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let seeds = try Self.seeds(in: dir)
        let url = dir.appendingPathComponent("fuzz.logits")
        let iterations = Fuzz.iterations(default: 3000)
        let tally = Fuzz.run("TeacherLogitStore.read", seeds: seeds, iterations: iterations, seed: Fuzz.seed(default: 20_260_102),
                             tokens: Self.tokens) { Self.check($0, at: url) }
        XCTAssertGreaterThan(tally.rejected, iterations / 3)
        XCTAssertGreaterThan(tally.loaded, seeds.count)
    }
}
