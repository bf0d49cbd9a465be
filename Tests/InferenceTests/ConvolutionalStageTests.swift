import Foundation
import XCTest
import NeuralNet
import TensorCore
import Inference

/// The oneDNN network stage against `Sequential.infer` (the evaluation-mode path it replaces), on the presets with
/// random weights and batch norm statistics, and on a small network using every supported layer kind.
final class ConvolutionalStageTests: XCTestCase {
    override func setUpWithError() throws {
        guard Convolution.loadOneDNN(), OneDNNNetwork(inputShape: [1, 4, 4]) != nil else {
            throw XCTSkip("oneDNN does not load (libdnnl2, or libdnnl-dev's header at build time, missing)")
        }
    }

    override func tearDown() { ComputeThreads.set(1) }

    /// A preset with random weights, its batch norms given non-trivial running statistics and affine parameters.
    static func model(_ name: String, seed: UInt64) throws -> Sequential {
        var generator = RandomGenerator(seed: seed)
        let model = try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10).build(generator: &generator)
        randomizeNorms(model.layers, &generator)
        return model
    }

    static func randomizeNorms(_ layers: [Layer], _ generator: inout RandomGenerator) {
        for layer in layers {
            if let norm = layer as? BatchNormalization {
                let c = norm.featureCount
                norm.runningMean.value = Tensor.uniform([c], low: -0.5, high: 0.5, generator: &generator)
                norm.runningVariance.value = Tensor.uniform([c], low: 0.5, high: 2, generator: &generator)
                norm.weight?.value = Tensor.uniform([c], low: 0.5, high: 1.5, generator: &generator)
                norm.bias?.value = Tensor.uniform([c], low: -0.3, high: 0.3, generator: &generator)
            } else if let block = layer as? Residual {
                randomizeNorms(block.body.layers, &generator)
                randomizeNorms(block.shortcut?.layers ?? [], &generator)
            }
        }
    }

    /// max |a - b| / max |b|.
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let x = a.scalars, y = b.scalars
        let scale = y.map(abs).max() ?? 0
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / Swift.max(scale, .leastNormalMagnitude) } ?? 0
    }

    /// The stage's output followed by the model's remaining layers equals `Sequential.infer` to a relative 1e-5.
    func checkAgainstSequential(_ model: Sequential, inputShape: [Int], expectConsumed: Int? = nil, file: StaticString = #filePath,
                                line: UInt = #line) throws {
        let made = ConvolutionalStage.make(layers: model.layers[...], inputShape: inputShape)
        let (stage, consumed) = try XCTUnwrap(made, file: file, line: line)
        if let expectConsumed { XCTAssertEqual(consumed, expectConsumed, file: file, line: line) }
        let rest = consumed < model.layers.count ? Sequential(Array(model.layers[consumed...])) : nil
        var generator = RandomGenerator(seed: 7)
        for batch in [1, 7, 300] {
            let x = Tensor.uniform([batch] + inputShape, low: 0, high: 1, generator: &generator)
            // At 2 threads: the batch split over the helpers, and (at most 8 images) one call on oneDNN's OpenMP pool.
            for (threads, sharedPoolMaxBatch) in [(1, 0), (2, 0), (2, 8)] where batch <= 8 || sharedPoolMaxBatch == 0 {
                ComputeThreads.set(threads)
                let saved = (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops)
                (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops) = (sharedPoolMaxBatch, 0)
                defer { (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops) = saved }
                let expected = model.infer(x)
                var y = stage.run(x, threads: threads)
                if let rest { y = rest.infer(y) }
                let label = "batch \(batch), \(threads) threads, shared pool up to \(sharedPoolMaxBatch)"
                XCTAssertEqual(y.shape, expected.shape, label, file: file, line: line)
                XCTAssertLessThanOrEqual(Self.relativeError(y, expected), 1e-5, label, file: file, line: line)
            }
        }
    }

    func testLeNet5MatchesSequentialInfer() throws {
        // conv-ReLU-pool twice and the flatten: 7 layers.
        try checkAgainstSequential(try Self.model("lenet5", seed: 1), inputShape: [1, 28, 28], expectConsumed: 7)
    }

    func testResNet8MatchesSequentialInfer() throws {
        let model = try Self.model("resnet8", seed: 2)
        // Everything but the final linear layer.
        try checkAgainstSequential(model, inputShape: [1, 28, 28], expectConsumed: model.layers.count - 1)
    }

    /// Average pooling with and without the padding counted, max pooling with padding, a convolution with bias and
    /// groups, identity residual blocks followed by ReLU (one of a single convolution, which adds its own input), a
    /// projection shortcut without ReLU, global pooling.
    func testEveryLayerKindMatchesSequentialInfer() throws {
        var generator = RandomGenerator(seed: 3)
        func conv(_ i: Int, _ o: Int, _ h: Int, kernel: Int = 3, stride: Int = 1, padding: Int = 1, groups: Int = 1,
                  bias: Bool = true) -> Conv2d {
            Conv2d(geometry: ConvolutionGeometry(inChannels: i, outChannels: o, height: h, width: h, kernel: (kernel, kernel),
                                                 stride: (stride, stride), padding: (padding, padding), groups: groups),
                   bias: bias, generator: &generator)
        }
        let layers: [Layer] = [
            conv(3, 8, 20), ReLU(),
            AvgPool2d(geometry: PoolingGeometry(height: 20, width: 20, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
                      countIncludePad: false),  // 10x10
            Residual(body: Sequential([conv(8, 8, 10, bias: false), BatchNorm2d(featureCount: 8), ReLU(), Dropout(probability: 0.5),
                                       conv(8, 8, 10, groups: 2), BatchNorm2d(featureCount: 8)])),
            ReLU(),
            MaxPool2d(geometry: PoolingGeometry(height: 10, width: 10, kernel: (3, 3), stride: (2, 2), padding: (1, 1))),  // 5x5
            Residual(body: Sequential([conv(8, 12, 5, stride: 2), ReLU(), conv(12, 12, 3)]),
                     shortcut: Sequential([conv(8, 12, 5, kernel: 1, stride: 2, padding: 0, bias: false), BatchNorm2d(featureCount: 12)])),
            // One convolution adding its own input.
            Residual(body: Sequential([conv(12, 12, 3)])), ReLU(),
            AvgPool2d(geometry: PoolingGeometry(height: 3, width: 3, kernel: (2, 2), stride: (1, 1), padding: (1, 1))),  // 4x4
            GlobalAvgPool(),
            Linear(inputCount: 12, outputCount: 5, generator: &generator),
        ]
        Self.randomizeNorms(layers, &generator)
        try checkAgainstSequential(Sequential(layers, inputShape: [3, 20, 20]), inputShape: [3, 20, 20], expectConsumed: layers.count - 1)
    }

    /// The segment stops before a layer it does not support; a list starting with one gives no stage.
    func testStopsAtUnsupportedLayer() throws {
        var generator = RandomGenerator(seed: 4)
        let g = ConvolutionGeometry(inChannels: 1, outChannels: 4, height: 8, width: 8, kernel: (3, 3), padding: (1, 1))
        let conv = Conv2d(geometry: g, generator: &generator)
        let g2 = ConvolutionGeometry(inChannels: 4, outChannels: 4, height: 8, width: 8, kernel: (3, 3), padding: (1, 1))
        // A batch norm with no convolution before it, and a residual block whose body ends with ReLU.
        let lone: [Layer] = [conv, ReLU(), BatchNorm2d(featureCount: 4), ReLU()]
        XCTAssertEqual(ConvolutionalStage.make(layers: lone[...], inputShape: [1, 8, 8])?.consumed, 2)
        let block: [Layer] = [conv, Residual(body: Sequential([Conv2d(geometry: g2, generator: &generator), ReLU()])), ReLU()]
        XCTAssertEqual(ConvolutionalStage.make(layers: block[...], inputShape: [1, 8, 8])?.consumed, 1)
        // A convolution built for another input size, and a first layer that is no convolution or pooling.
        XCTAssertNil(ConvolutionalStage.make(layers: [conv][...], inputShape: [1, 9, 9]))
        XCTAssertNil(ConvolutionalStage.make(layers: [Linear(inputCount: 64, outputCount: 2, generator: &generator) as Layer][...],
                                             inputShape: [1, 8, 8]))
        // The prefix's output is what the taken layers give, [n, 4, 8, 8].
        let stage = try XCTUnwrap(ConvolutionalStage.make(layers: lone[...], inputShape: [1, 8, 8])).stage
        XCTAssertEqual(stage.run(Tensor(shape: [3, 64], repeating: 0.5), threads: 2).shape, [3, 4, 8, 8])
    }
}
