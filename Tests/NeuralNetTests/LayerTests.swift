import XCTest
import TensorCore
import NeuralNet

final class LayerTests: XCTestCase {
    func testLayerGradients() {
        var rng = RandomGenerator(seed: 60)
        let model = Sequential([Flatten(), Linear(inputCount: 6, outputCount: 5, generator: &rng), ReLU(),
                                Dropout(probability: 0.3), Linear(inputCount: 5, outputCount: 3, generator: &rng)])
        let x = Variable(Tensor.normal([4, 2, 3], generator: &rng), requiresGrad: true)
        // Dropout draws from the context's generator; a fresh copy per call keeps the mask fixed.
        checkGradients("sequential (training, dropout)", inputs: [x] + model.parameters, step: 1e-3, tolerance: 3e-2) {
            var context = ForwardContext(training: true, generator: RandomGenerator(seed: 99))
            return model(x, context: &context)
        }
        checkGradients("relu layer", inputs: [x]) {
            var context = ForwardContext(training: false)
            return ReLU()(x, context: &context)
        }
    }

    func testPyTorchParameterNames() {
        var rng = RandomGenerator(seed: 0)
        let model = Sequential(specifications: [.dropout(probability: 0.2), .linear(inputCount: 4, outputCount: 3), .relu,
                                                .dropout(probability: 0.5), .linear(inputCount: 3, outputCount: 2)],
                               generator: &rng)
        XCTAssertEqual(model.namedParameters.map(\.name), ["1.weight", "1.bias", "4.weight", "4.bias"])
        XCTAssertEqual(model.parameters[0].shape, [3, 4])
    }

    /// PyTorch's default nn.Linear initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    func testLinearInitialisationBounds() {
        var rng = RandomGenerator(seed: 1)
        let layer = Linear(inputCount: 784, outputCount: 800, generator: &rng)
        let bound = 1 / Float(784).squareRoot()
        let w = layer.weight.value.scalars
        XCTAssert(w.allSatisfy { abs($0) <= bound })
        XCTAssertEqual(w.max()!, bound, accuracy: bound * 0.01)
        let variance = w.reduce(0) { $0 + $1 * $1 } / Float(w.count)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: bound * bound * 0.02)
        XCTAssert(layer.bias.value.scalars.allSatisfy { abs($0) <= bound })
    }

    func testDropoutTrainingAndEvaluation() {
        let layer = Dropout(probability: 0.5)
        let x = Variable(Tensor(shape: [100, 100], repeating: 1))
        var context = ForwardContext(training: true, generator: RandomGenerator(seed: 3))
        let y = layer(x, context: &context).value
        XCTAssert(y.scalars.allSatisfy { $0 == 0 || $0 == 2 })
        XCTAssertEqual(y.mean(), 1, accuracy: 0.05)
        var evaluation = ForwardContext(training: false)
        XCTAssertEqual(layer(x, context: &evaluation).value, x.value)
        XCTAssertEqual(layer.infer(x.value), x.value)
    }

    func testInferMatchesEvaluationForward() {
        var rng = RandomGenerator(seed: 4)
        let model = Sequential(specifications: [.linear(inputCount: 8, outputCount: 6), .relu, .dropout(probability: 0.5),
                                                .linear(inputCount: 6, outputCount: 3)], generator: &rng)
        let x = Tensor.normal([5, 8], generator: &rng)
        var context = ForwardContext(training: false)
        let a = model(Variable(x), context: &context).value
        XCTAssertEqual(a, model.infer(x))
    }

    /// A few rows on several threads run with each layer's units split over the threads; the result agrees with
    /// one thread (to the GEMV's summation order), for uneven splits, nested Sequentials and a unit count below
    /// the thread count.
    func testInferSplittingUnitsMatchesOneThread() {
        var rng = RandomGenerator(seed: 6)
        let model = Sequential(specifications: [.flatten, .linear(inputCount: 12, outputCount: 7), .relu, .dropout(probability: 0.3),
                                                .sequential([.linear(inputCount: 7, outputCount: 5), .relu]),
                                                .linear(inputCount: 5, outputCount: 2)], generator: &rng)
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        for rows in [1, 2, 4, 5] {
            let x = Tensor.normal([rows, 12], generator: &rng)
            ComputeThreads.set(1)
            let serial = model.infer(x)
            for threads in [2, 3, 8] {
                ComputeThreads.set(threads)
                let split = model.infer(x)
                XCTAssertEqual(split.shape, [rows, 2])
                for (a, b) in zip(split.scalars, serial.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5, "rows \(rows) threads \(threads)") }
                XCTAssertEqual(ComputeThreads.count, threads, "count restored after the single-threaded BLAS section")
            }
        }
        // The kernel itself against the fused forward, every split of 7 units.
        let x = Tensor.normal([3, 12], generator: &rng), w = Tensor.normal([7, 12], generator: &rng), b = Tensor.normal([7], generator: &rng)
        for activation in [Activation.identity, .relu] {
            let reference = linearForward(x, weight: w, bias: b, activation: activation)
            for parts in 1...9 {
                let split = linearForwardSplittingUnits(x, weight: w, bias: b, activation: activation, parts: parts)
                for (u, v) in zip(split.scalars, reference.scalars) { XCTAssertEqual(u, v, accuracy: 1e-5, "parts \(parts) \(activation)") }
            }
        }
    }

    /// `linearForward` copies the bias into each part's block before its product and applies ReLU after, on the
    /// thread that computes the part: the same bits as filling the bias, one `GEMM.sgemm` and ReLU one element at a
    /// time afterwards, with the product split over two threads (rows and columns) and on one.
    func testFusedBiasAndReLUMatchSeparatePasses() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        var rng = RandomGenerator(seed: 8)
        for split in [false, true] {
            ComputeThreads.set(split ? 2 : 1)
            for (rows, inputs, outputs) in [(128, 784, 800), (300, 50, 64), (3, 12, 7)] {
                let x = Tensor.normal([rows, inputs], generator: &rng), w = Tensor.normal([outputs, inputs], generator: &rng)
                var b = Tensor.normal([outputs], generator: &rng)
                b.withUnsafeMutableBufferPointer { $0[0] = .nan }   // a NaN bias keeps its column NaN through ReLU
                for activation in [Activation.identity, .relu] {
                    for bias in [b, nil] {
                        let fused = linearForward(x, weight: w, bias: bias, activation: activation)
                        var separate = [Float](repeating: 0, count: rows * outputs)
                        x.withUnsafeBufferPointer { xb in w.withUnsafeBufferPointer { wb in b.withUnsafeBufferPointer { bb in
                            separate.withUnsafeMutableBufferPointer { c in
                                let whole = GEMM.Block(rows: 0..<rows, columns: 0..<outputs)
                                if bias != nil { Kernels.naiveFillRowsThenReLU(c.baseAddress!, stride: outputs, block: whole, from: bb.baseAddress!, relu: false) }
                                GEMM.sgemm(transposeA: false, transposeB: true, m: rows, n: outputs, k: inputs, alpha: 1,
                                           a: xb.baseAddress!, lda: inputs, b: wb.baseAddress!, ldb: inputs,
                                           beta: bias == nil ? 0 : 1, c: c.baseAddress!, ldc: outputs)
                                Kernels.naiveFillRowsThenReLU(c.baseAddress!, stride: outputs, block: whole, from: nil, relu: activation == .relu)
                            }
                        } } }
                        XCTAssertEqual(fused.scalars.map(\.bitPattern), separate.map(\.bitPattern),
                                       "\(rows)x\(inputs)->\(outputs) \(activation) bias \(bias != nil) split \(split)")
                    }
                }
            }
        }
    }

    /// The backward of a ReLU linear layer, fused into the weight-gradient product's parts (`reluLinearBackward`)
    /// when its outputs are at least its inputs, equals the separate passes bit for bit: mask, column sums, dW = G^T x
    /// (fresh or accumulated into an existing gradient) and dx = G W; split over two threads or not.
    func testFusedReLUBackwardMatchesSeparatePasses() {
        let previous = ComputeThreads.count
        defer { ComputeThreads.set(previous) }
        var rng = RandomGenerator(seed: 9)
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            // 128x784->800, 40x30->64 and an empty batch take the fused path; 16x50->20 (fewer outputs than inputs)
            // the other.
            for (rows, inputs, outputs) in [(128, 784, 800), (40, 30, 64), (16, 50, 20), (0, 30, 64)] {
                let xv = Tensor.normal([rows, inputs], generator: &rng), wv = Tensor.normal([outputs, inputs], generator: &rng)
                let bv = Tensor.normal([outputs], generator: &rng), seed = Tensor.normal([rows, outputs], generator: &rng)
                let priorGradient = Tensor.normal([outputs, inputs], generator: &rng)
                for accumulate in [false, true] {
                    let x = Variable(xv, requiresGrad: true), w = Variable(wv, requiresGrad: true)
                    let b = Variable(bv, requiresGrad: true)
                    if accumulate { w.grad = priorGradient }
                    let y = linear(x, weight: w, bias: b, activation: .relu)
                    y.backward(seed: seed)
                    // Reference: the separate passes.
                    var masked = [Float](repeating: 0, count: rows * outputs)
                    seed.withUnsafeBufferPointer { s in y.value.withUnsafeBufferPointer { yb in
                        masked.withUnsafeMutableBufferPointer { Kernels.reluBackward(s, output: yb, into: $0) }
                    } }
                    let g = Tensor(shape: [rows, outputs], scalars: masked)
                    var dw = accumulate ? priorGradient : Tensor.zeros([outputs, inputs])
                    dw.addMatmul(g, xv, transposeA: true, transposeB: false, alpha: 1, beta: accumulate ? 1 : 0)
                    let label = "\(rows)x\(inputs)->\(outputs) threads \(threads) accumulate \(accumulate)"
                    XCTAssertEqual(w.grad?.scalars.map(\.bitPattern), dw.scalars.map(\.bitPattern), label)
                    XCTAssertEqual(b.grad?.scalars.map(\.bitPattern), g.sumRows().scalars.map(\.bitPattern), label)
                    XCTAssertEqual(x.grad?.scalars.map(\.bitPattern), g.matmul(wv).scalars.map(\.bitPattern), label)
                }
            }
        }
    }

    /// XOR with a 2-8-2 network: a seeded run that must converge.
    func testXORConverges() {
        var rng = RandomGenerator(seed: 5)
        let model = Sequential(specifications: [.linear(inputCount: 2, outputCount: 8), .relu, .linear(inputCount: 8, outputCount: 2)],
                               generator: &rng)
        let x = Variable(Tensor(shape: [4, 2], scalars: [0, 0, 0, 1, 1, 0, 1, 1]))
        let labels = [0, 1, 1, 0]
        var context = ForwardContext(training: true)
        var last: Float = .infinity
        for _ in 0..<500 {
            model.zeroGradients()
            let loss = crossEntropy(logits: model(x, context: &context), labels: labels)
            loss.backward()
            for p in model.parameters { p.value.addScaled(p.grad!, by: -0.1) }
            last = loss.value.scalar
        }
        XCTAssertLessThan(last, 0.05)
        XCTAssertEqual(model.infer(x.value).argmax(axis: 1), labels)
    }
}
