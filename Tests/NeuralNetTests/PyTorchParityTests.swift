import Foundation
import XCTest
import TensorCore
import NeuralNet
import TensorIO

/// The committed PyTorch fixture (Scripts/make_nn_fixtures.py).
private func nnFixture() throws -> SafeTensorsFile {
    if let url = Bundle.module.url(forResource: "Fixtures/nn", withExtension: "safetensors") {
        return try SafeTensors.read(url: url)
    }
    return try SafeTensors.read(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/nn.safetensors"))
}

/// Max |a - b| / max(1, |b|).
private func maxDifference(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, "element count", file: file, line: line)
    var worst: Float = 0
    for (x, y) in zip(a.scalars, b.scalars) { worst = max(worst, abs(x - y) / max(1, abs(y))) }
    return worst
}

final class PyTorchParityTests: XCTestCase {
    // `DISTILL_BLAS=mkl swift test --filter ...` runs these on MKL (`.ci/run` does when MKL is installed).
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() { _ = try? BLASLibrary.select(.openblas) }

    func testMLPForwardLossAndGradientsMatchPyTorch() throws {
        let f = try nnFixture()
        func layer(_ i: Int) throws -> Linear {
            Linear(weight: try f.tensor(named: "model.\(i).weight"), bias: try f.tensor(named: "model.\(i).bias"))
        }
        let model = Sequential([try layer(0), ReLU(), try layer(2), ReLU(), try layer(4)])
        XCTAssertEqual(model.namedParameters.map(\.name), ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
        let x = Variable(try f.tensor(named: "x"), requiresGrad: true)
        let y = try f.integers(named: "y")
        var context = ForwardContext(training: true)
        let logits = model(x, context: &context)
        let logitsDiff = maxDifference(logits.value, try f.tensor(named: "logits"))
        XCTAssertLessThan(logitsDiff, 1e-5)
        XCTAssertLessThan(maxDifference(model.infer(x.value), try f.tensor(named: "logits")), 1e-5)
        let loss = crossEntropy(logits: logits, labels: y)
        let expectedLoss = try f.tensor(named: "loss").scalars[0]
        XCTAssertEqual(loss.value.scalar, expectedLoss, accuracy: 1e-5 * max(1, expectedLoss))
        loss.backward()
        var worst: Float = 0
        for (name, p) in model.namedParameters {
            let g = try XCTUnwrap(p.grad, "no gradient for \(name)")
            let d = maxDifference(g, try f.tensor(named: "grad.model.\(name)"))
            XCTAssertLessThan(d, 1e-5, "grad \(name)")
            worst = max(worst, d)
        }
        let dx = maxDifference(try XCTUnwrap(x.grad), try f.tensor(named: "grad.x"))
        XCTAssertLessThan(dx, 1e-5, "grad.x")
        print("nn parity: logits \(logitsDiff), loss \(abs(loss.value.scalar - expectedLoss)), parameter grads \(worst), grad.x \(dx)")
    }

    func testTemperatureSoftmaxAndCrossEntropyMatchPyTorch() throws {
        let f = try nnFixture()
        let z = try f.tensor(named: "ce.z")
        let y = try f.integers(named: "ce.y")
        for (tag, T) in [("T1", Float(1)), ("T2.5", 2.5), ("T20", 20)] {
            let expectedLS = try f.tensor(named: "ce.\(tag).log_softmax")
            let ls = Softmax.logSoftmax(z, temperature: T)
            XCTAssert(ls.scalars.allSatisfy(\.isFinite), "\(tag) log-softmax not finite")
            let dls = maxDifference(ls, expectedLS)
            XCTAssertLessThan(dls, 1e-5, "\(tag) log_softmax")
            let dlsVar = maxDifference(logSoftmax(Variable(z), temperature: T).value, expectedLS)
            XCTAssertLessThan(dlsVar, 1e-5, "\(tag) logSoftmax(Variable)")
            // The large-logit row (row 3) on its own.
            let row3 = Tensor(Array(ls.scalars[21..<28])), expected3 = Tensor(Array(expectedLS.scalars[21..<28]))
            XCTAssertLessThan(maxDifference(row3, expected3), 1e-5, "\(tag) large-logit row")

            let zv = Variable(z, requiresGrad: true)
            let loss = crossEntropy(logits: zv, labels: y, temperature: T)
            let expectedLoss = try f.tensor(named: "ce.\(tag).loss").scalars[0]
            XCTAssert(loss.value.scalar.isFinite)
            XCTAssertEqual(loss.value.scalar, expectedLoss, accuracy: 1e-5 * max(1, expectedLoss), "\(tag) loss")
            loss.backward()
            let dg = maxDifference(try XCTUnwrap(zv.grad), try f.tensor(named: "ce.\(tag).grad"))
            XCTAssertLessThan(dg, 1e-6, "\(tag) gradient")

            // The same gradient through logSoftmax's own backward (-mean of the picked log-probabilities).
            let zw = Variable(z, requiresGrad: true)
            let lsw = logSoftmax(zw, temperature: T)
            var pick = [Float](repeating: 0, count: 35)
            for (r, label) in y.enumerated() { pick[r * 7 + label] = -1 / 5 }
            let picked = sum(multiply(lsw, mask: Tensor(shape: [5, 7], scalars: pick)))
            XCTAssertEqual(picked.value.scalar, expectedLoss, accuracy: 1e-5 * max(1, expectedLoss))
            picked.backward()
            XCTAssertLessThan(maxDifference(try XCTUnwrap(zw.grad), try f.tensor(named: "ce.\(tag).grad")), 1e-6,
                              "\(tag) logSoftmax backward")
            print("ce parity \(tag): log_softmax \(dls), loss \(abs(loss.value.scalar - expectedLoss)), grad \(dg)")
        }
    }

    func testLinearInitBoundMatchesPyTorchMetadata() throws {
        let f = try nnFixture()
        let bound = try XCTUnwrap(Double(try XCTUnwrap(f.metadata["linear_bound_784"])))
        XCTAssertEqual(bound, 1.0 / 28, accuracy: 1e-15)
        var rng = RandomGenerator(seed: 11)
        let layer = Linear(inputCount: 784, outputCount: 300, generator: &rng)
        let w = layer.weight.value.scalars.map(Double.init)
        XCTAssert(w.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(w.max()!, bound * 0.99)
        XCTAssertLessThan(w.min()!, -bound * 0.99)
        let mean = w.reduce(0, +) / Double(w.count)
        let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count - 1)).squareRoot()
        if let s = f.metadata["linear_std_784"], let expectedStd = Double(s) {
            XCTAssertEqual(std, expectedStd, accuracy: expectedStd * 0.02)
        }
        XCTAssert(layer.bias.value.scalars.allSatisfy { abs(Double($0)) <= bound })
    }
}
