import Foundation
import XCTest
import TensorCore
import NeuralNet
import Optimizers
import TensorIO

/// The committed PyTorch fixture (Scripts/make_optimizer_fixtures.py), found through the bundle or, failing that,
/// next to this file.
func optimizerFixture() throws -> SafeTensorsFile {
    if let url = Bundle.module.url(forResource: "Fixtures/optimizers", withExtension: "safetensors") {
        return try SafeTensors.read(url: url)
    }
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optimizers.safetensors")
    return try SafeTensors.read(url: url)
}

/// Max |a - b| / max(1, |b|) (relative for large values, absolute near zero).
func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "count \(a.count) vs \(b.count)")
    var worst: Float = 0
    for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(1, abs(y))) }
    return worst
}

final class OptimizerParityTests: XCTestCase {
    // `DISTILL_BLAS=mkl swift test --filter ...` runs these on MKL (`.ci/run` does when MKL is installed).
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() { _ = try? BLASLibrary.select(.openblas) }

    struct Case {
        var name: String, optimizer: String, lr: Float, momentum: Float, dampening: Float, nesterov: Bool
        var weightDecay: Float, beta1: Float, beta2: Float, eps: Float, amsgrad: Bool
        /// The gradient at step k (0-based) is gradDecay^k (g + 0.1 p).
        var gradDecay: Float
    }

    func cases(_ file: SafeTensorsFile) throws -> [Case] {
        let json = try XCTUnwrap(file.metadata["cases"])
        let array = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        func f(_ d: [String: Any], _ k: String) -> Float { Float((d[k] as? NSNumber)?.doubleValue ?? .nan) }
        return array.map { d in
            let betas = (d["betas"] as? [NSNumber])?.map { Float($0.doubleValue) } ?? [0.9, 0.999]
            return Case(name: d["name"] as! String, optimizer: d["optimizer"] as! String, lr: f(d, "lr"),
                        momentum: f(d, "momentum"), dampening: f(d, "dampening"),
                        nesterov: (d["nesterov"] as? Bool) ?? false, weightDecay: f(d, "weight_decay"),
                        beta1: betas[0], beta2: betas[1], eps: f(d, "eps"), amsgrad: (d["amsgrad"] as? Bool) ?? false,
                        gradDecay: Float((d["grad_decay"] as? NSNumber)?.doubleValue ?? 1))
        }
    }

    func makeOptimizer(_ c: Case) -> Optimizer {
        switch c.optimizer {
        case "sgd":
            return SGD(learningRate: c.lr, momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov,
                       weightDecay: c.weightDecay)
        case "adam":
            return Adam(learningRate: c.lr, beta1: c.beta1, beta2: c.beta2, epsilon: c.eps, weightDecay: c.weightDecay,
                        amsgrad: c.amsgrad)
        case "adamw":
            if c.name == "adamw_default" { return Adam.adamW(learningRate: c.lr) }  // PyTorch defaults
            return Adam.adamW(learningRate: c.lr, beta1: c.beta1, beta2: c.beta2, epsilon: c.eps,
                              weightDecay: c.weightDecay, amsgrad: c.amsgrad)
        default:
            fatalError("unknown optimizer \(c.optimizer)")
        }
    }

    /// Sets grad = scale (g + 0.1 p) (the fixture loss's gradient) on each parameter.
    func setGradients(_ parameters: [Variable], _ data: [Tensor], scale: Float = 1) {
        for (p, g) in zip(parameters, data) {
            p.grad = Tensor(shape: g.shape, scalars: zip(g.scalars, p.value.scalars).map { scale * ($0 + 0.1 * $1) })
        }
    }

    func testEveryOptimizerCaseMatchesPyTorch() throws {
        let file = try optimizerFixture()
        let all = try cases(file)
        XCTAssertEqual(all.count, 10)
        let steps = Int(file.metadata["steps"] ?? "6") ?? 6
        for c in all {
            let p0 = Variable(try file.tensor(named: "\(c.name).p0.init"), requiresGrad: true)
            let p1 = Variable(try file.tensor(named: "\(c.name).p1.init"), requiresGrad: true)
            let g = [try file.tensor(named: "\(c.name).g0"), try file.tensor(named: "\(c.name).g1")]
            let e0 = try file.tensor(named: "\(c.name).p0.steps").scalars
            let e1 = try file.tensor(named: "\(c.name).p1.steps").scalars
            XCTAssertEqual(e0.count, steps * 12)
            XCTAssertEqual(e1.count, steps * 4)
            let optimizer = makeOptimizer(c)
            var worst: Float = 0
            for k in 0..<steps {
                optimizer.zeroGradients([p0, p1])
                setGradients([p0, p1], g, scale: Float(Foundation.pow(Double(c.gradDecay), Double(k))))
                optimizer.step([p0, p1])
                let d0 = maxRelativeDifference(p0.value.scalars, Array(e0[(k * 12)..<((k + 1) * 12)]))
                let d1 = maxRelativeDifference(p1.value.scalars, Array(e1[(k * 4)..<((k + 1) * 4)]))
                worst = max(worst, d0, d1)
                XCTAssertLessThan(max(d0, d1), 1e-5, "\(c.name) step \(k + 1): max relative difference \(max(d0, d1))")
            }
            print("optimizer parity \(c.name): max relative difference over \(steps) steps = \(worst)")
            if c.amsgrad {
                // The case must exercise AMSGrad's maximum: somewhere the running max of v is above v itself (with a
                // constant gradient v only grows, max(vmax, v) is always v and a missing max would go unnoticed).
                let state = optimizer.stateTensors()
                var above = 0
                for index in 0..<2 {
                    let v = try XCTUnwrap(state["exp_avg_sq.\(index)"]).scalars
                    let vmax = try XCTUnwrap(state["max_exp_avg_sq.\(index)"]).scalars
                    XCTAssertEqual(v.count, vmax.count)
                    above += zip(vmax, v).filter { $0 > $1 }.count
                }
                XCTAssertGreaterThan(above, 0, "\(c.name): vmax == v everywhere after \(steps) steps; the case does not exercise AMSGrad")
            }
        }
        XCTAssertTrue(all.contains { $0.amsgrad && $0.gradDecay < 1 }, "no AMSGrad case with a falling gradient")
    }

    func testAdamWDefaultsArePyTorchs() {
        let w = Adam.adamW()
        XCTAssertEqual(w.learningRate, 1e-3)
        XCTAssertEqual(w.weightDecay, 0.01)
        XCTAssertTrue(w.decoupledWeightDecay)
        let a = Adam()
        XCTAssertEqual(a.weightDecay, 0)
        XCTAssertFalse(a.decoupledWeightDecay)
        XCTAssertEqual(a.beta1, 0.9)
        XCTAssertEqual(a.beta2, 0.999)
        XCTAssertEqual(a.epsilon, 1e-8)
    }

    func testSchedulesMatchPyTorch() throws {
        let file = try optimizerFixture()
        let schedules: [(String, LearningRateSchedule)] = [
            ("schedule.step", .step(stepSize: 3, gamma: 0.1)),
            ("schedule.cosine", .cosine(totalEpochs: 10, minimum: 0.001)),
            ("schedule.warmup_cosine", .warmup(epochs: 3, startFactor: 0.1, then: .cosine(totalEpochs: 7, minimum: 0))),
        ]
        for (name, schedule) in schedules {
            XCTAssertNil(schedule.validationError())
            let expected = try file.tensor(named: name).scalars
            XCTAssertEqual(expected.count, 10)
            let got = (0..<10).map { schedule.learningRate(epoch: $0, base: 0.1) }
            let d = maxRelativeDifference(got, expected)
            print("schedule parity \(name): max difference \(d)")
            for e in 0..<10 {
                XCTAssertEqual(got[e], expected[e], accuracy: 1e-6 * max(1, expected[e]) + 1e-7 * expected[e] * 10,
                               "\(name) epoch \(e)")
            }
        }
    }

    func testClipGradNormMatchesPyTorch() throws {
        let file = try optimizerFixture()
        let maxNorm = Float(try XCTUnwrap(file.metadata["clip_max_norm"]))!
        let g0 = try file.tensor(named: "clip.grads_in.0"), g1 = try file.tensor(named: "clip.grads_in.1")
        let p0 = Variable(Tensor.zeros(g0.shape), requiresGrad: true)
        let p1 = Variable(Tensor.zeros(g1.shape), requiresGrad: true)
        p0.grad = g0
        p1.grad = g1
        let total = Constraints.clipGradientNorm([p0, p1], maximumNorm: maxNorm)
        let expectedTotal = try file.tensor(named: "clip.total_norm").scalars[0]
        XCTAssertEqual(total, expectedTotal, accuracy: 1e-5 * expectedTotal)
        let d0 = maxRelativeDifference(p0.grad!.scalars, try file.tensor(named: "clip.grads_out.0").scalars)
        let d1 = maxRelativeDifference(p1.grad!.scalars, try file.tensor(named: "clip.grads_out.1").scalars)
        print("clip_grad_norm parity: total \(total) vs \(expectedTotal); max difference \(max(d0, d1))")
        XCTAssertLessThan(max(d0, d1), 1e-6)

        // Below the limit nothing changes; parameters without gradients are skipped.
        let q = Variable(Tensor([0.1, 0.2]), requiresGrad: true)
        q.grad = Tensor([0.1, 0.2])
        let r = Variable(Tensor([1]), requiresGrad: true)
        Constraints.clipGradientNorm([q, r], maximumNorm: 10)
        XCTAssertEqual(q.grad, Tensor([0.1, 0.2]))
        XCTAssertNil(r.grad)
    }

    func testMaxNormMatchesExactProjection() throws {
        let file = try optimizerFixture()
        let c = Float(try XCTUnwrap(file.metadata["maxnorm_c"]))!
        let w = Variable(try file.tensor(named: "maxnorm.w_in"), requiresGrad: true)
        Constraints.applyMaxNorm(w, maximumNorm: c)
        let exact = maxRelativeDifference(w.value.scalars, try file.tensor(named: "maxnorm.w_out_exact").scalars)
        let renorm = maxRelativeDifference(w.value.scalars, try file.tensor(named: "maxnorm.w_out").scalars)
        print("max-norm parity: vs exact \(exact), vs torch.renorm \(renorm)")
        XCTAssertLessThan(exact, 1e-6)
        XCTAssertLessThan(renorm, 1e-6)
        // Every row norm is now <= c (within float rounding).
        let v = w.value.scalars
        for r in 0..<5 {
            let norm = (0..<7).map { v[r * 7 + $0] * v[r * 7 + $0] }.reduce(0, +).squareRoot()
            XCTAssertLessThanOrEqual(norm, c * (1 + 1e-6), "row \(r)")
        }
    }

    /// Continuing after stateTensors() -> loadState() into a fresh optimizer gives the same parameters as continuing
    /// with the original one.
    func testOptimizerStateRoundTrip() throws {
        let makers: [(String, () -> Optimizer)] = [
            ("sgd momentum", { SGD(learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01) }),
            ("sgd nesterov", { SGD(learningRate: 0.1, momentum: 0.9, nesterov: true) }),
            ("adam", { Adam(learningRate: 0.01, weightDecay: 0.01) }),
            ("adam amsgrad", { Adam(learningRate: 0.01, amsgrad: true) }),
            ("adamw", { Adam.adamW(learningRate: 0.01, weightDecay: 0.1) }),
        ]
        for (name, make) in makers {
            var rng = RandomGenerator(seed: 7)
            let init0 = Tensor.normal([3, 4], generator: &rng), init1 = Tensor.normal([4], generator: &rng)
            let grads = [Tensor.normal([3, 4], generator: &rng), Tensor.normal([4], generator: &rng)]
            let a = [Variable(init0, requiresGrad: true), Variable(init1, requiresGrad: true)]
            let original = make()
            for _ in 0..<3 { setGradients(a, grads); original.step(a) }
            let state = original.stateTensors()
            // Through a safetensors file as a checkpoint would.
            let entries = state.sorted { $0.key < $1.key }.map { (name: $0.key, tensor: $0.value, dtype: DType.f32) }
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("optstate-\(UUID().uuidString).safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try SafeTensors.write(tensors: entries, to: url, overwrite: false)
            let file = try SafeTensors.read(url: url)
            var restoredState: [String: Tensor] = [:]
            for n in file.names { restoredState[n] = try file.tensor(named: n) }
            let restored = make()
            try restored.loadState(restoredState)
            let snapshot0 = a[0].value, snapshot1 = a[1].value
            let b = [Variable(snapshot0, requiresGrad: true), Variable(snapshot1, requiresGrad: true)]
            for _ in 0..<3 {
                setGradients(a, grads); original.step(a)
                setGradients(b, grads); restored.step(b)
            }
            XCTAssertEqual(a[0].value, b[0].value, name)
            XCTAssertEqual(a[1].value, b[1].value, name)
            // A fresh optimizer without the state ends elsewhere (so the comparison above is sensitive to the state).
            let fresh = make()
            let c = [Variable(snapshot0, requiresGrad: true), Variable(snapshot1, requiresGrad: true)]
            for _ in 0..<3 { setGradients(c, grads); fresh.step(c) }
            XCTAssertNotEqual(c[0].value, b[0].value, name)
        }
    }
}
