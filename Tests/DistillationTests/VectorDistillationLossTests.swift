import CLossKernels
import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

/// The float vector path of the distillation loss (from 256 classes on) against the Double loop, on every vector
/// path this CPU has; and its exp and log against libm.
final class VectorDistillationLossTests: XCTestCase {
    override func tearDown() { distill_loss_limit_path(2) }

    func paths() -> [Int32] { Array(0...distill_loss_path()) }

    /// The Double reference at any class count: the Double loop, reached through a copy of the inputs below the vector
    /// threshold is not possible, so it is recomputed here from the definition.
    func reference(_ z: Tensor, _ p: [[Double]], _ labels: [Int], _ c: DistillationLossConfiguration) -> (total: Double, kl: Double, grad: [Double]) {
        let rows = z.shape[0], cols = z.shape[1], t = Double(c.temperature)
        let s = c.scaleSoftBySquaredTemperature ? t * t : 1
        var total = 0.0, kl = 0.0
        var grad = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let row = (0..<cols).map { Double(z[flat: r * cols + $0]) }
            let m = row.max()!
            let e1 = row.map { Foundation.exp($0 - m) }, eT = row.map { Foundation.exp(($0 - m) / t) }
            let s1 = e1.reduce(0, +), sT = eT.reduce(0, +)
            total += Double(c.hardWeight) * (Foundation.log(s1) - (row[labels[r]] - m))
            for j in 0..<cols where p[r][j] > 0 {
                let logq = (row[j] - m) / t - Foundation.log(sT)
                total -= Double(c.softWeight) * s * p[r][j] * logq
                kl += p[r][j] * (Foundation.log(p[r][j]) - logq)
            }
            for j in 0..<cols {
                var g = Double(c.softWeight) * s / t * (eT[j] / sT - p[r][j]) + Double(c.hardWeight) * e1[j] / s1
                if j == labels[r] { g -= Double(c.hardWeight) }
                grad[r * cols + j] = g / Double(rows)
            }
        }
        return (total / Double(rows), kl / Double(rows), grad)
    }

    func check(classes: Int, rows: Int, teacherLogits: Bool, seed: UInt64) {
        var g = RandomGenerator(seed: seed)
        let z = Tensor.normal([rows, classes], standardDeviation: 3, generator: &g)
        let zt = Tensor.normal([rows, classes], standardDeviation: 4, generator: &g)
        let labels = (0..<rows).map { _ in g.next(below: classes) }
        let config = DistillationLossConfiguration(temperature: 4, hardWeight: 0.3, softWeight: 0.7)
        var p = [[Double]](repeating: [], count: rows)
        for r in 0..<rows {
            let row = (0..<classes).map { Double(zt[flat: r * classes + $0]) / 4 }
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            let sum = e.reduce(0, +)
            p[r] = e.map { $0 / sum }
        }
        // The probabilities as the teacher's tensor (float), and the reference from those same floats.
        let probabilities = Tensor(shape: [rows, classes], scalars: p.flatMap { $0.map(Float.init) })
        let pAsFloats = (0..<rows).map { r in (0..<classes).map { Double(probabilities[flat: r * classes + $0]) } }
        let expected = reference(z, teacherLogits ? p : pAsFloats, labels, config)
        for path in paths() {
            distill_loss_limit_path(path)
            let v = Variable(z, requiresGrad: true)
            let (loss, parts) = teacherLogits
                ? distillationLoss(studentLogits: v, teacherLogits: zt, labels: labels, configuration: config)
                : distillationLoss(studentLogits: v, teacherProbabilities: probabilities, labels: labels, configuration: config)
            loss.backward()
            let grad = v.grad!
            XCTAssertEqual(parts.total, expected.total, accuracy: 1e-4 * max(1, abs(expected.total)), "path \(path) C \(classes)")
            XCTAssertEqual(parts.softKL, expected.kl, accuracy: 1e-4 * max(1e-3, abs(expected.kl)) + 1e-6, "path \(path) C \(classes)")
            let scale = expected.grad.map(abs).max()!
            var worst = 0.0
            for i in 0..<grad.count { worst = max(worst, abs(Double(grad[flat: i]) - expected.grad[i])) }
            XCTAssertLessThan(worst, 1e-5 * scale + 1e-9, "path \(path) C \(classes): largest gradient difference \(worst) of \(scale)")
        }
    }

    func testManyClassesAgainstTheDoubleReference() {
        check(classes: 1000, rows: 6, teacherLogits: false, seed: 1)
        check(classes: 1000, rows: 6, teacherLogits: true, seed: 2)
        check(classes: 32_003, rows: 2, teacherLogits: false, seed: 3)
        check(classes: 32_003, rows: 2, teacherLogits: true, seed: 4)
    }

    /// Below the threshold nothing changes: the Double loop's bits.
    func testSmallClassCountsKeepTheDoubleLoop() {
        XCTAssertEqual(distillationLossVectorMinimumClasses, 256)
    }

    /// Denormals are compared exactly, so the calling thread must not flush them (another test, or the engine's
    /// compute threads, may have left FTZ/DAZ on this thread); the mode is restored afterwards.
    func testExpAndLogAgainstLibm() {
        let setting = ComputeThreads.flushDenormals, threadFlushed = ComputeThreads.callingThreadFlushesDenormals
        ComputeThreads.flushDenormals = false
        ComputeThreads.applyDenormalMode()
        defer {
            ComputeThreads.flushDenormals = threadFlushed
            ComputeThreads.applyDenormalMode()
            ComputeThreads.flushDenormals = setting
        }
        XCTAssertFalse(ComputeThreads.callingThreadFlushesDenormals)
        var g = RandomGenerator(seed: 9)
        let xs = (0..<4099).map { _ in (g.uniform() - 0.5) * 170 } + [0, -87, 88, 1e-8, -1e-8]
        let ps = (0..<4099).map { _ in Foundation.exp((g.uniform() - 1) * 80) } + [1, 1e-38, 0.5, 3.4e38]
        for path in paths() {
            distill_loss_limit_path(path)
            var e = [Float](repeating: 0, count: xs.count), l = [Float](repeating: 0, count: ps.count)
            distill_loss_exp(xs, &e, xs.count)
            distill_loss_log(ps, &l, ps.count)
            for (x, y) in zip(xs, e) {
                let exact = Foundation.exp(Double(x))
                XCTAssertLessThanOrEqual(abs(Double(y) - exact), 2.5 * Double(Float(exact).ulp) + 1e-45, "exp(\(x)) path \(path)")
            }
            for (p, y) in zip(ps, l) {
                let exact = Foundation.log(Double(p))
                XCTAssertLessThanOrEqual(abs(Double(y) - exact), 2.5 * Double(Float(exact).ulp) + 1e-7, "log(\(p)) path \(path)")
            }
        }
    }
}
