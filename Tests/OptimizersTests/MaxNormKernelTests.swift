import XCTest
import TensorCore
import NeuralNet
import Optimizers

final class MaxNormKernelTests: XCTestCase {
    private var savedThreads = 1
    override func setUp() { savedThreads = ComputeThreads.count }
    override func tearDown() { ComputeThreads.set(savedThreads) }

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

    /// The SIMD Adam update equals its one-element reference bit for bit: Adam and AdamW, with and without AMSGrad,
    /// lengths with every tail, pointers not aligned to a vector, moments that start nonzero.
    func testSIMDAdamUpdateMatchesReferenceBitForBit() {
        var rng = RandomGenerator(seed: 24)
        for count in [0, 1, 7, 8, 9, 17, 100, 1003] {
            let p0 = Tensor.normal([count + 1], generator: &rng).scalars
            let g0 = Tensor.normal([count + 1], generator: &rng).scalars
            let m0 = Tensor.normal([count + 1], standardDeviation: 0.1, generator: &rng).scalars
            let v0 = Tensor.normal([count + 1], standardDeviation: 0.1, generator: &rng).scalars.map { $0 * $0 }
            let x0 = Tensor.normal([count + 1], standardDeviation: 0.1, generator: &rng).scalars.map { $0 * $0 }
            for (decoupled, ams) in [(false, false), (false, true), (true, false), (true, true)] {
                let c = Adam.UpdateConstants(learningRate: 1e-3, weightDecay: 0.01, beta1: 0.9, beta2: 0.999,
                                             epsilon: 1e-8, stepSize: 1e-3 / 0.19, bc2Sqrt: 0.0447,
                                             decoupledWeightDecay: decoupled, amsgrad: ams)
                var results: [[[Float]]] = []
                for simd in [true, false] {
                    var p = p0, m = m0, v = v0, x = x0
                    g0.withUnsafeBufferPointer { g in
                        p.withUnsafeMutableBufferPointer { pb in
                            m.withUnsafeMutableBufferPointer { mb in
                                v.withUnsafeMutableBufferPointer { vb in
                                    x.withUnsafeMutableBufferPointer { xb in
                                        let args = (pb.baseAddress! + 1, mb.baseAddress! + 1, vb.baseAddress! + 1,
                                                    ams ? xb.baseAddress! + 1 : nil, g.baseAddress! + 1)
                                        if simd {
                                            Adam.update(args.0, m: args.1, v: args.2, vmax: args.3, g: args.4,
                                                        count: count, c)
                                        } else {
                                            Adam.updateReference(args.0, m: args.1, v: args.2, vmax: args.3,
                                                                 g: args.4, count: count, c)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    results.append([p, m, v, x])
                }
                for (fast, reference) in zip(results[0], results[1]) {
                    XCTAssertEqual(fast.map(\.bitPattern), reference.map(\.bitPattern),
                                   "count \(count) decoupled \(decoupled) amsgrad \(ams)")
                }
                XCTAssertEqual(results[0][0][0].bitPattern, p0[0].bitPattern, "element before the range untouched")
                if count > 0 { XCTAssertNotEqual(results[0][0][1], p0[1]) }
                if count > 0 && ams { XCTAssertNotEqual(results[0][3], x0, "AMSGrad's maximum moved") }
            }
        }
    }

    func testThreadedAdamMatchesSingleThread() {
        var g = RandomGenerator(seed: 25)
        let p0 = Tensor.normal([600, 600], generator: &g), grad = Tensor.normal([600, 600], generator: &g)
        for amsgrad in [false, true] {
            var results: [[Float]] = []
            for threads in [1, 2] {
                ComputeThreads.set(threads)
                let p = Variable(p0, requiresGrad: true)
                let adam = Adam.adamW(learningRate: 1e-3, amsgrad: amsgrad)
                for _ in 0..<3 { p.grad = grad; adam.step([p]) }
                results.append(p.value.scalars)
            }
            XCTAssertEqual(results[0], results[1], "amsgrad \(amsgrad)")
            XCTAssertNotEqual(results[0], p0.scalars)
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
