import XCTest
import TensorCore
import NeuralNet

/// The gradient checker itself (GradientCheck.swift).
final class GradientCheckTests: XCTestCase {
    /// At T = 20 the cross-entropy's gradient is small everywhere (largest element about 1.5e-3). The checker's error
    /// is relative to the gradient's size, so an all-zero, a halved or a single wrong element fails; the criterion
    /// it replaces, |analytic - numeric| / max(1, |numeric|) <= 0.02, accepted the zero and the halved gradient.
    func testCheckerRejectsWrongSmallGradients() throws {
        let z = parameter([5, 7], seed: 50)
        let labels = [0, 6, 3, 3, 1]
        let sample = try XCTUnwrap(sampleGradients(inputs: [z]) { crossEntropy(logits: z, labels: labels, temperature: 20) }[0])
        XCTAssertEqual(sample.numeric.count, 35)
        let largest = sample.numeric.map(abs).max() ?? 0
        XCTAssertLessThan(largest, 0.02, "the gradient should be small at T = 20")
        XCTAssertGreaterThan(largest, 100 * sample.noise, "the noise bound should be far below the gradient")
        XCTAssertEqual(gradientMismatches(sample, tolerance: 0.02), [], "the true gradient must pass")

        var zero = sample, half = sample, one = sample
        zero.analytic = sample.analytic.map { _ in 0 }
        half.analytic = sample.analytic.map { 0.5 * $0 }
        let j = try XCTUnwrap(sample.numeric.indices.max { abs(sample.numeric[$0]) < abs(sample.numeric[$1]) })
        one.analytic[j] *= 1.1
        XCTAssertFalse(gradientMismatches(zero, tolerance: 0.02).isEmpty, "an all-zero gradient passed")
        XCTAssertFalse(gradientMismatches(half, tolerance: 0.02).isEmpty, "a halved gradient passed")
        XCTAssertEqual(gradientMismatches(one, tolerance: 0.02), [j], "one element 10% off")

        func oldCriterionAccepts(_ s: GradientSample) -> Bool {
            zip(s.analytic, s.numeric).allSatisfy { abs(Double($0) - $1) / max(1, abs($1)) <= 0.02 }
        }
        XCTAssertTrue(oldCriterionAccepts(zero) && oldCriterionAccepts(half))
    }

    /// Elements far below the largest are compared against the floor (1% of the largest) plus the noise bound,
    /// not their own size: tiny absolute differences there pass, a difference of 2% of the largest does not.
    func testFloorForElementsNearZero() {
        var s = GradientSample(indices: [0, 1, 2], analytic: [1, 1e-6, 0], numeric: [1, 0, 1e-7], noise: 1e-9)
        XCTAssertEqual(gradientMismatches(s, tolerance: 0.02), [])
        s.analytic[2] = 0.02
        XCTAssertEqual(gradientMismatches(s, tolerance: 0.02), [2])
        s.analytic[2] = .nan
        XCTAssertEqual(gradientMismatches(s, tolerance: 0.02), [2], "NaN must fail")
    }
}
