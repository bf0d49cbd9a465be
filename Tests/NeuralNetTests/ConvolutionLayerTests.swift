import Foundation
import XCTest
import TensorCore
import NeuralNet
import TensorIO

/// Conv2d and the pooling layers: PyTorch parity (Scripts/make_cnn_fixtures.py), the im2col + BLAS kernels against
/// `Convolution.naiveForward` / `naiveBackward`, central-difference gradient checks, and description errors.
///
/// Tolerances (error relative to the expected tensor's largest magnitude, ``relativeError``): outputs 1e-5,
/// gradients 1e-4 against PyTorch's float64; 1e-5 against the Double-sum naive kernels.
final class ConvolutionLayerTests: XCTestCase {
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() {
        _ = try? BLASLibrary.select(.openblas)
        ComputeThreads.set(1)
    }

    // MARK: PyTorch parity

    func testConv2dMatchesPyTorch() throws {
        let saved = Convolution.engine
        defer { Convolution.engine = saved }
        for engine in Convolution.Engine.allCases where engine == .im2col || Convolution.loadOneDNN() {
            Convolution.engine = engine
            try conv2dMatchesPyTorch()
        }
    }

    func conv2dMatchesPyTorch() throws {
        var worst = (y: 0.0, x: 0.0, w: 0.0, b: 0.0)
        for threads in [1, 3] {
            ComputeThreads.set(threads)
            for tag in try CNNFixture.tags("conv_tags") {
                let p = "conv.\(tag)"
                let xv = try CNNFixture.tensor("\(p).x")
                let layer = try CNNFixture.build(p, inputShape: Array(xv.shape.dropFirst()), statePrefix: p)
                XCTAssertEqual(layer.namedParameters.count, try CNNFixture.has("\(p).bias") ? 2 : 1, tag)
                let x = Variable(xv, requiresGrad: true)
                var context = ForwardContext(training: true)
                let y = layer.forward(x, context: &context)
                let expected = try CNNFixture.tensor("\(p).y")
                worst.y = max(worst.y, assertClose(y.value, expected, 1e-5, "\(tag) output"))
                assertClose(layer.infer(xv), expected, 1e-5, "\(tag) infer")
                weightedSum(y, try CNNFixture.tensor("\(p).upstream")).backward()
                worst.x = max(worst.x, assertClose(x.grad, try CNNFixture.tensor("\(p).grad.x"), 1e-4, "\(tag) grad x"))
                for (name, parameter) in layer.namedParameters {
                    let e = assertClose(parameter.grad, try CNNFixture.tensor("\(p).grad.\(name)"), 1e-4, "\(tag) grad \(name)")
                    if name == "weight" { worst.w = max(worst.w, e) } else { worst.b = max(worst.b, e) }
                }
            }
        }
        print("conv2d parity, \(Convolution.engine) (relative to max): output \(worst.y), grad x \(worst.x), grad weight \(worst.w), grad bias \(worst.b)")
    }

    func testPoolingMatchesPyTorch() throws {
        var worst = (y: 0.0, x: 0.0)
        for threads in [1, 3] {
            ComputeThreads.set(threads)
            for tag in try CNNFixture.tags("pool_tags") {
                let p = "pool.\(tag)"
                let xv = try CNNFixture.tensor("\(p).x")
                let layer = try CNNFixture.build(p, inputShape: Array(xv.shape.dropFirst()))
                let x = Variable(xv, requiresGrad: true)
                var context = ForwardContext(training: true)
                let y = layer.forward(x, context: &context)
                let expected = try CNNFixture.tensor("\(p).y")
                worst.y = max(worst.y, assertClose(y.value, expected, 1e-6, "\(tag) output"))
                assertClose(layer.infer(xv), expected, 1e-6, "\(tag) infer")
                weightedSum(y, try CNNFixture.tensor("\(p).upstream")).backward()
                worst.x = max(worst.x, assertClose(x.grad, try CNNFixture.tensor("\(p).grad.x"), 1e-6, "\(tag) grad x"))
            }
        }
        print("pooling parity (relative to max): output \(worst.y), grad x \(worst.x)")
    }

    // MARK: Fast kernels against the naive reference

    /// Random geometries: odd sizes, batch 1, strides, padding, dilation, groups, non-square kernels, pointwise.
    static let kernelCases: [(batch: Int, g: ConvolutionGeometry)] = [
        (1, ConvolutionGeometry(inChannels: 3, outChannels: 5, height: 7, width: 9, kernel: (3, 3))),
        (3, ConvolutionGeometry(inChannels: 2, outChannels: 4, height: 11, width: 5, kernel: (3, 3), stride: (2, 2), padding: (1, 1))),
        (5, ConvolutionGeometry(inChannels: 4, outChannels: 6, height: 9, width: 8, kernel: (3, 2), stride: (1, 3), padding: (2, 1),
                                dilation: (2, 1), groups: 2)),
        (2, ConvolutionGeometry(inChannels: 6, outChannels: 3, height: 5, width: 7, kernel: (1, 1))),
        (4, ConvolutionGeometry(inChannels: 6, outChannels: 6, height: 6, width: 6, kernel: (3, 3), padding: (1, 1), groups: 6)),
        (1, ConvolutionGeometry(inChannels: 1, outChannels: 2, height: 13, width: 3, kernel: (5, 3), stride: (2, 1), padding: (0, 1))),
        (3, ConvolutionGeometry(inChannels: 3, outChannels: 4, height: 8, width: 8, kernel: (1, 1), stride: (2, 2))),
        (7, ConvolutionGeometry(inChannels: 2, outChannels: 2, height: 4, width: 4, kernel: (4, 4), padding: (3, 0), dilation: (1, 1))),
        (3, ConvolutionGeometry(inChannels: 6, outChannels: 9, height: 3, width: 5, kernel: (1, 1), groups: 3)),
        (2, ConvolutionGeometry(inChannels: 4, outChannels: 2, height: 5, width: 5, kernel: (1, 1), padding: (1, 1), groups: 2)),
    ]

    func testFastKernelsMatchNaiveReference() {
        let saved = Convolution.engine
        defer { Convolution.engine = saved }
        for engine in Convolution.Engine.allCases where engine == .im2col || Convolution.loadOneDNN() {
            Convolution.engine = engine
            fastKernelsMatchNaiveReference()
        }
    }

    func fastKernelsMatchNaiveReference() {
        var rng = RandomGenerator(seed: 77)
        var worst = 0.0
        for (k, (batch, g)) in Self.kernelCases.enumerated() {
            let x = Tensor.normal([batch, g.inChannels, g.height, g.width], generator: &rng)
            let w = Tensor.normal(g.weightShape, generator: &rng)
            let b = Tensor.normal([g.outChannels], generator: &rng)
            let u = Tensor.normal([batch, g.outChannels, g.outHeight, g.outWidth], generator: &rng)
            let naive = Convolution.naiveForward(x, weight: w, bias: b, geometry: g)
            let naiveGrad = Convolution.naiveBackward(u, input: x, weight: w, geometry: g)
            var results: [(y: Tensor, dx: Tensor?, dw: Tensor?, db: Tensor?)] = []
            for threads in [1, 3] {
                ComputeThreads.set(threads)
                let y = Convolution.forward(x, weight: w, bias: b, geometry: g)
                let noBias = Convolution.forward(x, weight: w, bias: nil, geometry: g)
                let grads = Convolution.backward(u, input: x, weight: w, geometry: g, needsInput: true, needsWeight: true, needsBias: true)
                let label = "\(Convolution.engine), case \(k) (\(threads) threads)"
                worst = max(worst, assertClose(y, naive, 1e-5, "\(label) forward"))
                assertClose(noBias, Convolution.naiveForward(x, weight: w, bias: nil, geometry: g), 1e-5, "\(label) forward without bias")
                worst = max(worst, assertClose(grads.input, naiveGrad.input, 1e-5, "\(label) input gradient"))
                worst = max(worst, assertClose(grads.weight, naiveGrad.weight, 1e-5, "\(label) weight gradient"))
                worst = max(worst, assertClose(grads.bias, naiveGrad.bias, 1e-5, "\(label) bias gradient"))
                // Accumulating into an existing weight gradient adds to it.
                var accumulated = Tensor(shape: g.weightShape, repeating: 1)
                _ = accumulated.withUnsafeMutableBufferPointer { dw in
                    Convolution.backward(u, input: x, weight: w, geometry: g, needsInput: false, needsWeight: true, needsBias: false,
                                         weightGradient: dw.baseAddress)
                }
                assertClose(accumulated, naiveGrad.weight.map { $0 + 1 }, 1e-5, "\(label) accumulated weight gradient")
                results.append((y, grads.input, grads.weight, grads.bias))
            }
            // Images are grouped into one product per thread's share, so the products' sizes (and BLAS's summation
            // order) depend on the thread count: results agree to rounding, and are bit-identical at a fixed count
            // (ConvolutionTests).
            assertClose(results[1].y, results[0].y, 1e-6, "case \(k): forward 3 vs 1 thread")
            assertClose(results[1].dx, results[0].dx ?? Tensor(shape: [0]), 1e-6, "case \(k): input gradient 3 vs 1 thread")
            assertClose(results[1].dw, results[0].dw ?? Tensor(shape: [0]), 1e-6, "case \(k): weight gradient 3 vs 1 thread")
        }
        print("conv kernels vs naive (relative to max): \(worst)")
    }

    /// The fused ReLU of Conv2d + ReLU equals the two layers run separately, values and gradients.
    func testFusedReLUMatchesSeparateLayers() throws {
        let g = ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 6, width: 5, kernel: (3, 3), padding: (1, 1))
        var rng = RandomGenerator(seed: 3)
        let w = Tensor.normal(g.weightShape, generator: &rng), b = Tensor.normal([3], generator: &rng)
        let xv = Tensor.normal([2, 2, 6, 5], generator: &rng), u = Tensor.normal([2, 3, 6, 5], generator: &rng)
        func run(fused: Bool) -> (Tensor, Tensor?, Tensor?) {
            let conv = Conv2d(geometry: g, weight: w, bias: b)
            let x = Variable(xv, requiresGrad: true)
            var context = ForwardContext(training: true)
            let y = fused ? Sequential([conv, ReLU()]).forward(x, context: &context) : relu(conv.forward(x, context: &context))
            weightedSum(y, u).backward()
            return (y.value, x.grad, conv.weight.grad)
        }
        let (y1, dx1, dw1) = run(fused: true), (y2, dx2, dw2) = run(fused: false)
        XCTAssertEqual(y1, y2)
        XCTAssertEqual(dx1, dx2)
        assertClose(dw1, dw2 ?? Tensor(shape: [0]), 1e-6, "weight gradient")
        XCTAssertEqual(Sequential([Conv2d(geometry: g, weight: w, bias: b), ReLU()]).infer(xv), y1)
    }

    // MARK: Gradient checks (central differences, sums in Double)

    func testConv2dGradientsFiniteDifferences() {
        let settings: [(String, ConvolutionGeometry, Bool)] = [
            ("plain", ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 5, width: 6, kernel: (3, 3)), true),
            ("stride2_pad1", ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 7, width: 6, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), true),
            ("dilation2", ConvolutionGeometry(inChannels: 2, outChannels: 2, height: 7, width: 7, kernel: (3, 3), padding: (1, 1), dilation: (2, 2)), true),
            ("groups2", ConvolutionGeometry(inChannels: 4, outChannels: 4, height: 5, width: 5, kernel: (3, 3), padding: (1, 1), groups: 2), true),
            ("pointwise", ConvolutionGeometry(inChannels: 3, outChannels: 2, height: 4, width: 5, kernel: (1, 1)), true),
            ("nonsquare", ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 7, width: 8, kernel: (3, 5), stride: (2, 1), padding: (1, 2)), true),
            ("nobias", ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 5, width: 5, kernel: (3, 3), padding: (1, 1)), false),
        ]
        for (k, (label, g, hasBias)) in settings.enumerated() {
            let x = parameter([2, g.inChannels, g.height, g.width], seed: UInt64(100 + k))
            let w = parameter(g.weightShape, seed: UInt64(200 + k))
            let b = hasBias ? parameter([g.outChannels], seed: UInt64(300 + k)) : nil
            checkGradients("conv2d \(label)", inputs: [x, w] + (b.map { [$0] } ?? [])) {
                conv2d(x, weight: w, bias: b, geometry: g)
            }
        }
    }

    /// Inputs with distinct values 0.1 apart (a shuffled ramp), so a step of 1e-2 never changes a window's maximum.
    static func spacedInput(_ shape: [Int], seed: UInt64) -> Variable {
        var rng = RandomGenerator(seed: seed)
        let n = shape.reduce(1, *)
        var values = (0..<n).map { Float($0) * 0.1 - Float(n) * 0.05 }
        for i in stride(from: n - 1, to: 0, by: -1) { values.swapAt(i, rng.next(below: i + 1)) }
        return Variable(Tensor(shape: shape, scalars: values), requiresGrad: true)
    }

    func testPoolingGradientsFiniteDifferences() {
        let cases: [(String, PoolingGeometry)] = [
            ("k2", PoolingGeometry(height: 6, width: 5, kernel: (2, 2), stride: (2, 2))),
            ("k3s2p1", PoolingGeometry(height: 7, width: 6, kernel: (3, 3), stride: (2, 2), padding: (1, 1))),
            ("d2", PoolingGeometry(height: 8, width: 9, kernel: (3, 2), stride: (1, 2), dilation: (2, 2))),
            ("overlapping", PoolingGeometry(height: 5, width: 5, kernel: (3, 3), stride: (1, 1))),
        ]
        for (k, (label, g)) in cases.enumerated() {
            let x = Self.spacedInput([2, 2, g.height, g.width], seed: UInt64(k))
            checkGradients("maxPool2d \(label)", inputs: [x], maxElements: 200) { maxPool2d(x, geometry: g) }
            if g.dilationHeight == 1 {
                let a = parameter([2, 2, g.height, g.width], seed: UInt64(50 + k))
                for include in [true, false] {
                    checkGradients("avgPool2d \(label) countIncludePad \(include)", inputs: [a], maxElements: 200) {
                        avgPool2d(a, geometry: g, countIncludePad: include)
                    }
                }
            }
        }
        let x = parameter([3, 4, 5, 3], seed: 9)
        checkGradients("globalAveragePool", inputs: [x], maxElements: 200) { globalAveragePool(x) }
    }

    /// A residual block (projection shortcut, batch norms in training mode): every parameter and the input.
    func testResidualGradientsFiniteDifferences() throws {
        let description = Residual.description(
            body: [Conv2d.description(inChannels: 2, outChannels: 3, kernelSize: 3, stride: 2, padding: 1),
                   BatchNorm2d.description(numFeatures: 3), LayerDescription(kind: ReLU.kind),
                   Conv2d.description(inChannels: 3, outChannels: 3, kernelSize: 3, padding: 1, bias: false)],
            shortcut: [Conv2d.description(inChannels: 2, outChannels: 3, kernelSize: 1, stride: 2, bias: false),
                       BatchNorm2d.description(numFeatures: 3)])
        var generator = RandomGenerator(seed: 21)
        let block = try Residual.make(description, inputShape: [2, 6, 5], generator: &generator)
        // Batch-norm scales and shifts away from their initial 1 and 0.
        for (name, p) in block.namedParameters where name.hasSuffix("1.weight") || name.hasSuffix("1.bias") {
            p.value = p.value.map { $0 + (name.hasSuffix("weight") ? 0.3 : -0.2) }
        }
        let x = parameter([3, 2, 6, 5], seed: 22)
        // A small step: with the shifted batch norms many pre-activations lie within 1e-2 of the ReLU's kink.
        checkGradients("residual", inputs: [x] + block.parameters, step: 1e-3) {
            var context = ForwardContext(training: true)
            return block.forward(x, context: &context)
        }
        let identity = try Residual.make(Residual.description(body: [Conv2d.description(inChannels: 2, outChannels: 2, kernelSize: 3, padding: 1)]),
                                         inputShape: [2, 4, 4], generator: &generator)
        let y = parameter([2, 2, 4, 4], seed: 23)
        checkGradients("residual identity", inputs: [y] + identity.parameters) {
            var context = ForwardContext(training: true)
            return identity.forward(y, context: &context)
        }
    }

    // MARK: Description errors

    func testDescriptionErrorsAreOneClearLine() {
        func message(_ layer: LayerDescription, _ inputShape: [Int]) -> String {
            do { _ = try ModelDescription(inputShape: inputShape, layers: [layer]).plan(); return "no error" } catch { return "\(error)" }
        }
        let cases: [(LayerDescription, [Int], [String])] = [
            (Conv2d.description(inChannels: 3, outChannels: 4, kernelSize: 3), [1, 28, 28],
             ["conv2d", "needs input shape [3, height, width]", "[1, 28, 28]"]),
            (Conv2d.description(inChannels: 1, outChannels: 4, kernelSize: 3), [784], ["conv2d", "needs input shape [1, height, width]", "[784]"]),
            (Conv2d.description(inChannels: 3, outChannels: 4, kernelSize: 3, groups: 2), [3, 8, 8],
             ["conv2d", "divisible by groups (2)"]),
            (Conv2d.description(inChannels: 2, outChannels: 3, kernelSize: 3, groups: 2), [2, 8, 8], ["divisible by groups"]),
            (Conv2d.description(inChannels: 1, outChannels: 4, kernelSize: 9), [1, 8, 8], ["conv2d", "9x9 kernel", "does not fit the 8x8 input"]),
            (Conv2d.description(inChannels: 1, outChannels: 4, kernelSize: 3, dilation: 4), [1, 8, 8], ["does not fit"]),
            (LayerDescription(kind: "conv2d", settings: ["inChannels": .integer(1), "outChannels": .integer(2), "kernelSize": .integer(3),
                                                          "padding_mode": .string("reflect")]), [1, 8, 8],
             ["conv2d", "unknown setting 'padding_mode'"]),
            (LayerDescription(kind: "conv2d", settings: ["inChannels": .integer(1), "outChannels": .integer(2)]), [1, 8, 8],
             ["'kernelSize' is missing"]),
            (LayerDescription(kind: "conv2d", settings: ["inChannels": .integer(1), "outChannels": .integer(2), "kernelSize": .integers([3, 3, 3])]),
             [1, 8, 8], ["'kernelSize' must be a whole number or a list of two"]),
            (Conv2d.description(inChannels: 1, outChannels: 2, kernelSize: 3, stride: 0), [1, 8, 8], ["'stride' must be in 1...", "got [0, 0]"]),
            (MaxPool2d.description(kernelSize: 5), [1, 4, 4], ["maxPool2d", "does not fit the 4x4 input"]),
            (MaxPool2d.description(kernelSize: 2), [16], ["maxPool2d", "needs input shape [channels, height, width]"]),
            (LayerDescription(kind: "maxPool2d", settings: ["kernelSize": .integer(2), "padding": .integer(2)]), [1, 8, 8],
             ["at most half the kernel size"]),
            (LayerDescription(kind: "avgPool2d", settings: ["kernelSize": .integer(2), "dilation": .integer(2)]), [1, 8, 8],
             ["avgPool2d", "unknown setting 'dilation'"]),
            (LayerDescription(kind: "avgPool2d", settings: ["kernelSize": .integer(2), "countIncludePad": .string("yes")]), [1, 8, 8],
             ["countIncludePad"]),
            (LayerDescription(kind: GlobalAvgPool.kind), [10], ["globalAvgPool", "needs input shape"]),
            (BatchNorm2d.description(numFeatures: 3), [4, 5, 5], ["batchNorm2d", "(3 features)", "[4, 5, 5]"]),
            (BatchNorm2d.description(numFeatures: 3), [3], ["batchNorm2d", "[channels, height, width]"]),
            (BatchNorm1d.description(numFeatures: 3), [3, 4, 4], ["batchNorm1d", "[features] or [features, length]"]),
            (LayerDescription(kind: "batchNorm1d", settings: ["numFeatures": .integer(3), "eps": .number(0)]), [3], ["'eps'"]),
            (LayerDescription(kind: "batchNorm2d", settings: ["numFeatures": .integer(3), "track_running_stats": .bool(false)]), [3, 4, 4],
             ["unknown setting 'track_running_stats'"]),
            (Residual.description(body: [Conv2d.description(inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1)]), [2, 5, 5],
             ["residual", "body gives shape [4, 5, 5]", "shortcut [2, 5, 5]"]),
            (Residual.description(body: [Conv2d.description(inChannels: 3, outChannels: 3, kernelSize: 3, padding: 1)]), [2, 5, 5],
             ["residual body", "needs input shape [3, height, width]"]),
            (LayerDescription(kind: "residual", settings: ["body": .layers([])]), [2, 5, 5], ["'body' must list at least one layer"]),
        ]
        for (layer, shape, fragments) in cases {
            let m = message(layer, shape)
            XCTAssertNotEqual(m, "no error", "\(layer) on \(shape) was accepted")
            XCTAssertFalse(m.contains("\n"), "not one line: \(m)")
            XCTAssertTrue(m.hasPrefix("layer 0: "), m)
            for fragment in fragments { XCTAssertTrue(m.contains(fragment), "'\(fragment)' not in: \(m)") }
        }
        // A whole preset on data it cannot take.
        XCTAssertThrowsError(try ModelPresets.description(named: "lenet5", inputShape: [784], classCount: 10)) { error in
            XCTAssertTrue("\(error)".contains("needs image input [channels, height, width]"), "\(error)")
        }
        XCTAssertThrowsError(try ModelPresets.description(named: "resnet9", inputShape: [1, 28, 28], classCount: 10)) { error in
            XCTAssertTrue("\(error)".contains("unknown model 'resnet9'"), "\(error)")
        }
    }
}
