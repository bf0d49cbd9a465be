import Datasets
import Distillation
import NeuralNet
import TensorCore
import XCTest

final class CachedTeacherTests: XCTestCase {
    /// A byte-backed dataset (as MNIST is) of `count` random 2x3 "images".
    func byteDataset(count: Int, classes: Int, seed: UInt64) throws -> LabeledDataset {
        var g = RandomGenerator(seed: seed)
        let pixels = (0..<(count * 6)).map { _ in UInt8(truncatingIfNeeded: g.nextUInt64()) }
        return try LabeledDataset(bytes: pixels, sampleShape: [2, 3], labels: (0..<count).map { $0 % classes },
                                  classCount: classes)
    }

    func testCachedAnswersMatchTheTeacherAndCountHits() throws {
        let data = try byteDataset(count: 37, classes: 4, seed: 1)
        let base = ModelTeacher(model: oneLayerModel(inputs: 6, classes: 4, seed: 2))
        let cached = try CachedTeacher(base: base, dataset: data, batchSize: 10)   // 4 chunks, the last partial
        XCTAssertEqual(cached.identity, base.identity)
        XCTAssertEqual(cached.classCount, 4)
        XCTAssertEqual(cached.cachedLogits.shape, [37, 4])
        let indices = [36, 0, 17, 17, 9, 10]
        let images = data.inputs(at: indices)
        for t: Float in [1, 4, 20] {
            let fromCache = try cached.softTargets(batch: images, indices: indices, temperature: t)
            let direct = try base.softTargets(batch: images, indices: indices, temperature: t)
            assertClose(fromCache.scalars.map(Double.init), direct.scalars.map(Double.init), absolute: 1e-6, "T=\(t)")
        }
        let z = try cached.logits(batch: images, indices: indices)
        assertClose(z.scalars.map(Double.init), try base.logits(batch: images, indices: indices).scalars.map(Double.init),
                    absolute: 1e-5)
        XCTAssertEqual(cached.hits, 4)
        XCTAssertEqual(cached.misses, 0)
    }

    /// A batch whose images are not the cached examples' (jitter, another dataset, a changed pixel) goes to the
    /// teacher itself: the cache can never answer for an image it did not see.
    func testDifferentImagesFallBackToTheTeacher() throws {
        let data = try byteDataset(count: 20, classes: 3, seed: 3)
        let base = ModelTeacher(model: oneLayerModel(inputs: 6, classes: 3, seed: 4))
        let cached = try CachedTeacher(base: base, dataset: data)
        var images = data.inputs(at: [2, 5])
        images[flat: 1 * 6 + 4] += 1e-3                                   // one pixel of example 5 changed
        let answer = try cached.softTargets(batch: images, indices: [2, 5], temperature: 2)
        XCTAssertEqual(answer, try base.softTargets(batch: images, indices: [2, 5], temperature: 2))
        XCTAssertEqual(cached.misses, 1)
        // Right images, wrong indices (rows swapped), out-of-range index, other feature count: all misses.
        _ = try cached.logits(batch: data.inputs(at: [2, 5]), indices: [5, 2])
        _ = try cached.logits(batch: data.inputs(at: [2, 5]), indices: [2, 20])
        XCTAssertEqual(cached.misses, 3)
        XCTAssertEqual(cached.hits, 0)
        XCTAssertNotNil(thrownMessage { _ = try cached.logits(batch: Tensor.zeros([2, 7]), indices: [0, 1]) })
        XCTAssertNotNil(thrownMessage { _ = try cached.softTargets(batch: data.inputs(at: [1]), indices: [1], temperature: 0) })
        XCTAssertNotNil(thrownMessage { _ = try cached.softTargets(batch: data.inputs(at: [1]), indices: [1, 2], temperature: 1) })
    }

    /// An ensemble of cached members combines at temperature T exactly as the uncached ensemble does.
    func testEnsembleOfCachedMembers() throws {
        let data = try byteDataset(count: 25, classes: 5, seed: 5)
        let m1 = ModelTeacher(model: oneLayerModel(inputs: 6, classes: 5, seed: 6))
        let m2 = ModelTeacher(model: oneLayerModel(inputs: 6, classes: 5, seed: 7))
        for combination in [EnsembleTeacher.Combination.meanProbabilities, .meanLogits] {
            let plain = try EnsembleTeacher(members: [m1, m2], combination: combination)
            let cached = try EnsembleTeacher(members: [try CachedTeacher(base: m1, dataset: data),
                                                       try CachedTeacher(base: m2, dataset: data)], combination: combination)
            XCTAssertEqual(plain.identity, cached.identity)
            let indices = [3, 24, 0, 11]
            let images = data.inputs(at: indices)
            assertClose(try cached.softTargets(batch: images, indices: indices, temperature: 3).scalars.map(Double.init),
                        try plain.softTargets(batch: images, indices: indices, temperature: 3).scalars.map(Double.init),
                        absolute: 1e-6, "\(combination)")
        }
    }

    /// Distilling with the cache gives the same kind of student: the objective sees the same soft targets (to
    /// float rounding), and every batch of an un-augmented epoch is answered from the cache.
    func testTrainingWithoutJitterUsesOnlyTheCache() throws {
        let data = try byteDataset(count: 64, classes: 4, seed: 8)
        let base = ModelTeacher(model: oneLayerModel(inputs: 6, classes: 4, seed: 9))
        let cached = try CachedTeacher(base: base, dataset: data)
        let objective = try DistillationObjective(teacher: cached, loss: DistillationLossConfiguration(temperature: 4, hardWeight: 0.5, softWeight: 0.5))
        var iterator = BatchIterator(dataset: data, batchSize: 16, shuffle: true, dropLast: false, generator: RandomGenerator(seed: 10))
        var context = ForwardContext(training: true, generator: RandomGenerator(seed: 11))
        let student = oneLayerModel(inputs: 6, classes: 4, seed: 12)
        while let batch = iterator.next() {
            let logits = student.forward(Variable(batch.inputs), context: &context)
            let (loss, _) = try objective.loss(studentLogits: logits, batch: batch, inputs: batch.inputs)
            XCTAssertTrue(loss.value.isFinite)
        }
        XCTAssertEqual(cached.hits, 4)
        XCTAssertEqual(cached.misses, 0)
    }
}
