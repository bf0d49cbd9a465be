import Distillation
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest

/// Decoupled KD, attention transfer and the FitNets hint loss: parity with PyTorch 2.13
/// (Fixtures/feature_losses.safetensors, written by Scripts/make_feature_loss_fixtures.py), central-difference
/// gradient checks and edge cases.
final class FeatureLossTests: XCTestCase {
    // MARK: Fixture parity

    private func fixture() throws -> SafeTensorsFile {
        guard let url = Bundle.module.url(forResource: "feature_losses", withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw XCTSkip("Fixtures/feature_losses.safetensors missing (run Scripts/make_feature_loss_fixtures.py)")
        }
        return try SafeTensors.read(url: url)
    }

    /// An F64 tensor at full precision (`tensor(named:)` rounds to Float).
    private func doubles(_ file: SafeTensorsFile, _ name: String) throws -> [Double] {
        let info = try file.info(named: name)
        XCTAssertEqual(info.dtype, .f64, name)
        let raw = try file.rawBytes(named: name)
        return (0..<info.elementCount).map { i in
            Double(bitPattern: raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }.littleEndian)
        }
    }

    /// Relative difference, against max(|expected|, 1e-12).
    private func relative(_ actual: Double, _ expected: Double) -> Double {
        abs(actual - expected) / max(abs(expected), 1e-12)
    }

    /// max |actual - expected| / max |expected|.
    private func gradientError(_ actual: Tensor?, _ expected: [Double], _ label: String) -> Double {
        guard let actual else { XCTFail("\(label): no gradient"); return .infinity }
        XCTAssertEqual(actual.count, expected.count, label)
        let scale = expected.map(abs).max() ?? 0
        XCTAssertGreaterThan(scale, 0, label)
        return zip(actual.scalars, expected).map { abs(Double($0) - $1) }.max().map { $0 / scale } ?? .infinity
    }

    func testDecoupledKDMatchesPyTorch() throws {
        let file = try fixture()
        let z = try file.tensor(named: "dkd.student"), zt = try file.tensor(named: "dkd.teacher")
        let y = try file.integers(named: "dkd.labels")
        var maxValue = 0.0, maxGrad = 0.0
        for (tag, t, alpha, beta) in [("T4", Float(4), Float(1), Float(8)), ("T1", 1, 0.5, 2)] {
            let student = Variable(z, requiresGrad: true)
            let (loss, tckd, nckd) = decoupledKDLoss(studentLogits: student, teacherLogits: zt, labels: y,
                                                     alpha: alpha, beta: beta, temperature: t)
            loss.backward()
            let expectedLoss = try doubles(file, "dkd.\(tag).loss")[0]
            for (mine, name) in [(tckd, "tckd"), (nckd, "nckd"), (Double(alpha) * tckd + Double(beta) * nckd, "loss")] {
                let theirs = try doubles(file, "dkd.\(tag).\(name)")[0]
                let rel = relative(mine, theirs)
                maxValue = max(maxValue, rel)
                XCTAssertLessThan(rel, 1e-10, "dkd.\(tag).\(name): \(mine) vs torch \(theirs)")
            }
            // The Float total.
            XCTAssertLessThan(relative(Double(loss.value.scalar), expectedLoss), 1e-6, "dkd.\(tag) Float loss")
            let g = gradientError(student.grad, try doubles(file, "dkd.\(tag).grad"), "dkd.\(tag).grad")
            maxGrad = max(maxGrad, g)
            XCTAssertLessThan(g, 1e-6, "dkd.\(tag).grad")
        }
        print("DKD PyTorch parity: max relative value difference \(maxValue), max gradient difference / max |grad| \(maxGrad)")
    }

    /// A feature loss on the fixture's `<name>.student` and `<name>.teacher` against its `<name>.loss` and
    /// `<name>.grad` (PyTorch), both within `tolerance` (relative; the gradient relative to its largest element).
    private func checkParity(_ name: String, tolerance: Double, _ lossFunction: (Variable, Tensor) -> Variable) throws {
        let file = try fixture()
        let fs = try file.tensor(named: "\(name).student"), ft = try file.tensor(named: "\(name).teacher")
        let student = Variable(fs, requiresGrad: true)
        let loss = lossFunction(student, ft)
        loss.backward()
        let rel = relative(Double(loss.value.scalar), try doubles(file, "\(name).loss")[0])
        let g = gradientError(student.grad, try doubles(file, "\(name).grad"), "\(name).grad")
        XCTAssertLessThan(rel, tolerance, "\(name).loss")
        XCTAssertLessThan(g, tolerance, "\(name).grad")
        XCTAssertEqual(student.grad?.shape, fs.shape, "\(name).grad")
        print("\(name) PyTorch parity: relative value difference \(rel), gradient difference / max |grad| \(g)")
    }

    func testAttentionTransferMatchesPyTorch() throws {
        try checkParity("at", tolerance: 1e-6) { attentionTransferLoss(studentFeatures: $0, teacherFeatures: $1) }
    }

    func testHintLossMatchesPyTorch() throws {
        try checkParity("hint", tolerance: 1e-6) { hintLoss(studentFeatures: $0, teacherFeatures: $1) }
    }

    func testSimilarityPreservingLossMatchesPyTorch() throws {
        try checkParity("sp", tolerance: 1e-5) { similarityPreservingLoss(studentFeatures: $0, teacherFeatures: $1) }
    }

    // MARK: Gradient checks

    /// Central differences of the Double reference (`similarityReference`) against the backward pass, on features of
    /// several ranks and sizes, the teacher's of another size.
    func testSimilarityPreservingLossGradientMatchesCentralDifferences() {
        for (k, shapes) in [([4, 6], [4, 3]), ([3, 2, 3, 3], [3, 5, 2, 2]), ([6, 5], [6, 9])].enumerated() {
            let fs = awayFromZero(shapes.0, seed: UInt64(1000 + k)), ft = awayFromZero(shapes.1, seed: UInt64(1100 + k))
            let student = Variable(fs, requiresGrad: true)
            let loss = similarityPreservingLoss(studentFeatures: student, teacherFeatures: ft)
            loss.backward()
            let teacher = ft.scalars.map(Double.init)
            let f = { (x: [Double]) in similarityReference(x, teacher, rows: shapes.0[0]) }
            let x = fs.scalars.map(Double.init)
            XCTAssertEqual(Double(loss.value.scalar), f(x), accuracy: 1e-5 * f(x), "shapes \(shapes) value")
            XCTAssertGreaterThan(f(x), 0)
            let numeric = centralDifferences(x, f)
            let scale = numeric.map(abs).max() ?? 0
            assertClose(student.grad?.scalars.map(Double.init) ?? [], numeric, absolute: 1e-4 * scale, relative: 1e-3,
                        "shapes \(shapes)")
        }
    }

    /// One example: both 1x1 similarity matrices normalise to 1, so the loss and its gradient are 0. Features with
    /// the same similarities (the teacher's a scaled copy) give 0 too.
    func testSimilarityPreservingLossEdgeCases() {
        let one = Variable(awayFromZero([1, 4], seed: 1200), requiresGrad: true)
        let single = similarityPreservingLoss(studentFeatures: one, teacherFeatures: awayFromZero([1, 7], seed: 1201))
        single.backward()
        XCTAssertEqual(single.value.scalar, 0)
        XCTAssertEqual(one.grad?.scalars.map(abs).max(), 0)
        let fs = awayFromZero([3, 5], seed: 1202)
        let same = similarityPreservingLoss(studentFeatures: Variable(fs), teacherFeatures: fs.map { $0 * 3 })
        XCTAssertLessThan(same.value.scalar, 1e-12)
    }

    /// Central differences of the Double total alpha * tckd + beta * nckd (steps taken in Float, divided by the step
    /// actually taken), against the backward pass; values against `dkdReference`.
    func testDecoupledKDGradientMatchesCentralDifferences() {
        let settings: [(batch: Int, classes: Int, t: Float, alpha: Float, beta: Float)] = [
            (4, 5, 4, 1, 8), (3, 7, 1, 0.5, 2), (1, 4, 2, 1, 1), (5, 2, 3, 1, 8), (2, 6, 0.5, 2, 0.5), (3, 3, 10, 0, 1),
        ]
        for (k, s) in settings.enumerated() {
            let z = randomLogits(s.batch, s.classes, seed: UInt64(300 + k))
            let zt = randomLogits(s.batch, s.classes, scale: 3, seed: UInt64(400 + k))
            let y = randomLabels(s.batch, classes: s.classes, seed: UInt64(500 + k))
            func total(_ zz: Tensor) -> Double {
                let r = decoupledKDLoss(studentLogits: Variable(zz), teacherLogits: zt, labels: y, alpha: s.alpha,
                                        beta: s.beta, temperature: s.t)
                return Double(s.alpha) * r.tckd + Double(s.beta) * r.nckd
            }
            let student = Variable(z, requiresGrad: true)
            let (loss, tckd, nckd) = decoupledKDLoss(studentLogits: student, teacherLogits: zt, labels: y,
                                                     alpha: s.alpha, beta: s.beta, temperature: s.t)
            loss.backward()
            let reference = dkdReference(z, zt, y, temperature: Double(s.t))
            XCTAssertEqual(tckd, reference.tckd, accuracy: 1e-10 * max(1, reference.tckd), "setting \(k) tckd")
            XCTAssertEqual(nckd, reference.nckd, accuracy: 1e-10 * max(1, reference.nckd), "setting \(k) nckd")
            let analytic = student.grad?.scalars.map(Double.init) ?? []
            let numeric = numericalGradient(z, h: 1e-3, total)
            let scale = numeric.map(abs).max() ?? 0
            XCTAssertGreaterThan(scale, 0, "setting \(k)")
            assertClose(analytic, numeric, absolute: 1e-4 * scale, relative: 1e-4, "setting \(k)")
            // A softmax loss ignores a shift of a row's logits: each gradient row sums to 0.
            for r in 0..<s.batch {
                XCTAssertEqual(analytic[(r * s.classes)..<((r + 1) * s.classes)].reduce(0, +), 0, accuracy: 1e-6 * scale)
            }
        }
    }

    /// Central differences in Double of an independent Double implementation (`attentionReference`), against the
    /// backward pass of the Float inputs.
    func testAttentionTransferGradientMatchesCentralDifferences() {
        let settings: [(student: [Int], teacher: [Int], p: Float)] = [
            ([2, 3, 4, 4], [2, 5, 4, 4], 2), ([3, 2, 3, 2], [3, 2, 3, 2], 2), ([1, 4, 2, 3], [1, 1, 2, 3], 2),
            ([2, 3, 3, 3], [2, 4, 3, 3], 3), ([2, 2, 2, 2], [2, 3, 2, 2], 1.5), ([1, 2, 1, 1], [1, 3, 1, 1], 2),
        ]
        for (k, s) in settings.enumerated() {
            let fs = awayFromZero(s.student, seed: UInt64(600 + k)), ft = awayFromZero(s.teacher, seed: UInt64(700 + k))
            let student = Variable(fs, requiresGrad: true)
            let loss = attentionTransferLoss(studentFeatures: student, teacherFeatures: ft, p: s.p)
            loss.backward()
            let x = fs.scalars.map(Double.init), teacher = ft.scalars.map(Double.init)
            let f = { (xx: [Double]) in attentionReference(xx, s.student, teacher, s.teacher, p: Double(s.p)) }
            let value = f(x)
            XCTAssertEqual(Double(loss.value.scalar), value, accuracy: 1e-6 * max(value, 1e-6), "setting \(k) value")
            let numeric = centralDifferences(x, f)
            let scale = numeric.map(abs).max() ?? 0
            if s.student[2] * s.student[3] == 1 {
                // One position: both maps are 1 after normalisation; no loss, no gradient.
                XCTAssertEqual(value, 0, accuracy: 1e-15)
                XCTAssertEqual(Double(loss.value.scalar), 0, accuracy: 1e-15)
                XCTAssertEqual(student.grad?.scalars.map(abs).max() ?? 1, 0, accuracy: 1e-12)
                continue
            }
            XCTAssertGreaterThan(scale, 0, "setting \(k)")
            assertClose(student.grad?.scalars.map(Double.init) ?? [], numeric, absolute: 1e-5 * scale, relative: 1e-4,
                        "setting \(k)")
        }
    }

    func testHintLossGradientMatchesCentralDifferences() {
        for (k, shape) in [[3, 4], [2, 3, 2, 2], [1, 5], [7]].enumerated() {
            let u = awayFromZero(shape, seed: UInt64(800 + k)), v = awayFromZero(shape, seed: UInt64(900 + k))
            let student = Variable(u, requiresGrad: true)
            let loss = hintLoss(studentFeatures: student, teacherFeatures: v)
            loss.backward()
            let teacher = v.scalars.map(Double.init)
            let f = { (x: [Double]) in zip(x, teacher).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(x.count) }
            let x = u.scalars.map(Double.init)
            XCTAssertEqual(Double(loss.value.scalar), f(x), accuracy: 1e-6 * f(x), "shape \(shape) value")
            let numeric = centralDifferences(x, f)
            let scale = numeric.map(abs).max() ?? 0
            assertClose(student.grad?.scalars.map(Double.init) ?? [], numeric, absolute: 1e-6 * scale, relative: 1e-5,
                        "shape \(shape)")
        }
    }

    // MARK: Edge cases

    /// One non-target class: the non-target distributions are both the point mass, NCKD is 0, and the gradient is
    /// TCKD's alone, dL/dz_y = -dL/dz_other = alpha * T * (q_y - p_y) / B.
    func testDecoupledKDWithTwoClasses() {
        let z = randomLogits(4, 2, seed: 11), zt = randomLogits(4, 2, seed: 12)
        let y = [0, 1, 1, 0]
        let t = 2.0, alpha = 0.7
        let student = Variable(z, requiresGrad: true)
        let (loss, tckd, nckd) = decoupledKDLoss(studentLogits: student, teacherLogits: zt, labels: y, alpha: Float(alpha),
                                                 beta: 8, temperature: Float(t))
        loss.backward()
        XCTAssertEqual(nckd, 0)
        let q = softmaxRows(z, temperature: t), p = softmaxRows(zt, temperature: t)
        var kl = 0.0
        var expected = [Double](repeating: 0, count: 8)
        for b in 0..<4 {
            let qy = q[b][y[b]], py = p[b][y[b]]
            kl += py * Foundation.log(py / qy) + (1 - py) * Foundation.log((1 - py) / (1 - qy))
            expected[b * 2 + y[b]] = alpha * t * (qy - py) / 4
            expected[b * 2 + 1 - y[b]] = -alpha * t * (qy - py) / 4
        }
        XCTAssertEqual(tckd, t * t * kl / 4, accuracy: 1e-12)
        XCTAssertEqual(Double(loss.value.scalar), alpha * tckd, accuracy: 1e-6 * alpha * tckd)
        assertClose(student.grad?.scalars.map(Double.init) ?? [], expected, absolute: 1e-7, relative: 1e-5, "C = 2")
    }

    func testDecoupledKDBatchOfOneAndIdenticalLogits() {
        let z = randomLogits(1, 6, seed: 21), zt = randomLogits(1, 6, seed: 22)
        let reference = dkdReference(z, zt, [4], temperature: 4)
        let one = decoupledKDLoss(studentLogits: Variable(z), teacherLogits: zt, labels: [4], alpha: 1, beta: 8, temperature: 4)
        XCTAssertEqual(one.tckd, reference.tckd, accuracy: 1e-10 * max(1, reference.tckd))
        XCTAssertEqual(one.nckd, reference.nckd, accuracy: 1e-10 * max(1, reference.nckd))
        XCTAssertGreaterThan(one.tckd, 0)
        XCTAssertGreaterThan(one.nckd, 0)

        // The student equal to the teacher: no loss, no gradient.
        let student = Variable(zt, requiresGrad: true)
        let same = decoupledKDLoss(studentLogits: student, teacherLogits: zt, labels: [2], alpha: 1, beta: 8, temperature: 3)
        same.loss.backward()
        XCTAssertEqual(same.tckd, 0, accuracy: 1e-15)
        XCTAssertEqual(same.nckd, 0, accuracy: 1e-15)
        XCTAssertEqual(student.grad?.scalars.map(abs).max() ?? 1, 0, accuracy: 1e-12)
    }

    /// Logits far outside the Float exp range (q_y and 1 - q_y below 1e-300 at T = 1): values and gradients stay
    /// finite, and no NCKD gradient reaches the target class (alpha = 0), where the -1000 mask would leak.
    func testDecoupledKDExtremeLogits() {
        let z = Tensor(shape: [2, 4], scalars: [3000, -2000, 0, 1500, -4000, 10, 2500, -10])
        let zt = Tensor(shape: [2, 4], scalars: [-1000, 800, 0, 50, 3000, -3000, 20, 0])
        let student = Variable(z, requiresGrad: true)
        let (loss, tckd, nckd) = decoupledKDLoss(studentLogits: student, teacherLogits: zt, labels: [0, 0], alpha: 0,
                                                 beta: 1, temperature: 1)
        loss.backward()
        XCTAssertTrue(tckd.isFinite && nckd.isFinite && loss.value.scalar.isFinite, "\(tckd) \(nckd)")
        XCTAssertGreaterThan(tckd, 1000)
        let grad = student.grad?.scalars ?? []
        XCTAssertTrue(grad.allSatisfy { $0.isFinite })
        XCTAssertEqual(grad[0], 0)
        XCTAssertEqual(grad[4], 0)
        // Row 0 non-target, at T = 1: softmax over {-2000, 0, 1500} is (0, 0, 1) for the student, softmax over
        // {800, 0, 50} is (1, 0, 0) for the teacher; NCKD = 1500 - (-2000) and its gradient (q^ - p^) / B.
        assertClose(grad[1...3].map(Double.init), [-0.5, 0, 0.5], absolute: 1e-7, "row 0")
    }

    func testAttentionTransferEdgeCases() {
        // Batch of one, the student equal to the teacher: 0 loss and gradient.
        let f = awayFromZero([1, 3, 2, 2], seed: 31)
        let same = Variable(f, requiresGrad: true)
        let zero = attentionTransferLoss(studentFeatures: same, teacherFeatures: f)
        zero.backward()
        XCTAssertEqual(zero.value.scalar, 0)
        XCTAssertEqual(same.grad?.scalars.map(abs).max() ?? 1, 0, accuracy: 1e-9)

        // The map is normalised: scaling the student's features by k leaves the value and scales the gradient by 1/k.
        let fs = awayFromZero([2, 3, 3, 2], seed: 32), ft = awayFromZero([2, 4, 3, 2], seed: 33)
        let a = Variable(fs, requiresGrad: true), b = Variable(fs * 4, requiresGrad: true)
        let la = attentionTransferLoss(studentFeatures: a, teacherFeatures: ft)
        let lb = attentionTransferLoss(studentFeatures: b, teacherFeatures: ft)
        la.backward()
        lb.backward()
        XCTAssertEqual(la.value.scalar, lb.value.scalar, accuracy: 1e-6 * la.value.scalar)
        assertClose(((b.grad ?? Tensor.zeros([1])) * 4).scalars.map(Double.init), (a.grad?.scalars ?? []).map(Double.init),
                    absolute: 1e-9, relative: 1e-5, "scale")

        // An all-zero student map: Q = 0 (F.normalize's clamp), value mean Q_t^2 = 1 / (H W), finite gradient 0.
        let zeroStudent = Variable(Tensor.zeros([2, 3, 3, 2]), requiresGrad: true)
        let lz = attentionTransferLoss(studentFeatures: zeroStudent, teacherFeatures: ft)
        lz.backward()
        XCTAssertEqual(Double(lz.value.scalar), 1.0 / 6, accuracy: 1e-6)
        XCTAssertEqual(zeroStudent.grad?.scalars.map(abs).max(), 0)

        // The upstream gradient scales the result (the loss inside a larger graph).
        let c = Variable(fs, requiresGrad: true)
        (3 * attentionTransferLoss(studentFeatures: c, teacherFeatures: ft)).backward()
        assertClose((c.grad?.scalars ?? []).map(Double.init), (a.grad?.scalars ?? []).map { 3 * Double($0) },
                    absolute: 1e-9, relative: 1e-6, "upstream")
    }

    func testHintLossEdgeCases() {
        // Batch of one; the same value as the Variable-op composition mean((u - v)^2), and the same gradient.
        let u = awayFromZero([1, 8], seed: 41), v = awayFromZero([1, 8], seed: 42)
        let fused = Variable(u, requiresGrad: true), composed = Variable(u, requiresGrad: true)
        let lf = hintLoss(studentFeatures: fused, teacherFeatures: v)
        let d = composed - Variable(v)
        let lc = mean(d * d)
        lf.backward()
        lc.backward()
        XCTAssertEqual(lf.value.scalar, lc.value.scalar, accuracy: 1e-6 * lc.value.scalar)
        assertClose((fused.grad?.scalars ?? []).map(Double.init), (composed.grad?.scalars ?? []).map(Double.init),
                    absolute: 1e-7, relative: 1e-5, "composed")
        XCTAssertEqual(hintLoss(studentFeatures: Variable(v), teacherFeatures: v).value.scalar, 0)
    }

    func testConstantInputsRecordNothing() {
        let z = randomLogits(2, 3, seed: 51)
        XCTAssertFalse(decoupledKDLoss(studentLogits: Variable(z), teacherLogits: z, labels: [0, 1], alpha: 1, beta: 1,
                                       temperature: 2).loss.requiresGrad)
        let f = awayFromZero([1, 2, 2, 2], seed: 52)
        XCTAssertFalse(attentionTransferLoss(studentFeatures: Variable(f), teacherFeatures: f).requiresGrad)
        XCTAssertFalse(hintLoss(studentFeatures: Variable(f), teacherFeatures: f).requiresGrad)
    }
}

// MARK: Double references

/// Standard normal entries pushed at least 0.3 away from 0 (|x|^p is smooth there for any p).
private func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
    var g = RandomGenerator(seed: seed)
    return Tensor.normal(shape, generator: &g).map { $0 + ($0 >= 0 ? 0.3 : -0.3) }
}

/// Central differences in Double with a step relative to each element: h = 1e-6 * max(1, |x_i|).
private func centralDifferences(_ x: [Double], _ f: ([Double]) -> Double) -> [Double] {
    x.indices.map { i in
        let h = 1e-6 * max(1, abs(x[i]))
        var plus = x, minus = x
        plus[i] += h
        minus[i] -= h
        return (f(plus) - f(minus)) / (plus[i] - minus[i])
    }
}

/// DKD's two parts from their definitions (probabilities, not log-sum-exps), T^2-scaled batch means.
private func dkdReference(_ z: Tensor, _ zt: Tensor, _ labels: [Int], temperature t: Double) -> (tckd: Double, nckd: Double) {
    let q = softmaxRows(z, temperature: t), p = softmaxRows(zt, temperature: t)
    var tckd = 0.0, nckd = 0.0
    for (b, y) in labels.enumerated() {
        let qy = q[b][y], py = p[b][y]
        let qRest = q[b].indices.filter { $0 != y }.map { q[b][$0] }.reduce(0, +)
        let pRest = p[b].indices.filter { $0 != y }.map { p[b][$0] }.reduce(0, +)
        tckd += py * Foundation.log(py / qy) + pRest * Foundation.log(pRest / qRest)
        for j in q[b].indices where j != y {
            let qHat = q[b][j] / qRest, pHat = p[b][j] / pRest
            nckd += pHat * Foundation.log(pHat / qHat)
        }
    }
    let n = Double(labels.count)
    return (t * t * tckd / n, t * t * nckd / n)
}

/// mdistiller's single-stage AT loss in Double: F.normalize(mean_c |F_c|^p flattened), then the mean squared
/// difference.
private func attentionReference(_ fs: [Double], _ sShape: [Int], _ ft: [Double], _ tShape: [Int], p: Double) -> Double {
    func maps(_ f: [Double], _ shape: [Int]) -> [[Double]] {
        let c = shape[1], n = shape[2] * shape[3]
        return (0..<shape[0]).map { b in
            let a = (0..<n).map { k in (0..<c).map { Foundation.pow(abs(f[(b * c + $0) * n + k]), p) }.reduce(0, +) / Double(c) }
            let norm = max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
            return a.map { $0 / norm }
        }
    }
    let qs = maps(fs, sShape), qt = maps(ft, tShape)
    var sum = 0.0
    for (rs, rt) in zip(qs, qt) { for (x, y) in zip(rs, rt) { sum += (x - y) * (x - y) } }
    return sum / Double(qs.count * qs[0].count)
}

/// mdistiller's similarity_loss in Double: G = F F^T per side, rows L2-normalised, mean over B^2 of the squared
/// difference.
private func similarityReference(_ fs: [Double], _ ft: [Double], rows b: Int) -> Double {
    func normalized(_ f: [Double]) -> [Double] {
        let d = f.count / b
        var g = [Double](repeating: 0, count: b * b)
        for i in 0..<b { for j in 0..<b { g[i * b + j] = (0..<d).map { f[i * d + $0] * f[j * d + $0] }.reduce(0, +) } }
        for i in 0..<b {
            let norm = max((0..<b).map { g[i * b + $0] * g[i * b + $0] }.reduce(0, +).squareRoot(), 1e-12)
            for j in 0..<b { g[i * b + j] /= norm }
        }
        return g
    }
    let qs = normalized(fs), qt = normalized(ft)
    return zip(qs, qt).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(b * b)
}
