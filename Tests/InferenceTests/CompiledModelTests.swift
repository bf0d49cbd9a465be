import XCTest
import Foundation
import TensorCore
import NeuralNet
import Inference

/// The inference library's compiled model against the model's own evaluation-mode pass (`Sequential.infer`).
final class CompiledModelTests: XCTestCase {
    func images(_ n: Int, shape: [Int], density: Float, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(shape: [n] + shape) { out in
            for i in 0..<out.count { out[i] = rng.uniform() < density ? rng.uniform() : 0 }
        }
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
        let scale = max(1e-6, b.scalars.map(abs).max() ?? 0)
        let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst / scale, 1e-5, message, file: file, line: line)
    }

    func withThreads(_ n: Int, _ body: () throws -> Void) rethrows {
        let saved = ComputeThreads.count
        ComputeThreads.set(n)
        defer { ComputeThreads.set(saved) }
        try body()
    }

    /// A 784-800-800-10 MLP with dropout (a flatten first): image batches of 1 to 1,000 (the sparse path), dense
    /// inputs (oneDNN's or the BLAS sgemm) and hidden layers of either kind, on 1 and 2 threads, given as images or
    /// as rows.
    func testMLPMatchesSequentialInfer() {
        var g = RandomGenerator(seed: 1)
        let model = Sequential([Flatten(), Linear(inputCount: 784, outputCount: 800, generator: &g), ReLU(), Dropout(probability: 0.5),
                                Linear(inputCount: 800, outputCount: 800, generator: &g), ReLU(),
                                Linear(inputCount: 800, outputCount: 10, generator: &g)])
        let compiled = CompiledModel(model)
        XCTAssertEqual(compiled.summary.count, 1, compiled.summary.joined(separator: "; "))
        for threads in [1, 2] {
            withThreads(threads) {
                for (n, density) in [(1, Float(0.2)), (3, 1), (9, 0.2), (300, 0.2), (1000, 0.2), (64, 1)] {
                    let x = images(n, shape: [1, 28, 28], density: density, seed: UInt64(n))
                    assertClose(compiled.infer(x), model.infer(x), "n \(n) density \(density) threads \(threads)")
                    assertClose(compiled.infer(x.reshaped([n, 784])), model.infer(x), "rows, n \(n)")
                }
            }
        }
    }

    /// CPUs without AVX-512 (the vector path capped): pixels and single rows take the four-chain sparse product,
    /// dense batches oneDNN's sgemm or BLAS; compiled under the cap, as such a CPU would.
    func testMLPWithoutAVX512MatchesSequentialInfer() {
        for path in SparseKernels.availablePaths where path < 2 {
            SparseKernels.withPathLimit(path) {
                XCTAssertFalse(SparseKernels.PackedWeights.groupsRows)
                var g = RandomGenerator(seed: 6)
                let model = Sequential([Linear(inputCount: 784, outputCount: 300, generator: &g), ReLU(),
                                        Linear(inputCount: 300, outputCount: 10, generator: &g)])
                let compiled = CompiledModel(model)
                for threads in [1, 2] {
                    withThreads(threads) {
                        for (n, density) in [(1, Float(0.2)), (2, 1), (64, 0.2), (64, 1), (300, 0.6)] {
                            let x = images(n, shape: [784], density: density, seed: UInt64(n))
                            assertClose(compiled.infer(x), model.infer(x), "path \(path) n \(n) density \(density) threads \(threads)")
                        }
                    }
                }
            }
        }
    }

    /// LeNet-5 and ResNet-8: the convolutions as one oneDNN stage where oneDNN loads (else as layers), the
    /// classifier as a dense stage; images given as images or as rows.
    func testConvolutionalModelsMatchSequentialInfer() throws {
        for name in ["lenet5", "resnet8"] {
            var g = RandomGenerator(seed: 2)
            let model = try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10).build(generator: &g)
            let compiled = CompiledModel(model)
            let summary = compiled.summary.joined(separator: "; ")
            XCTAssertEqual(compiled.summary.count, 2, summary)
            XCTAssertTrue(compiled.summary.last?.hasPrefix("linear ") ?? false, summary)
            if Convolution.loadOneDNN() { XCTAssertTrue(compiled.summary[0].contains("oneDNN"), summary) }
            for threads in [1, 2] {
                withThreads(threads) {
                    for n in [1, 7, 130] {
                        let x = images(n, shape: [1, 28, 28], density: 0.2, seed: UInt64(n))
                        assertClose(compiled.infer(x), model.infer(x), "\(name) n \(n) threads \(threads)")
                        assertClose(compiled.infer(x.reshaped([n, 784])), model.infer(x), "\(name) rows n \(n)")
                    }
                }
            }
        }
    }

    /// Stage boundaries: linear layers around a batch norm (run as a layer) and after a nested sequential block, in
    /// one model.
    func testMixedModelMatchesSequentialInfer() {
        var g = RandomGenerator(seed: 8)
        let norm = BatchNorm1d(featureCount: 30)
        norm.runningMean.value = Tensor.normal([30], generator: &g)
        norm.runningVariance.value = Tensor.uniform([30], low: 0.5, high: 2, generator: &g)
        let model = Sequential([Linear(inputCount: 20, outputCount: 30, generator: &g), norm, ReLU(), Dropout(probability: 0.3),
                                Linear(inputCount: 30, outputCount: 40, generator: &g), ReLU(),
                                Sequential([Linear(inputCount: 40, outputCount: 40, generator: &g), ReLU()]),
                                Linear(inputCount: 40, outputCount: 7, generator: &g)])
        let compiled = CompiledModel(model)
        XCTAssertEqual(compiled.summary.count, 5, compiled.summary.joined(separator: "; "))
        for threads in [1, 2] {
            withThreads(threads) {
                for n in [1, 9, 200] {
                    let x = images(n, shape: [20], density: 0.7, seed: UInt64(n))
                    assertClose(compiled.infer(x), model.infer(x), "n \(n) threads \(threads)")
                }
            }
        }
    }

    /// Compiling copies the weights: training the model further does not change the compiled model's answers.
    func testCompiledModelKeepsItsWeights() {
        var g = RandomGenerator(seed: 3)
        let linear = Linear(inputCount: 20, outputCount: 5, generator: &g)
        let model = Sequential([linear, ReLU(), Linear(inputCount: 5, outputCount: 3, generator: &g)])
        let compiled = CompiledModel(model)
        let x = images(4, shape: [20], density: 1, seed: 5)
        let before = compiled.infer(x)
        assertClose(before, model.infer(x), "before")
        linear.weight.value = linear.weight.value + 1
        XCTAssertEqual(compiled.infer(x).scalars, before.scalars)
        XCTAssertNotEqual(model.infer(x).scalars, before.scalars)
    }

    /// An empty batch gives an empty answer; callers on several threads at once get what each would alone.
    func testEmptyBatchesAndConcurrentCallers() throws {
        for name in ["lenet5", "resnet8"] {
            var g = RandomGenerator(seed: 4)
            let model = try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10).build(generator: &g)
            let compiled = CompiledModel(model)
            XCTAssertEqual(compiled.infer(Tensor(shape: [0, 1, 28, 28])).shape, [0, 10], name)
            let inputs = (0..<6).map { images(1 + 37 * $0, shape: [1, 28, 28], density: 0.2, seed: UInt64(40 + $0)) }
            let alone = inputs.map { compiled.infer($0).scalars }
            var together = [[Float]](repeating: [], count: inputs.count)
            let lock = NSLock()
            DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
                let y = compiled.infer(inputs[i]).scalars
                lock.lock(); together[i] = y; lock.unlock()
            }
            XCTAssertEqual(together, alone, name)
        }
        var g = RandomGenerator(seed: 5)
        let mlp = CompiledModel(Sequential([Linear(inputCount: 784, outputCount: 100, generator: &g), ReLU(),
                                            Linear(inputCount: 100, outputCount: 10, generator: &g)]))
        XCTAssertEqual(mlp.infer(Tensor(shape: [0, 784])).shape, [0, 10])
    }
}
