import XCTest
import TensorCore
import NeuralNet

/// Central-difference gradient check: reduces the output with `sum(out * v)` for a fixed random `v`, back-propagates,
/// and compares every checked input element's gradient with (f(x + h) - f(x - h)) / 2h accumulated in Double.
func checkGradients(
    _ label: String, inputs: [Variable], step: Float = 1e-2, tolerance: Float = 2e-2, maxElements: Int = 40,
    file: StaticString = #filePath, line: UInt = #line, _ f: () -> Variable
) {
    var rng = RandomGenerator(seed: 1234)
    let out = f()
    let v = Tensor.normal(out.shape, generator: &rng)
    for x in inputs { x.zeroGradient() }
    sum(out * Variable(v)).backward()
    func objective() -> Double {
        let y = f().value
        var acc: Double = 0
        for i in 0..<y.count { acc += Double(y[flat: i]) * Double(v[flat: i]) }
        return acc
    }
    for (k, x) in inputs.enumerated() {
        guard let analytic = x.grad else { XCTFail("\(label): input \(k) got no gradient", file: file, line: line); continue }
        XCTAssertEqual(analytic.shape, x.shape, "\(label): gradient shape", file: file, line: line)
        let indices = x.value.count <= maxElements ? Array(0..<x.value.count)
            : (0..<maxElements).map { _ in rng.next(below: x.value.count) }
        var worst: Float = 0
        for i in indices {
            let original = x.value[flat: i]
            x.value[flat: i] = original + step
            let plus = objective()
            x.value[flat: i] = original - step
            let minus = objective()
            x.value[flat: i] = original
            let numeric = Float((plus - minus) / (2 * Double(step)))
            let error = abs(numeric - analytic[flat: i]) / max(1, abs(numeric))
            worst = max(worst, error)
            if error > tolerance {
                XCTFail("\(label): input \(k)[\(i)] analytic \(analytic[flat: i]) numeric \(numeric)", file: file, line: line)
                return
            }
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
