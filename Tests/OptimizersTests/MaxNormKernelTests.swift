import XCTest
import TensorCore
import NeuralNet
import Optimizers

final class MaxNormKernelTests: XCTestCase {
    func testVectorisedMaxNormMatchesReference() {
        for (rows, cols) in [(3, 5), (17, 33), (1200, 1200)] {
            ComputeThreads.set(2)
            var g = RandomGenerator(seed: 21)
            let w = Tensor.normal([rows, cols], standardDeviation: 0.2, generator: &g)
            let fast = Variable(w), naive = Variable(w)
            Constraints.applyMaxNorm(fast, maximumNorm: 3.5)
            Constraints.naiveApplyMaxNorm(naive, maximumNorm: 3.5)
            for (a, b) in zip(fast.value.scalars, naive.value.scalars) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b))) }
        }
    }

    func testThreadedSGDMatchesSingleThread() {
        var g = RandomGenerator(seed: 22)
        let p0 = Tensor.normal([600, 600], generator: &g), grad = Tensor.normal([600, 600], generator: &g)
        var results: [[Float]] = []
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            let p = Variable(p0, requiresGrad: true)
            let sgd = SGD(learningRate: 0.05, momentum: 0.9)
            for _ in 0..<3 { p.grad = grad; sgd.step([p]) }
            results.append(p.value.scalars)
        }
        XCTAssertEqual(results[0], results[1])
    }
}
