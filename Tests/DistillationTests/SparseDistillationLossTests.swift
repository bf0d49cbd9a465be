import CLossKernels
import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest

/// The loss from top-k (sparse) teacher targets: the soft targets' construction, the kernel against a Double
/// reference from the definition (values and gradients, every missing-mass mode, every vector path), the dense loss
/// it must equal, and the top-k store feeding it.
final class SparseDistillationLossTests: XCTestCase {
    override func tearDown() { distill_loss_limit_path(2) }

    struct Row { var logits: [Double]; var kept: [Int] }

    /// Random full teacher rows, their top-k classes, and the sparse targets built from the kept logits + row LSE.
    func makeTargets(rows: Int, classes: Int, k: Int, temperature: Float, mode: MissingMass, seed: UInt64)
        -> (targets: SparseSoftTargets, full: [Row]) {
        var g = RandomGenerator(seed: seed)
        var logits = [Float](), ids = [Int32](), lse = [Float](), full = [Row]()
        for _ in 0..<rows {
            let row = (0..<classes).map { _ in Double(Float(g.normal() * 3)) }
            let order = (0..<classes).sorted { row[$0] > row[$1] }
            let kept = Array(order.prefix(k))
            for j in kept { logits.append(Float(row[j])); ids.append(Int32(j)) }
            let m = row.max()!
            lse.append(Float(m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))))
            full.append(Row(logits: row, kept: kept))
        }
        let targets = SparseSoftTargets(logits: logits, classes: ids, logSumExp: lse, rowCount: rows, classCount: classes,
                                        temperature: temperature, missingMass: mode)
        return (targets, full)
    }

    /// The loss from its definition in Double: the teacher as dense weights w (renormalize/uniform) or the kept
    /// probabilities plus the bucket term -P log Q (bucket). Returns the total, soft KL and gradient.
    func reference(_ z: Tensor, _ t: SparseSoftTargets, _ labels: [Int], _ c: DistillationLossConfiguration)
        -> (total: Double, kl: Double, grad: [Double]) {
        let rows = z.shape[0], cols = z.shape[1], temp = Double(c.temperature), k = t.keptCount
        let s = c.scaleSoftBySquaredTemperature ? temp * temp : 1
        let hw = Double(c.hardWeight), sw = Double(c.softWeight)
        var total = 0.0, kl = 0.0
        var grad = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let row = (0..<cols).map { Double(z[flat: r * cols + $0]) }
            let m = row.max()!
            let e1 = row.map { Foundation.exp($0 - m) }, eT = row.map { Foundation.exp(($0 - m) / temp) }
            let s1 = e1.reduce(0, +), sT = eT.reduce(0, +)
            let qT = eT.map { $0 / sT }
            total += hw * (Foundation.log(s1) - (row[labels[r]] - m))
            var w = [Double](repeating: t.missingMass == .uniform ? Double(t.tailPerClass[r]) : 0, count: cols)
            var kept = [Bool](repeating: false, count: cols)
            for i in 0..<k {
                let j = Int(t.classes[r * k + i])
                w[j] = Double(t.probabilities[r * k + i]); kept[j] = true
            }
            var soft = 0.0, entropy = 0.0
            for j in 0..<cols where w[j] > 0 { soft -= w[j] * Foundation.log(qT[j]); entropy -= w[j] * Foundation.log(w[j]) }
            var a = 0.0
            if t.missingMass == .bucket {
                let mass = Double(t.tailMass[r])
                let q = (0..<cols).filter { !kept[$0] }.map { qT[$0] }.reduce(0, +)
                if mass > 0 { soft -= mass * Foundation.log(q); entropy -= mass * Foundation.log(mass); a = mass / q }
            }
            total += sw * s * soft
            kl += soft - entropy
            for j in 0..<cols {
                let target = kept[j] ? w[j] : (w[j] + a * qT[j])
                var gj = sw * s / temp * (qT[j] - target) + hw * e1[j] / s1
                if j == labels[r] { gj -= hw }
                grad[r * cols + j] = gj / Double(rows)
            }
        }
        return (total / Double(rows), kl / Double(rows), grad)
    }

    func check(classes: Int, rows: Int, k: Int, mode: MissingMass, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var g = RandomGenerator(seed: seed + 100)
        let z = Tensor.normal([rows, classes], standardDeviation: 3, generator: &g)
        let labels = (0..<rows).map { _ in g.next(below: classes) }
        let config = DistillationLossConfiguration(temperature: 4, hardWeight: 0.3, softWeight: 0.7, missingMass: mode)
        let (targets, _) = makeTargets(rows: rows, classes: classes, k: k, temperature: 4, mode: mode, seed: seed)
        let expected = reference(z, targets, labels, config)
        for path in Array(0...distill_loss_path()) {
            distill_loss_limit_path(path)
            let v = Variable(z, requiresGrad: true)
            let (loss, parts) = distillationLoss(studentLogits: v, sparseTargets: targets, labels: labels, configuration: config)
            loss.backward()
            let context = "C=\(classes) k=\(k) \(mode.rawValue) path \(path)"
            XCTAssertEqual(parts.total, expected.total, accuracy: 2e-5 * Swift.max(1, abs(expected.total)), context, file: file, line: line)
            XCTAssertEqual(Double(loss.value.scalar), expected.total, accuracy: 2e-5 * Swift.max(1, abs(expected.total)), context, file: file, line: line)
            XCTAssertEqual(parts.softKL, expected.kl, accuracy: 2e-5 * Swift.max(1, abs(expected.kl)), context, file: file, line: line)
            let grad = v.grad!.scalars.map(Double.init)
            let scale = expected.grad.map(abs).max()!
            for i in 0..<grad.count where abs(grad[i] - expected.grad[i]) > 2e-5 * scale + 1e-9 {
                XCTFail("\(context): grad[\(i)] = \(grad[i]), expected \(expected.grad[i])", file: file, line: line)
                break
            }
        }
    }

    func testEveryModeMatchesTheDefinition() {
        for mode in MissingMass.allCases {
            check(classes: 7, rows: 5, k: 3, mode: mode, seed: 1)
            check(classes: 300, rows: 6, k: 20, mode: mode, seed: 2)
            check(classes: 1_000, rows: 4, k: 1, mode: mode, seed: 3)
            check(classes: 1_001, rows: 3, k: 64, mode: mode, seed: 4)
        }
    }

    /// The reference's own gradient is the derivative of its value (central differences in Double), in bucket mode,
    /// the one mode whose soft term is not a plain cross-entropy.
    func testReferenceGradientIsTheDerivativeOfItsValue() {
        let rows = 2, classes = 9
        let (targets, _) = makeTargets(rows: rows, classes: classes, k: 3, temperature: 3, mode: .bucket, seed: 5)
        var g = RandomGenerator(seed: 6)
        let z = Tensor.normal([rows, classes], standardDeviation: 2, generator: &g)
        let labels = [1, 7]
        let config = DistillationLossConfiguration(temperature: 3, hardWeight: 0.4, softWeight: 0.6, missingMass: .bucket)
        let analytic = reference(z, targets, labels, config).grad
        let h: Float = 1e-2
        for i in 0..<(rows * classes) {
            var up = z, down = z
            up[flat: i] += h; down[flat: i] -= h
            let numeric = (reference(up, targets, labels, config).total - reference(down, targets, labels, config).total)
                / Double(up[flat: i] - down[flat: i])
            XCTAssertEqual(analytic[i], numeric, accuracy: 1e-4, "element \(i)")
        }
    }

    /// renormalize and uniform are the dense loss with the teacher the targets stand for (the Double loop, C < 256).
    func testEqualsTheDenseLossWithTheDensifiedTeacher() {
        for mode in [MissingMass.renormalize, .uniform] {
            let rows = 4, classes = 10
            let (targets, _) = makeTargets(rows: rows, classes: classes, k: 3, temperature: 5, mode: mode, seed: 7)
            var g = RandomGenerator(seed: 8)
            let z = Tensor.normal([rows, classes], standardDeviation: 2, generator: &g)
            let labels = [0, 3, 9, 2]
            let config = DistillationLossConfiguration(temperature: 5, hardWeight: 0.5, softWeight: 0.5, missingMass: mode)
            let dense = Tensor(shape: [rows, classes], scalars: targets.densified()!)
            let a = Variable(z, requiresGrad: true), b = Variable(z, requiresGrad: true)
            let (la, pa) = distillationLoss(studentLogits: a, sparseTargets: targets, labels: labels, configuration: config)
            let (lb, pb) = distillationLoss(studentLogits: b, teacherProbabilities: dense, labels: labels, configuration: config)
            la.backward(); lb.backward()
            XCTAssertEqual(pa.total, pb.total, accuracy: 1e-5, mode.rawValue)
            XCTAssertEqual(pa.softKL, pb.softKL, accuracy: 1e-5, mode.rawValue)
            assertClose(a.grad!.scalars.map(Double.init), b.grad!.scalars.map(Double.init), absolute: 1e-6)
        }
        XCTAssertNil(makeTargets(rows: 1, classes: 5, k: 2, temperature: 1, mode: .bucket, seed: 9).targets.densified())
    }

    /// At T = 1 a store with the row LSE knows the teacher's kept probabilities exactly; the tail is what is left.
    /// With k = C there is no tail and every mode is the full teacher.
    func testTargetsAtTemperatureOneAndWithNothingMissing() {
        let (targets, full) = makeTargets(rows: 3, classes: 12, k: 4, temperature: 1, mode: .uniform, seed: 10)
        for r in 0..<3 {
            let m = full[r].logits.max()!
            let sum = full[r].logits.map { Foundation.exp($0 - m) }.reduce(0, +)
            var keptMass = 0.0
            for (i, j) in full[r].kept.enumerated() {
                let p = Foundation.exp(full[r].logits[j] - m) / sum
                XCTAssertEqual(Double(targets.probabilities[r * 4 + i]), p, accuracy: 1e-5)
                keptMass += p
            }
            XCTAssertEqual(Double(targets.tailMass[r]), 1 - keptMass, accuracy: 1e-5)
            XCTAssertEqual(Double(targets.tailPerClass[r]) * 8, 1 - keptMass, accuracy: 1e-5)
        }
        // Renormalize: the kept probabilities sum to 1 and nothing is left.
        let renormalized = makeTargets(rows: 3, classes: 12, k: 4, temperature: 3, mode: .renormalize, seed: 10).targets
        for r in 0..<3 {
            XCTAssertEqual(renormalized.probabilities[(r * 4)..<(r * 4 + 4)].reduce(0, +), 1, accuracy: 1e-6)
            XCTAssertEqual(renormalized.tailMass[r], 0)
        }
        // k = C: every mode gives softmax(z_t / T).
        for mode in MissingMass.allCases {
            let (all, rows) = makeTargets(rows: 2, classes: 6, k: 6, temperature: 2.5, mode: mode, seed: 11)
            for r in 0..<2 {
                let scaled = rows[r].logits.map { $0 / 2.5 }
                let m = scaled.max()!
                let sum = scaled.map { Foundation.exp($0 - m) }.reduce(0, +)
                for (i, j) in rows[r].kept.enumerated() {
                    XCTAssertEqual(Double(all.probabilities[r * 6 + i]), Foundation.exp(scaled[j] - m) / sum, accuracy: 1e-6, mode.rawValue)
                }
                XCTAssertEqual(all.tailMass[r], 0, mode.rawValue)
            }
        }
    }

    /// A larger T moves mass to the tail: under the even spread, C - k small logits gain on the k large ones.
    func testTailGrowsWithTemperature() {
        let low = makeTargets(rows: 4, classes: 500, k: 10, temperature: 1, mode: .bucket, seed: 12).targets
        let high = makeTargets(rows: 4, classes: 500, k: 10, temperature: 8, mode: .bucket, seed: 12).targets
        for r in 0..<4 { XCTAssertGreaterThan(high.tailMass[r], low.tailMass[r]) }
    }

    /// The top-k store records each row's LSE and feeds the loss sparsely; the objective takes the sparse path
    /// and gives exactly the loss from the store's sparse targets.
    func testTopKStoreFeedsTheSparseLoss() throws {
        let n = 29, classes = 6
        let dataset = try oneHotDataset(count: n, classes: classes, seed: 1)
        let teacher = ModelTeacher(model: oneLayerModel(inputs: n, classes: classes, seed: 2))
        let url = try temporaryDirectory(self).appendingPathComponent("topk.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, topK: 2, overwrite: false)
        let store = try TeacherLogitStore.read(url: url)
        XCTAssertTrue(store.recordsMissingMass)
        let indices = [5, 0, 28, 13]
        let online = try teacher.logits(batch: dataset.inputs(rows: 0..<n), indices: Array(0..<n))
        // The uniform targets at T = 1 give the kept classes their true teacher probabilities.
        let sparse = try XCTUnwrap(store.sparseSoftTargets(indices: indices, temperature: 1, missingMass: .uniform))
        for (r, e) in indices.enumerated() {
            let row = (0..<classes).map { Double(online[flat: e * classes + $0]) }
            let m = row.max()!, sum = row.map { Foundation.exp($0 - m) }.reduce(0, +)
            for i in 0..<2 {
                let j = Int(sparse.classes[r * 2 + i])
                XCTAssertEqual(Double(sparse.probabilities[r * 2 + i]), Foundation.exp(row[j] - m) / sum, accuracy: 1e-5)
            }
        }
        for mode in MissingMass.allCases {
            let config = DistillationLossConfiguration(temperature: 3, hardWeight: 0.5, softWeight: 0.5, missingMass: mode)
            let objective = try DistillationObjective(teacher: StoredLogitsTeacher(store: store), loss: config)
            let batch = Batch(indices: indices, inputs: dataset.inputs(rows: 0..<n).gatherRows(indices), labels: indices.map { dataset.labels[$0] })
            var g = RandomGenerator(seed: 3)
            let z = Tensor.normal([4, classes], standardDeviation: 1, generator: &g)
            let (loss, parts) = try objective.loss(studentLogits: Variable(z), batch: batch, inputs: batch.inputs)
            let targets = try XCTUnwrap(store.sparseSoftTargets(indices: indices, temperature: 3, missingMass: mode))
            let (direct, _) = distillationLoss(studentLogits: Variable(z), sparseTargets: targets, labels: batch.labels, configuration: config)
            XCTAssertEqual(loss.value.scalar, direct.value.scalar, mode.rawValue)
            XCTAssertNotNil(parts["soft_kl"])
        }
        XCTAssertTrue(objectiveIdentity(store, .bucket).contains("missing=bucket"))
        XCTAssertFalse(objectiveIdentity(store, .renormalize).contains("missing="))
    }

    func objectiveIdentity(_ store: TeacherLogitStore, _ mode: MissingMass) -> String {
        let config = DistillationLossConfiguration(temperature: 3, hardWeight: 0.5, softWeight: 0.5, missingMass: mode)
        return (try? DistillationObjective(teacher: StoredLogitsTeacher(store: store), loss: config).identity) ?? ""
    }

    /// A top-k store written without the row LSE supports renormalize only, and says so naming the file and flag field.
    func testStoreWithoutTheRowLogSumExpRefusesTailModes() throws {
        let n = 9, classes = 4
        let dataset = try oneHotDataset(count: n, classes: classes, seed: 1)
        let teacher = ModelTeacher(model: oneLayerModel(inputs: n, classes: classes, seed: 2))
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("topk.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, topK: 2, overwrite: false)
        // Rewrite the file without its topk_logsumexp tensor, as stores written before it existed are.
        let file = try SafeTensors.read(url: url)
        var metadata = file.metadata
        metadata["tensors"] = "topk_values,topk_indices"
        let old = dir.appendingPathComponent("old.safetensors")
        try SafeTensors.write([.tensor("topk_values", try file.tensor(named: "topk_values"), dtype: .f32),
                               .integers("topk_indices", try file.integers(named: "topk_indices"), shape: [n, 2], dtype: .i64)],
                              metadata: metadata, to: old, overwrite: false)
        let store = try TeacherLogitStore.read(url: old)
        XCTAssertFalse(store.recordsMissingMass)
        XCTAssertNotNil(try store.sparseSoftTargets(indices: [0, 1], temperature: 2, missingMass: .renormalize))
        let message = thrownMessage { _ = try store.sparseSoftTargets(indices: [0], temperature: 2, missingMass: .uniform) }
        XCTAssertTrue(message?.contains("loss.missingMass") == true && message!.contains(old.path), message ?? "accepted")
        // A recorded LSE below the row's largest kept logit is a corrupt store.
        let bad = dir.appendingPathComponent("bad.safetensors")
        metadata["tensors"] = "topk_values,topk_indices,topk_logsumexp"
        try SafeTensors.write([.tensor("topk_values", try file.tensor(named: "topk_values"), dtype: .f32),
                               .integers("topk_indices", try file.integers(named: "topk_indices"), shape: [n, 2], dtype: .i64),
                               .tensor("topk_logsumexp", Tensor(shape: [n], repeating: -100), dtype: .f32)],
                              metadata: metadata, to: bad, overwrite: false)
        let m2 = thrownMessage { _ = try TeacherLogitStore.read(url: bad) }
        XCTAssertTrue(m2?.contains("topk_logsumexp row 0") == true && m2!.contains(bad.path), m2 ?? "accepted")
    }
}
