import XCTest
import TensorCore
import NeuralNet

/// A gradient check for every differentiable op.
final class OperationGradientTests: XCTestCase {
    func testArithmeticWithBroadcasting() {
        let a = parameter([3, 4], seed: 1), b = parameter([4], seed: 2), c = parameter([3, 1], seed: 3)
        let d = parameter([3, 4], seed: 4, positive: true)
        checkGradients("add", inputs: [a, b]) { a + b }
        checkGradients("subtract", inputs: [a, c]) { a - c }
        checkGradients("multiply", inputs: [a, b, c]) { a * b * c }
        checkGradients("divide", inputs: [a, d]) { a / d }
        checkGradients("scale, shift, negate", inputs: [a]) { -(2.5 * a + 1) }
    }

    func testMatmulAllTransposes() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = parameter(ta ? [5, 3] : [3, 5], seed: 10), b = parameter(tb ? [4, 5] : [5, 4], seed: 11)
                checkGradients("matmul ta=\(ta) tb=\(tb)", inputs: [a, b]) { matmul(a, b, transposeA: ta, transposeB: tb) }
            }
        }
    }

    func testLinearWithAndWithoutFusedReLU() {
        let x = parameter([6, 5], seed: 20), w = parameter([4, 5], seed: 21), b = parameter([4], seed: 22, awayFromZero: true)
        checkGradients("linear", inputs: [x, w, b]) { linear(x, weight: w, bias: b) }
        checkGradients("linear+relu", inputs: [x, w, b], step: 1e-3) { linear(x, weight: w, bias: b, activation: .relu) }
        checkGradients("linear without bias", inputs: [x, w]) { linear(x, weight: w, bias: nil) }
    }

    /// `linear` on a mostly-zero input with enough rows for the sparse forward pass (`SparseKernels`, on CPUs with
    /// its vector path; the dense product elsewhere): the backward rule is the dense one, so the check ties the two.
    func testLinearOnSparseInput() {
        var rng = RandomGenerator(seed: 23)
        let rows = SparseKernels.minimumRows + 8
        let xs = Tensor(shape: [rows, 40]) { out in
            for i in 0..<out.count { out[i] = rng.uniform() < 0.15 ? rng.uniform(in: 0.2, 1) : 0 }
        }
        let x = Variable(xs, requiresGrad: true), w = parameter([20, 40], seed: 24)
        let b = parameter([20], seed: 25, awayFromZero: true)
        if SparseKernels.isFast {
            XCTAssertNotNil(SparseKernels.linearForward(xs, weight: w.value, bias: b.value, relu: true),
                            "the input should take the sparse path")
        }
        // Without ReLU: with 48 rows some pre-activation always sits within a step of the kink. The kernel's ReLU
        // is checked bit for bit against its reference (SparseKernelsTests), its backward is the dense one above.
        checkGradients("sparse linear", inputs: [x, w, b], maxElements: 60) { linear(x, weight: w, bias: b) }
    }

    /// `linear`'s weight gradient on a mostly-zero input with at least `minimumGradientUnits` units takes the sparse
    /// kernel, on the fused ReLU path and the plain one, for a new gradient and one accumulated onto the last: its
    /// bits are the reference's (`SparseKernels.naiveWeightGradient`). An infinite upstream gradient in a row whose
    /// input has zeros tells the paths apart: the dense product gives inf * 0 = NaN there, the sparse one skips the
    /// zeros. A gradient check ties the result to the function.
    func testLinearWeightGradientOnSparseInput() {
        var rng = RandomGenerator(seed: 26)
        let rows = SparseKernels.minimumRows + 8, cols = 40, units = SparseKernels.minimumGradientUnits
        let xs = Tensor(shape: [rows, cols]) { out in
            for i in 0..<out.count { out[i] = rng.uniform() < 0.15 ? rng.uniform(in: 0.2, 1) : 0 }
        }
        XCTAssertEqual(SparseKernels.gradientAppliesTo(xs, units: units), SparseKernels.isFast)
        let x = Variable(xs, requiresGrad: false)
        let b = parameter([units], seed: 28, awayFromZero: true)
        for activation in [Activation.identity, .relu] {
            let w = parameter([units, cols], seed: 27)
            var expected: Tensor? = nil
            for pass in 0..<2 {
                var seed = Tensor.normal([rows, units], generator: &rng)
                let y = linear(x, weight: w, bias: b, activation: activation)
                let unit = (0..<units).first { y.value[0, $0] > 0 } ?? 0
                seed[0, unit] = .infinity
                let g = activation == .relu ? seed.zipMap(y.value) { $1 > 0 ? $0 : 0 } : seed
                expected = SparseKernels.naiveWeightGradient(g, x: xs, accumulatingInto: expected)
                y.backward(seed: seed)
                guard let gw = w.grad else { XCTFail("no weight gradient"); return }
                let label = "\(activation), pass \(pass)"
                if SparseKernels.isFast {
                    let differing = (0..<gw.count).filter { gw[flat: $0].bitPattern != expected![flat: $0].bitPattern }
                    XCTAssertEqual(differing.count, 0, "\(label): weight gradients differing from the reference")
                } else {
                    XCTAssertTrue((0..<gw.count).contains { gw[flat: $0].isNaN }, "\(label): the dense product")
                }
            }
        }
        let w = parameter([units, cols], seed: 29)
        checkGradients("sparse linear, weight gradient", inputs: [w, b], maxElements: 60) { linear(x, weight: w, bias: b) }
    }

    func testUnaryFunctions() {
        let a = parameter([4, 3], seed: 30, awayFromZero: true), p = parameter([4, 3], seed: 31, positive: true)
        checkGradients("relu", inputs: [a]) { relu(a) }
        checkGradients("exp", inputs: [a]) { exp(a) }
        checkGradients("log", inputs: [p]) { log(p) }
        var rng = RandomGenerator(seed: 5)
        let mask = Tensor.bernoulli([4, 3], probability: 0.5, generator: &rng) * 2
        checkGradients("mask", inputs: [a]) { multiply(a, mask: mask) }
    }

    func testShapeAndReductions() {
        let a = parameter([2, 3, 4], seed: 40)
        checkGradients("reshape", inputs: [a]) { reshape(a, [6, 4]) }
        for axis in 0..<3 { checkGradients("sum axis \(axis)", inputs: [a]) { sum(a, axis: axis) } }
        checkGradients("sum", inputs: [a]) { sum(a) }
        checkGradients("mean", inputs: [a]) { mean(a) }
        checkGradients("max axis", inputs: [a], step: 1e-3) { max(a, axis: 2) }
    }

    func testLossesAtSeveralTemperatures() {
        let z = parameter([5, 7], seed: 50)
        let labels = [0, 6, 3, 3, 1]
        var rng = RandomGenerator(seed: 51)
        let targets = Softmax.softmax(Tensor.normal([5, 7], generator: &rng) * 3)
        for t: Float in [1, 2.5, 20] {
            checkGradients("logSoftmax T=\(t)", inputs: [z]) { logSoftmax(z, temperature: t) }
            checkGradients("crossEntropy T=\(t)", inputs: [z]) { crossEntropy(logits: z, labels: labels, temperature: t) }
            checkGradients("crossEntropy sum T=\(t)", inputs: [z]) { crossEntropy(logits: z, labels: labels, temperature: t, reduction: .sum) }
            checkGradients("softCrossEntropy T=\(t)", inputs: [z]) { softCrossEntropy(logits: z, targets: targets, temperature: t) }
        }
        checkGradients("mse", inputs: [z]) { meanSquaredError(z, target: targets) }
    }

    /// Closed form: z = [[0, 0]], y = 0: loss = log 2, dz = [-1/2, 1/2].
    func testCrossEntropyClosedForm() {
        let z = Variable(Tensor(shape: [1, 2], scalars: [0, 0]), requiresGrad: true)
        let loss = crossEntropy(logits: z, labels: [0])
        XCTAssertEqual(loss.value.scalar, Float(log(2.0)), accuracy: 1e-6)
        loss.backward()
        XCTAssertEqual(z.grad!.scalars, [-0.5, 0.5])
    }

    /// Large logits must not overflow: log-softmax of [1000, 0] is [0, -1000].
    func testLogSoftmaxIsStable() {
        let y = Softmax.logSoftmax(Tensor(shape: [1, 2], scalars: [1000, 0]))
        XCTAssertEqual(y.scalars, [0, -1000])
        XCTAssert(Softmax.softmax(Tensor(shape: [1, 3], scalars: [-1e4, 0, 1e4])).isFinite)
    }

    func testGradientsAccumulateUntilZeroed() {
        let w = Variable(Tensor([1, 2]), requiresGrad: true)
        sum(w * Variable(Tensor([3, 4]))).backward()
        sum(w * Variable(Tensor([3, 4]))).backward()
        XCTAssertEqual(w.grad!.scalars, [6, 8])
        w.zeroGradient()
        XCTAssertNil(w.grad)
    }

    func testConstantsBuildNoGraph() {
        let a = Variable(Tensor([1, 2])), b = Variable(Tensor([3, 4]))
        let c = a * b
        XCTAssertFalse(c.requiresGrad)
        XCTAssertTrue(c.isLeaf)
    }
}
