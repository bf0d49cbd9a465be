import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

final class DistillationLossTests: XCTestCase {
    /// Loss value (Double) and analytic gradient via backward().
    private func evaluate(_ z: Tensor, teacher: Tensor, labels: [Int], _ config: DistillationLossConfiguration)
        -> (parts: DistillationLossParts, grad: [Double]) {
        let student = Variable(z, requiresGrad: true)
        let (loss, parts) = distillationLoss(studentLogits: student, teacherLogits: teacher, labels: labels, configuration: config)
        XCTAssertEqual(Double(loss.value.scalar), parts.total, accuracy: 1e-5 * max(1, abs(parts.total)))
        loss.backward()
        return (parts, student.grad!.scalars.map(Double.init))
    }

    func testGradientMatchesCentralDifferences() {
        let settings: [(classes: Int, batch: Int, t: Float, hard: Float, soft: Float, scale: Bool)] = [
            (3, 4, 1, 0.5, 0.5, true), (5, 3, 4, 0.3, 0.7, true), (10, 2, 20, 0.1, 0.9, true),
            (7, 5, 2.5, 1, 0, true), (4, 6, 3, 0, 1, true), (6, 3, 8, 0.4, 0.6, false), (2, 7, 0.5, 0.2, 1.5, false),
        ]
        for (k, s) in settings.enumerated() {
            let z = randomLogits(s.batch, s.classes, seed: UInt64(10 + k))
            let zt = randomLogits(s.batch, s.classes, seed: UInt64(100 + k))
            let y = randomLabels(s.batch, classes: s.classes, seed: UInt64(1000 + k))
            let config = DistillationLossConfiguration(temperature: s.t, hardWeight: s.hard, softWeight: s.soft,
                                                       scaleSoftBySquaredTemperature: s.scale)
            let (_, analytic) = evaluate(z, teacher: zt, labels: y, config)
            let numeric = numericalGradient(z, h: 1e-2) { zz in
                distillationLoss(studentLogits: Variable(zz), teacherLogits: zt, labels: y, configuration: config).parts.total
            }
            // Relative to the gradient's size (at T = 20 it is small everywhere): the floor is a fraction of the
            // largest central difference, the trusted side, so a zero or scaled analytic gradient cannot widen it.
            let scale = numeric.map(abs).max() ?? 0
            XCTAssertGreaterThan(scale, 0, "setting \(k)")
            assertClose(analytic, numeric, absolute: 2e-4 * max(scale, 1e-3), relative: 1e-3, "setting \(k)")
        }
    }

    func testPartsAreConsistent() {
        let z = randomLogits(6, 5, seed: 1), zt = randomLogits(6, 5, seed: 2)
        let y = randomLabels(6, classes: 5, seed: 3)
        let t = 3.0
        let config = DistillationLossConfiguration(temperature: Float(t), hardWeight: 0.25, softWeight: 0.75)
        let parts = distillationLoss(studentLogits: Variable(z), teacherLogits: zt, labels: y, configuration: config).parts
        let q1 = softmaxRows(z), qT = softmaxRows(z, temperature: t), p = softmaxRows(zt, temperature: t)
        var hard = 0.0, ce = 0.0, kl = 0.0
        for b in 0..<6 {
            hard -= Foundation.log(q1[b][y[b]])
            for j in 0..<5 {
                ce -= p[b][j] * Foundation.log(qT[b][j])
                kl += p[b][j] * Foundation.log(p[b][j] / qT[b][j])
            }
        }
        XCTAssertEqual(parts.hard, hard / 6, accuracy: 1e-6)
        XCTAssertEqual(parts.softCrossEntropy, ce / 6, accuracy: 1e-6)
        XCTAssertEqual(parts.softKL, kl / 6, accuracy: 1e-6)
        XCTAssertEqual(parts.softScaled, t * t * ce / 6, accuracy: 1e-5)
        XCTAssertEqual(parts.total, 0.25 * hard / 6 + 0.75 * t * t * ce / 6, accuracy: 1e-5)
    }

    /// With hard weight 0 and soft weight 1 (T^2 on): dL/dz_s = T * (softmax(z_s/T) - softmax(z_t/T)) / B.
    func testSoftGradientIdentity() {
        for (k, t) in [1.0, 2.0, 5.0, 20.0].enumerated() {
            let b = 4, c = 6
            let z = randomLogits(b, c, seed: UInt64(40 + k)), zt = randomLogits(b, c, seed: UInt64(50 + k))
            let config = DistillationLossConfiguration(temperature: Float(t), hardWeight: 0, softWeight: 1)
            let (_, grad) = evaluate(z, teacher: zt, labels: randomLabels(b, classes: c, seed: 7), config)
            let qs = softmaxRows(z, temperature: t), pt = softmaxRows(zt, temperature: t)
            let expected = (0..<(b * c)).map { i in t * (qs[i / c][i % c] - pt[i / c][i % c]) / Double(b) }
            assertClose(grad, expected, absolute: 1e-7, relative: 1e-5, "T=\(t)")
        }
    }

    /// Eq. 4 of the paper in the high-temperature limit: zero-mean logits, T = 1000, T^2 on:
    /// dL/dz_s ≈ (z_s - z_t) / (N * B) for N classes.
    func testHighTemperatureLimit() {
        let b = 3, n = 8
        func zeroMean(_ t: Tensor) -> Tensor {
            let mean = t.mean(axis: 1).reshaped([b, 1])
            return t - mean
        }
        let z = zeroMean(randomLogits(b, n, seed: 61)), zt = zeroMean(randomLogits(b, n, seed: 62))
        let config = DistillationLossConfiguration(temperature: 1000, hardWeight: 0, softWeight: 1)
        let (_, grad) = evaluate(z, teacher: zt, labels: [0, 1, 2], config)
        let expected = (0..<(b * n)).map { Double(z[flat: $0] - zt[flat: $0]) / Double(n * b) }
        let scale = expected.map(abs).max()!
        let maxDiff = assertClose(grad, expected, absolute: 5e-3 * scale, "T=1000 limit")
        XCTAssertLessThan(maxDiff / scale, 5e-3)
    }

    /// Without the T^2 factor the soft gradient shrinks as 1/T^2 at high T; with it, its size stays put.
    func testSquaredTemperatureKeepsGradientScale() {
        let z = randomLogits(2, 5, seed: 71), zt = randomLogits(2, 5, seed: 72)
        func norm(_ t: Float, _ scale: Bool) -> Double {
            let config = DistillationLossConfiguration(temperature: t, hardWeight: 0, softWeight: 1, scaleSoftBySquaredTemperature: scale)
            return evaluate(z, teacher: zt, labels: [0, 1], config).grad.map { $0 * $0 }.reduce(0, +).squareRoot()
        }
        XCTAssertEqual(norm(50, true) / norm(100, true), 1, accuracy: 0.02)
        XCTAssertEqual(norm(50, false) / norm(100, false), 4, accuracy: 0.1)
    }

    func testProbabilityAndLogitOverloadsAgree() {
        let z = randomLogits(4, 5, seed: 81), zt = randomLogits(4, 5, seed: 82)
        let y = randomLabels(4, classes: 5, seed: 83)
        let config = DistillationLossConfiguration(temperature: 3, hardWeight: 0.4, softWeight: 0.6)
        let a = distillationLoss(studentLogits: Variable(z), teacherLogits: zt, labels: y, configuration: config).parts
        let b = distillationLoss(studentLogits: Variable(z), teacherProbabilities: Softmax.softmax(zt, temperature: 3),
                                 labels: y, configuration: config).parts
        XCTAssertEqual(a.total, b.total, accuracy: 1e-5)
        XCTAssertEqual(a.softKL, b.softKL, accuracy: 1e-5)
    }

    func testTeacherGetsNoGradientAndConstantInputsRecordNothing() {
        let z = Variable(randomLogits(2, 3, seed: 91))  // requiresGrad false
        let (loss, _) = distillationLoss(studentLogits: z, teacherLogits: randomLogits(2, 3, seed: 92), labels: [0, 2],
                                         configuration: DistillationLossConfiguration(temperature: 2, hardWeight: 1, softWeight: 1))
        XCTAssertFalse(loss.requiresGrad)
    }

    func testValidateNamesTheField() throws {
        func message(_ t: Float, _ h: Float, _ s: Float) -> String? {
            thrownMessage { try DistillationLossConfiguration(temperature: t, hardWeight: h, softWeight: s).validate() }
        }
        XCTAssertNil(message(4, 0.5, 0.5))
        XCTAssertNil(message(1, 1, 0))
        XCTAssertEqual(message(-1, 0.5, 0.5), "loss.temperature must be > 0, got -1")
        XCTAssertEqual(message(0, 0.5, 0.5), "loss.temperature must be > 0, got 0")
        XCTAssertEqual(message(2, -0.5, 0.5), "loss.hardWeight must be >= 0, got -0.5")
        XCTAssertEqual(message(2, 0.5, -2), "loss.softWeight must be >= 0, got -2")
        XCTAssertEqual(message(2, 0, 0), "loss.softWeight and the hard weight cannot both be 0")
        XCTAssertTrue(message(.nan, 0.5, 0.5)?.hasPrefix("loss.temperature must be finite") ?? false)
        XCTAssertTrue(message(.infinity, 0.5, 0.5)?.hasPrefix("loss.temperature must be finite") ?? false)
        XCTAssertTrue(message(2, .nan, 0.5)?.hasPrefix("loss.hardWeight must be finite") ?? false)
        XCTAssertTrue(message(2, 0.5, .infinity)?.hasPrefix("loss.softWeight must be finite") ?? false)
    }

    func testConfigurationCodableRoundTrip() throws {
        let config = DistillationLossConfiguration(temperature: 20, hardWeight: 0.1, softWeight: 0.9, scaleSoftBySquaredTemperature: false)
        let decoded = try JSONDecoder().decode(DistillationLossConfiguration.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(decoded, config)
    }
}
