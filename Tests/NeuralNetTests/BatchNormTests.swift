import Foundation
import XCTest
import TensorCore
import NeuralNet
import TensorIO

/// BatchNorm1d / BatchNorm2d: PyTorch parity in training mode (output and gradients), the running statistics after
/// three training batches, evaluation mode, and central-difference gradient checks.
///
/// Tolerances (relative to the expected tensor's largest magnitude): outputs and running statistics 1e-5,
/// gradients 1e-4.
final class BatchNormTests: XCTestCase {
    func testBatchNormMatchesPyTorch() throws {
        var worst = (train: 0.0, grad: 0.0, running: 0.0, eval: 0.0)
        for tag in try CNNFixture.tags("bn_tags") {
            let p = "bn.\(tag)"
            let xv = try CNNFixture.tensor("\(p).x"), u = try CNNFixture.tensor("\(p).upstream")
            let inputShape = Array(xv.shape.dropFirst())
            func fresh() throws -> BatchNormalization {
                let layer = try CNNFixture.build(p, inputShape: inputShape)
                for (name, parameter) in layer.namedParameters { parameter.value = try CNNFixture.tensor("\(p).\(name)") }
                return try XCTUnwrap(layer as? BatchNormalization)
            }
            XCTAssertEqual(try CNNFixture.build(p, inputShape: inputShape).namedState.map(\.name), ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"])

            // Training mode: output and gradients.
            let layer = try fresh()
            let x = Variable(xv, requiresGrad: true)
            var training = ForwardContext(training: true)
            let y = layer.forward(x, context: &training)
            worst.train = max(worst.train, assertClose(y.value, try CNNFixture.tensor("\(p).train.y"), 1e-5, "\(tag) train output"))
            weightedSum(y, u).backward()
            worst.grad = max(worst.grad, assertClose(x.grad, try CNNFixture.tensor("\(p).train.grad.x"), 1e-4, "\(tag) train grad x"))
            for (name, parameter) in layer.namedParameters {
                worst.grad = max(worst.grad, assertClose(parameter.grad, try CNNFixture.tensor("\(p).train.grad.\(name)"), 1e-4,
                                                         "\(tag) train grad \(name)"))
            }

            // Running statistics after three batches.
            let running = try fresh()
            for k in 0..<3 { _ = running.forward(Variable(try CNNFixture.tensor("\(p).batch\(k)")), context: &training) }
            worst.running = max(worst.running, assertClose(running.runningMean.value, try CNNFixture.tensor("\(p).running_mean"), 1e-5,
                                                           "\(tag) running_mean"))
            worst.running = max(worst.running, assertClose(running.runningVariance.value, try CNNFixture.tensor("\(p).running_var"), 1e-5,
                                                           "\(tag) running_var"))
            XCTAssertEqual(try CNNFixture.file().integers(named: "\(p).num_batches_tracked"), [3])
            XCTAssertEqual(running.batchesTracked.value.shape, [])
            XCTAssertEqual(running.batchesTracked.value.scalar, 3, "\(tag) num_batches_tracked")

            // Evaluation mode: the running statistics, not the batch's; the same through forward and infer.
            let xe = Variable(xv, requiresGrad: true)
            var evaluation = ForwardContext(training: false)
            let ye = running.forward(xe, context: &evaluation)
            let expectedEval = try CNNFixture.tensor("\(p).eval.y")
            worst.eval = max(worst.eval, assertClose(ye.value, expectedEval, 1e-5, "\(tag) eval output"))
            assertClose(running.infer(xv), expectedEval, 1e-5, "\(tag) infer")
            XCTAssertEqual(running.batchesTracked.value.scalar, 3, "evaluation mode must not count a batch")
            weightedSum(ye, u).backward()
            assertClose(xe.grad, try CNNFixture.tensor("\(p).eval.grad.x"), 1e-4, "\(tag) eval grad x")
            for (name, parameter) in running.namedParameters {
                assertClose(parameter.grad, try CNNFixture.tensor("\(p).eval.grad.\(name)"), 1e-4, "\(tag) eval grad \(name)")
            }
        }
        print("batch norm parity (relative to max): train output \(worst.train), gradients \(worst.grad), running statistics \(worst.running), eval output \(worst.eval)")
    }

    func testTrainingModeGradientsFiniteDifferences() {
        for (label, shape) in [("2d", [3, 2, 3, 4]), ("1d", [5, 3]), ("1d sequence", [2, 3, 4])] {
            let x = parameter(shape, seed: 41)
            let gamma = parameter([shape[1]], seed: 42, positive: true)
            let beta = parameter([shape[1]], seed: 43)
            checkGradients("batch norm \(label) training", inputs: [x, gamma, beta], maxElements: 60) {
                batchNormTraining(x, weight: gamma, bias: beta, epsilon: 1e-5).output
            }
            // Without affine parameters.
            let z = parameter(shape, seed: 44)
            checkGradients("batch norm \(label) without affine", inputs: [z]) {
                batchNormTraining(z, weight: nil, bias: nil, epsilon: 1e-5).output
            }
        }
        // Through the layer (evaluation mode, fixed statistics).
        let layer = BatchNorm2d(featureCount: 2)
        layer.runningMean.value = Tensor([0.3, -0.5])
        layer.runningVariance.value = Tensor([0.7, 1.6])
        let x = parameter([2, 2, 3, 3], seed: 45)
        checkGradients("batch norm evaluation", inputs: [x] + layer.parameters) {
            var context = ForwardContext(training: false)
            return layer.forward(x, context: &context)
        }
    }

    /// The batch statistics: mean and unbiased variance per channel, as PyTorch feeds its running estimates.
    func testBatchStatistics() {
        let x = Variable(Tensor(shape: [2, 2, 1, 2], scalars: [1, 2, 10, 20, 3, 4, 30, 40]))
        let (y, mean, variance) = batchNormTraining(x, weight: nil, bias: nil, epsilon: 0)
        XCTAssertEqual(mean, [2.5, 25])
        XCTAssertEqual(variance[0], 5.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(variance[1], 500.0 / 3, accuracy: 1e-9)
        // Each channel normalised to mean 0, biased variance 1.
        let channel0 = [y.value.scalars[0], y.value.scalars[1], y.value.scalars[4], y.value.scalars[5]].map(Double.init)
        XCTAssertEqual(channel0.reduce(0, +), 0, accuracy: 1e-6)
        XCTAssertEqual(channel0.map { $0 * $0 }.reduce(0, +) / 4, 1, accuracy: 1e-5)
    }

    /// Evaluation folds a batch norm into the convolution before it (and the ReLU after it): the same values as the
    /// layers one by one, up to rounding, with and without the convolution's bias and the batch norm's affine part.
    func testConvolutionWithBatchNormFoldsAtInference() {
        var g = RandomGenerator(seed: 21)
        let geometry = ConvolutionGeometry(inChannels: 3, outChannels: 4, height: 6, width: 6, kernel: (3, 3), padding: (1, 1))
        for (convBias, affine) in [(true, true), (false, true), (true, false)] {
            let conv = Conv2d(geometry: geometry, bias: convBias, generator: &g)
            let norm = BatchNorm2d(featureCount: 4, affine: affine)
            norm.runningMean.value = Tensor(shape: [4], scalars: [0.3, -0.2, 0.05, 1.1])
            norm.runningVariance.value = Tensor(shape: [4], scalars: [0.5, 2.0, 0.01, 1.3])
            if affine {
                norm.weight?.value = Tensor(shape: [4], scalars: [1.5, -0.7, 0.2, 1])
                norm.bias?.value = Tensor(shape: [4], scalars: [0.1, 0.4, -0.3, 0])
            }
            let x = Tensor.uniform([5, 3, 6, 6], low: -1, high: 1, generator: &g)
            for relu in [false, true] {
                let layers: [Layer] = relu ? [conv, norm, ReLU()] : [conv, norm]
                let model = Sequential(layers, inputShape: [3, 6, 6])
                var separate = norm.infer(conv.infer(x))
                if relu { separate = separate.relu() }
                let folded = model.infer(x)
                XCTAssertEqual(folded.shape, separate.shape)
                let scale = separate.scalars.map(abs).max() ?? 1
                for (a, b) in zip(folded.scalars, separate.scalars) {
                    XCTAssertEqual(a, b, accuracy: 2e-6 * scale, "bias \(convBias), affine \(affine), relu \(relu)")
                }
            }
        }
    }
}
