import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

final class EvaluationMetricsTests: XCTestCase {
    /// Logits = log of the given probabilities (so softmax gives them back).
    private func logits(_ rows: [[Double]]) -> Tensor {
        Tensor(shape: [rows.count, rows[0].count], scalars: rows.flatMap { $0.map { Float(Foundation.log($0)) } })
    }

    func testClosedFormExample() throws {
        let probabilities: [[Double]] = [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.08, 0.1, 0.82], [0.48, 0.32, 0.2]]
        let labels = [0, 2, 2, 1]  // predictions 0, 1, 2, 0: examples 1 and 3 wrong
        let teacher: [[Double]] = [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]]  // predicts 0, 2, 2, 0
        let m = try EvaluationMetrics.compute(logits: logits(probabilities), labels: labels, teacherLogits: logits(teacher))
        XCTAssertEqual(m.count, 4)
        XCTAssertEqual(m.testErrors, 2)
        XCTAssertEqual(m.testAccuracy, 0.5, accuracy: 1e-12)
        XCTAssertEqual(m.perClassErrors, [0, 1, 1])
        XCTAssertEqual(m.confusionMatrix, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
        XCTAssertEqual(m.teacherAgreement!, 0.75, accuracy: 1e-12)
        var kl = 0.0
        for (p, q) in zip(teacher, probabilities) { for j in 0..<3 { kl += p[j] * Foundation.log(p[j] / q[j]) } }
        XCTAssertEqual(m.klTeacherStudent!, kl / 4, accuracy: 1e-6)
        XCTAssertEqual(m.loss, -(Foundation.log(0.7) + Foundation.log(0.3) + Foundation.log(0.82) + Foundation.log(0.32)) / 4, accuracy: 1e-6)
        // Bins of width 1/15: 0.7 -> (0.667, 0.733], correct; 0.5 and 0.48 -> (0.467, 0.533], both wrong;
        // 0.82 -> (0.8, 0.867], correct. ECE = (|1 - 0.7| + 2 |0 - 0.49| + |1 - 0.82|) / 4.
        XCTAssertEqual(m.expectedCalibrationError, (0.3 + 2 * 0.49 + 0.18) / 4, accuracy: 1e-6)

        let same = try EvaluationMetrics.compute(logits: logits(probabilities), labels: labels, teacherLogits: logits(probabilities))
        XCTAssertEqual(same.klTeacherStudent!, 0, accuracy: 1e-7)
        XCTAssertEqual(same.teacherAgreement, 1)
        let none = try EvaluationMetrics.compute(logits: logits(probabilities), labels: labels, teacherLogits: nil)
        XCTAssertNil(none.teacherAgreement)
        XCTAssertNil(none.klTeacherStudent)
    }

    func testSnakeCaseKeysAndBadInput() throws {
        let m = try EvaluationMetrics.compute(logits: Tensor(shape: [2, 2], scalars: [1, 0, 0, 1]), labels: [0, 0], teacherLogits: nil)
        let json = String(decoding: try JSONEncoder().encode(m), as: UTF8.self)
        for key in ["test_errors", "test_accuracy", "test_count", "per_class_errors", "confusion_matrix", "expected_calibration_error", "test_loss"] {
            XCTAssertTrue(json.contains("\"\(key)\""), "\(key) missing in \(json)")
        }
        XCTAssertEqual(try JSONDecoder().decode(EvaluationMetrics.self, from: Data(json.utf8)), m)
        XCTAssertNotNil(thrownMessage { _ = try EvaluationMetrics.compute(logits: Tensor.zeros([2, 2]), labels: [0, 2], teacherLogits: nil) })
        XCTAssertNotNil(thrownMessage { _ = try EvaluationMetrics.compute(logits: Tensor.zeros([2, 2]), labels: [0], teacherLogits: nil) })
        XCTAssertNotNil(thrownMessage { _ = try EvaluationMetrics.compute(logits: Tensor(shape: [1, 2], scalars: [.nan, 0]), labels: [0], teacherLogits: nil) })
        XCTAssertNotNil(thrownMessage { _ = try EvaluationMetrics.compute(logits: Tensor.zeros([2, 2]), labels: [0, 1], teacherLogits: Tensor.zeros([2, 3])) })
    }

    func testEvaluateMatchesComputeAcrossBatches() throws {
        let dataset = try oneHotDataset(count: 23, classes: 4, seed: 5)
        let model = oneLayerModel(inputs: 23, classes: 4, seed: 6)
        let teacher = ModelTeacher(model: oneLayerModel(inputs: 23, classes: 4, seed: 7))
        let batched = try EvaluationMetrics.evaluate(model: model, dataset: dataset, teacher: teacher, batchSize: 5)
        let direct = try EvaluationMetrics.compute(logits: model.infer(dataset.inputs), labels: dataset.labels,
                                                   teacherLogits: teacher.logits(batch: dataset.inputs, indices: Array(0..<23)))
        XCTAssertEqual(batched, direct)
        XCTAssertEqual(batched.confusionMatrix.flatMap { $0 }.reduce(0, +), 23)
    }
}
