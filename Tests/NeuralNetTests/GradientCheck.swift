import XCTest
import TensorCore
import NeuralNet

/// One input's sampled gradient: the checked flat indices, the analytic gradient there and the central differences.
struct GradientSample {
    var indices: [Int]
    var analytic: [Float]
    var numeric: [Double]
    /// Bound on the central differences' rounding error: the Float objective sum(out * v) is exact to about
    /// ulp(1) * sum|out * v|; four times that, divided by the step 2h. (Every check here passes with one ulp and no
    /// floor.)
    var noise: Double
}

/// Fraction of the largest |numeric| below which an element's error is measured against that fraction instead of its
/// own size (elements near 0 cannot be compared relatively).
let gradientFloorFraction = 0.01

/// The checked positions where |analytic - numeric| > tolerance * max(|numeric|, floor) + noise, floor being
/// `gradientFloorFraction` of the largest |numeric| over the checked elements: relative to the gradient's own size,
/// so a gradient that is small everywhere (a loss at temperature 20) is checked as strictly as a large one.
func gradientMismatches(_ sample: GradientSample, tolerance: Float) -> [Int] {
    let floor = gradientFloorFraction * (sample.numeric.map(abs).max() ?? 0)
    return sample.numeric.indices.filter { j in
        let error = abs(Double(sample.analytic[j]) - sample.numeric[j])
        return !(error <= Double(tolerance) * Swift.max(abs(sample.numeric[j]), floor) + sample.noise)
    }
}

/// For each input: the analytic gradient of `sum(out * v)` (for a fixed random `v`) by back-propagation, and central
/// differences (f(x + h) - f(x - h)) / 2h accumulated in Double, at all elements or `maxElements` random ones.
/// Inputs that got no gradient are nil.
func sampleGradients(inputs: [Variable], step: Float = 1e-2, maxElements: Int = 40, _ f: () -> Variable) -> [GradientSample?] {
    var rng = RandomGenerator(seed: 1234)
    let out = f()
    let v = Tensor.normal(out.shape, generator: &rng)
    for x in inputs { x.zeroGradient() }
    sum(out * Variable(v)).backward()
    func objective() -> (value: Double, magnitude: Double) {
        let y = f().value
        var acc: Double = 0, magnitude: Double = 0
        for i in 0..<y.count {
            let term = Double(y[flat: i]) * Double(v[flat: i])
            acc += term
            magnitude += abs(term)
        }
        return (acc, magnitude)
    }
    let noise = 4 * Double(Float.ulpOfOne) * objective().magnitude / (2 * Double(step))
    return inputs.map { x in
        guard let analytic = x.grad else { return nil }
        let indices = x.value.count <= maxElements ? Array(0..<x.value.count)
            : (0..<maxElements).map { _ in rng.next(below: x.value.count) }
        let numeric = indices.map { i -> Double in
            let original = x.value[flat: i], high = original + step, low = original - step
            x.value[flat: i] = high
            let plus = objective().value
            x.value[flat: i] = low
            let minus = objective().value
            x.value[flat: i] = original
            return (plus - minus) / Double(high - low)  // the step actually taken in Float
        }
        return GradientSample(indices: indices, analytic: indices.map { analytic.shape == x.shape ? analytic[flat: $0] : .nan },
                              numeric: numeric, noise: noise)
    }
}

/// Central-difference gradient check (`sampleGradients`, `gradientMismatches`): fails at the first input with an
/// element off by more than `tolerance` relative to the gradient's size.
func checkGradients(
    _ label: String, inputs: [Variable], step: Float = 1e-2, tolerance: Float = 2e-2, maxElements: Int = 40,
    file: StaticString = #filePath, line: UInt = #line, _ f: () -> Variable
) {
    let samples = sampleGradients(inputs: inputs, step: step, maxElements: maxElements, f)
    for (k, (x, sample)) in zip(inputs, samples).enumerated() {
        guard let sample else { XCTFail("\(label): input \(k) got no gradient", file: file, line: line); continue }
        XCTAssertEqual(x.grad?.shape, x.shape, "\(label): gradient shape", file: file, line: line)
        if let j = gradientMismatches(sample, tolerance: tolerance).first {
            let largest = sample.numeric.map(abs).max() ?? 0
            XCTFail("\(label): input \(k)[\(sample.indices[j])] analytic \(sample.analytic[j]) numeric \(sample.numeric[j]) (largest |numeric| \(largest), noise bound \(sample.noise))",
                    file: file, line: line)
            return
        }
    }
}

/// A leaf requiring gradients with normal entries pushed away from 0 (no kinks for ReLU / max).
func parameter(_ shape: [Int], seed: UInt64, awayFromZero: Bool = false, positive: Bool = false) -> Variable {
    var rng = RandomGenerator(seed: seed)
    var t = Tensor.normal(shape, generator: &rng)
    if awayFromZero { t = t.map { $0 + ($0 >= 0 ? 0.3 : -0.3) } }
    if positive { t = t.map { abs($0) + 0.5 } }
    return Variable(t, requiresGrad: true)
}
