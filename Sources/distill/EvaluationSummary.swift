import Foundation
import Distillation
import Datasets
import NeuralNet

/// Test-set figures of a model for `evaluate`.
struct EvaluationSummary {
    let errors: Int
    let count: Int
    init(model: Sequential, test: LabeledDataset) {
        errors = Trainer.errors(model: model, dataset: test)
        count = test.count
    }
    func print(json: Bool, extra: [String: Any]) throws {
        let accuracy = 1 - Double(errors) / Double(max(count, 1))
        if json {
            var object: [String: Any] = ["test_errors": errors, "test_count": count, "test_accuracy": accuracy,
                                         "peak_rss_bytes": ResourceUsage.peakResidentBytes]
            for (k, v) in extra { object[k] = v }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            Swift.print(String(decoding: data, as: UTF8.self))
        } else {
            Swift.print("test errors: \(errors)/\(count) (accuracy \(String(format: "%.2f", accuracy * 100))%)")
        }
    }
}
