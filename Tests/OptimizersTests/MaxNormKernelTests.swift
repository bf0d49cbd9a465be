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

    /// The SIMD momentum update equals its one-element-at-a-time reference bit for bit in all four cases (first step
    /// or not, Nesterov or not), with weight decay and dampening, on lengths with every tail (0-7 past a multiple of 8)
    /// and on pointers not aligned to a vector.
    func testSIMDMomentumUpdateMatchesReferenceBitForBit() {
        var rng = RandomGenerator(seed: 23)
        for count in [0, 1, 7, 8, 9, 15, 16, 17, 31, 100, 1003] {
            let p0 = Tensor.normal([count + 1], generator: &rng).scalars
            let b0 = Tensor.normal([count + 1], generator: &rng).scalars
            let g0 = Tensor.normal([count + 1], generator: &rng).scalars
            for (first, nesterov) in [(true, false), (true, true), (false, false), (false, true)] {
                for (wd, damp) in [(Float(0), Float(1)), (Float(0.01), Float(0.75))] {
                    var pf = p0, bf = b0, pr = p0, br = b0
                    g0.withUnsafeBufferPointer { g in
                        pf.withUnsafeMutableBufferPointer { p in
                            bf.withUnsafeMutableBufferPointer { b in   // offset 1: not 32-byte aligned
                                SGD.momentumUpdate(p.baseAddress! + 1, b.baseAddress! + 1, g.baseAddress! + 1,
                                                   count: count, lr: 0.05, mu: 0.9, damp: damp, wd: wd,
                                                   first: first, nesterov: nesterov)
                            }
                        }
                        pr.withUnsafeMutableBufferPointer { p in
                            br.withUnsafeMutableBufferPointer { b in
                                SGD.momentumReference(p.baseAddress! + 1, b.baseAddress! + 1, g.baseAddress! + 1,
                                                      count: count, lr: 0.05, mu: 0.9, damp: damp, wd: wd,
                                                      first: first, nesterov: nesterov)
                            }
                        }
                    }
                    let context = "count \(count) first \(first) nesterov \(nesterov) wd \(wd)"
                    XCTAssertEqual(pf.map(\.bitPattern), pr.map(\.bitPattern), context)
                    XCTAssertEqual(bf.map(\.bitPattern), br.map(\.bitPattern), context)
                    XCTAssertEqual(pf[0].bitPattern, p0[0].bitPattern, "element before the range untouched")
                    if count > 0 { XCTAssertNotEqual(pf[1], p0[1], context) }
                }
            }
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
