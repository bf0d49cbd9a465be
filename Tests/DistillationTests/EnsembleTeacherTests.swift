import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

final class EnsembleTeacherTests: XCTestCase {
    func testMeanProbabilitiesAndMeanLogitsMatchHandComputation() throws {
        let a = FixedTeacher(Tensor(shape: [1, 2], scalars: [0, 4]), identity: "a")
        let b = FixedTeacher(Tensor(shape: [1, 2], scalars: [0, 0]), identity: "b")
        let probabilities = try EnsembleTeacher(members: [a, b], combination: .meanProbabilities)
        let logits = try EnsembleTeacher(members: [a, b], combination: .meanLogits)
        XCTAssertNotEqual(probabilities.identity, logits.identity)
        XCTAssertEqual(probabilities.identity, try EnsembleTeacher(members: [a, b], combination: .meanProbabilities).identity)
        XCTAssertNotEqual(probabilities.identity, try EnsembleTeacher(members: [b, a], combination: .meanProbabilities).identity)
        let images = Tensor.zeros([1, 3])
        for t in [1.0, 2.0] {
            // mean_k softmax(z_k / T): member a gives [1, e^{4/T}] / (1 + e^{4/T}), member b gives [1/2, 1/2].
            let ea = Foundation.exp(4 / t)
            let meanP = [(1 / (1 + ea) + 0.5) / 2, (ea / (1 + ea) + 0.5) / 2]
            // softmax(mean_k z_k / T) = softmax([0, 2] / T).
            let em = Foundation.exp(2 / t)
            let meanZ = [1 / (1 + em), em / (1 + em)]
            let p = try probabilities.softTargets(batch: images, indices: [0], temperature: Float(t)).scalars.map(Double.init)
            let q = try logits.softTargets(batch: images, indices: [0], temperature: Float(t)).scalars.map(Double.init)
            assertClose(p, meanP, absolute: 1e-6, "mean probabilities T=\(t)")
            assertClose(q, meanZ, absolute: 1e-6, "mean logits T=\(t)")
            XCTAssertGreaterThan(abs(p[1] - q[1]), 0.01)
        }
        // T = 1 logits: log of the mean probabilities, or the mean logits.
        let ea = Foundation.exp(4.0)
        assertClose(try probabilities.logits(batch: images, indices: [0]).scalars.map(Double.init),
                    [Foundation.log((1 / (1 + ea) + 0.5) / 2), Foundation.log((ea / (1 + ea) + 0.5) / 2)], absolute: 1e-6)
        assertClose(try logits.logits(batch: images, indices: [0]).scalars.map(Double.init), [0, 2], absolute: 1e-6)
    }

    func testClassCountMismatchIsRefused() {
        let a = FixedTeacher(Tensor.zeros([1, 10]), identity: "ten-classes")
        let b = FixedTeacher(Tensor.zeros([1, 9]), identity: "nine-classes")
        let m = thrownMessage { _ = try EnsembleTeacher(members: [a, b], combination: .meanProbabilities) }
        XCTAssertTrue(m?.contains("10 classes") == true && m!.contains("has 9") && m!.contains("ten-classes") && m!.contains("nine-classes"), m ?? "accepted")
        XCTAssertNotNil(thrownMessage { _ = try EnsembleTeacher(members: [], combination: .meanLogits) })
    }

    func testModelTeachersInEnsembleAndBadBatch() throws {
        let m1 = ModelTeacher(model: oneLayerModel(inputs: 4, classes: 3, seed: 1))
        let m2 = ModelTeacher(model: oneLayerModel(inputs: 4, classes: 3, seed: 2))
        let ensemble = try EnsembleTeacher(members: [m1, m2], combination: .meanProbabilities)
        let x = randomLogits(5, 4, seed: 3)
        let p = try ensemble.softTargets(batch: x, indices: Array(0..<5), temperature: 3)
        let expected = (try m1.softTargets(batch: x, indices: Array(0..<5), temperature: 3) + (try m2.softTargets(batch: x, indices: Array(0..<5), temperature: 3))) / 2
        assertClose(p.scalars.map(Double.init), expected.scalars.map(Double.init), absolute: 1e-6)
        XCTAssertNotNil(thrownMessage { _ = try m1.softTargets(batch: x, indices: [0, 1], temperature: 1) })
        XCTAssertNotNil(thrownMessage { _ = try m1.softTargets(batch: x, indices: Array(0..<5), temperature: 0) })
        let m = thrownMessage { _ = try m1.logits(batch: randomLogits(5, 7, seed: 4), indices: Array(0..<5)) }
        XCTAssertTrue(m?.contains("expects 4 input features, found 7") ?? false, m ?? "accepted")
    }
}
