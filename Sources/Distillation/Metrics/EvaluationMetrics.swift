import Datasets
import Foundation
import NeuralNet
import TensorCore

/// Test-set metrics of a classifier, optionally compared with a teacher. Encoded with snake_case keys.
public struct EvaluationMetrics: Codable, Equatable, Sendable {
    /// Misclassified examples (prediction = first argmax of the logits).
    public var testErrors: Int
    /// 1 - testErrors / count.
    public var testAccuracy: Double
    /// Number of examples evaluated.
    public var count: Int
    /// Misclassified examples per true class.
    public var perClassErrors: [Int]
    /// `confusionMatrix[true class][predicted class]` counts.
    public var confusionMatrix: [[Int]]
    /// Fraction of examples where student and teacher predict the same class (nil without a teacher).
    public var teacherAgreement: Double?
    /// mean_b KL(p_teacher || p_student) at T = 1, in nats (nil without a teacher).
    public var klTeacherStudent: Double?
    /// Expected calibration error (Guo et al. 2017): 15 equal-width confidence bins (lo, hi] over (0, 1];
    /// ECE = sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|, confidence = max softmax probability.
    public var expectedCalibrationError: Double
    /// Mean cross-entropy of the labels under softmax(logits), nats.
    public var loss: Double
    /// The calibration bins behind the ECE (a reliability diagram): examples, accuracy and mean confidence per bin.
    public var reliability: [CalibrationBin] = []

    /// One confidence bin (lower, upper] of the reliability diagram.
    public struct CalibrationBin: Codable, Equatable, Sendable {
        public var lower: Double
        public var upper: Double
        public var count: Int
        public var accuracy: Double
        public var confidence: Double
    }

    enum CodingKeys: String, CodingKey {
        case testErrors = "test_errors", testAccuracy = "test_accuracy", count = "test_count"
        case perClassErrors = "per_class_errors", confusionMatrix = "confusion_matrix"
        case teacherAgreement = "teacher_agreement", klTeacherStudent = "kl_teacher_student"
        case expectedCalibrationError = "expected_calibration_error", loss = "test_loss", reliability
    }

    public init(testErrors: Int, testAccuracy: Double, count: Int, perClassErrors: [Int], confusionMatrix: [[Int]],
                teacherAgreement: Double?, klTeacherStudent: Double?, expectedCalibrationError: Double, loss: Double,
                reliability: [CalibrationBin] = []) {
        self.testErrors = testErrors
        self.testAccuracy = testAccuracy
        self.count = count
        self.perClassErrors = perClassErrors
        self.confusionMatrix = confusionMatrix
        self.teacherAgreement = teacherAgreement
        self.klTeacherStudent = klTeacherStudent
        self.expectedCalibrationError = expectedCalibrationError
        self.loss = loss
        self.reliability = reliability
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        testErrors = try c.decode(Int.self, forKey: .testErrors)
        testAccuracy = try c.decode(Double.self, forKey: .testAccuracy)
        count = try c.decode(Int.self, forKey: .count)
        perClassErrors = try c.decode([Int].self, forKey: .perClassErrors)
        confusionMatrix = try c.decode([[Int]].self, forKey: .confusionMatrix)
        teacherAgreement = try c.decodeIfPresent(Double.self, forKey: .teacherAgreement)
        klTeacherStudent = try c.decodeIfPresent(Double.self, forKey: .klTeacherStudent)
        expectedCalibrationError = try c.decode(Double.self, forKey: .expectedCalibrationError)
        loss = try c.decode(Double.self, forKey: .loss)
        reliability = try c.decodeIfPresent([CalibrationBin].self, forKey: .reliability) ?? []
    }

    /// Number of calibration bins.
    public static let calibrationBins = 15

    /// Evaluates `model` (eval mode, `infer`, no graph) on every example of `dataset`, `batchSize` at a time, and
    /// compares with `teacher`'s T = 1 logits when given.
    /// - Throws: ``TrainingError`` when the model's or teacher's outputs do not fit the dataset.
    public static func evaluate(model: Sequential, dataset: LabeledDataset, teacher: Teacher? = nil,
                                batchSize: Int = 1000) throws -> EvaluationMetrics {
        let n = dataset.count, c = dataset.classCount
        let step = Swift.max(1, batchSize)
        var student = Tensor(shape: [n, c], repeating: 0)
        var teacherAll: Tensor? = teacher == nil ? nil : Tensor(shape: [n, c], repeating: 0)
        var start = 0
        while start < n {
            let end = Swift.min(start + step, n)
            let images = dataset.inputs(rows: start..<end)
            try checkModelInput(model, images, what: "evaluate")
            try copy(model.infer(images), into: &student, at: start, what: "model")
            if let teacher {
                try copy(teacher.logits(batch: images, indices: Array(start..<end)), into: &teacherAll!, at: start, what: "teacher")
            }
            start = end
        }
        return try compute(logits: student, labels: dataset.labels, teacherLogits: teacherAll)
    }

    private static func copy(_ rows: Tensor, into all: inout Tensor, at start: Int, what: String) throws {
        let c = all.shape[1]
        guard rows.rank == 2, rows.shape[1] == c, start + rows.shape[0] <= all.shape[0] else {
            throw TrainingError("evaluate: \(what) output shape \(rows.shape), expected [batch, \(c)]")
        }
        all.withUnsafeMutableBufferPointer { out in
            rows.withUnsafeBufferPointer { (out.baseAddress! + start * c).update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    /// Metrics from student `logits` `[N, C]` (raw scores), `labels` (N classes in `0..<C`) and optional teacher
    /// logits `[N, C]` (raw T = 1 scores; -infinity allowed for classes a top-k teacher leaves out).
    /// - Throws: ``TrainingError`` for mismatched shapes or labels out of range.
    public static func compute(logits: Tensor, labels: [Int], teacherLogits: Tensor?) throws -> EvaluationMetrics {
        guard logits.rank == 2, logits.shape[0] == labels.count, logits.shape[1] > 0 else {
            throw TrainingError("metrics: logits of shape \(logits.shape) do not match \(labels.count) labels")
        }
        let n = labels.count, c = logits.shape[1]
        if let bad = labels.first(where: { $0 < 0 || $0 >= c }) {
            throw TrainingError("metrics: label \(bad) out of range 0..<\(c)")
        }
        guard logits.isFinite else { throw TrainingError("metrics: student logits hold NaN or infinite values") }
        if let t = teacherLogits {
            guard t.shape == logits.shape else {
                throw TrainingError("metrics: teacher logits \(t.shape) do not match student logits \(logits.shape)")
            }
            let ok = t.withUnsafeBufferPointer { b in !b.contains { $0.isNaN || $0 == .infinity } }
            guard ok else { throw TrainingError("metrics: teacher logits hold NaN or +infinity") }
        }
        let logQ = Softmax.logSoftmax(logits)
        let predictions = logits.argmax(axis: 1)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: c), count: c)
        var perClass = [Int](repeating: 0, count: c)
        var errors = 0, lossSum = 0.0
        var binCount = [Int](repeating: 0, count: calibrationBins)
        var binCorrect = [Int](repeating: 0, count: calibrationBins)
        var binConfidence = [Double](repeating: 0, count: calibrationBins)
        logQ.withUnsafeBufferPointer { lq in
            for r in 0..<n {
                let y = labels[r], p = predictions[r]
                confusion[y][p] += 1
                if p != y { errors += 1; perClass[y] += 1 }
                lossSum -= Double(lq[r * c + y])
                let confidence = Foundation.exp(Double(lq[r * c + p]))
                let bin = Swift.min(calibrationBins - 1, Swift.max(0, Int((confidence * Double(calibrationBins)).rounded(.up)) - 1))
                binCount[bin] += 1
                binConfidence[bin] += confidence
                if p == y { binCorrect[bin] += 1 }
            }
        }
        var ece = 0.0
        for b in 0..<calibrationBins where binCount[b] > 0 {
            let size = Double(binCount[b])
            ece += size / Double(n) * abs(Double(binCorrect[b]) / size - binConfidence[b] / size)
        }
        var agreement: Double?, kl: Double?
        if let t = teacherLogits, n > 0 {
            let teacherPredictions = t.argmax(axis: 1)
            agreement = Double(zip(predictions, teacherPredictions).filter { $0 == $1 }.count) / Double(n)
            let logP = Softmax.logSoftmax(t)
            var sum = 0.0
            logP.withUnsafeBufferPointer { lp in
                logQ.withUnsafeBufferPointer { lq in
                    for i in 0..<(n * c) where lp[i] > -.infinity {
                        sum += Foundation.exp(Double(lp[i])) * (Double(lp[i]) - Double(lq[i]))
                    }
                }
            }
            kl = sum / Double(n)
        }
        let bins = (0..<calibrationBins).map { b in
            CalibrationBin(lower: Double(b) / Double(calibrationBins), upper: Double(b + 1) / Double(calibrationBins), count: binCount[b],
                           accuracy: binCount[b] == 0 ? 0 : Double(binCorrect[b]) / Double(binCount[b]),
                           confidence: binCount[b] == 0 ? 0 : binConfidence[b] / Double(binCount[b]))
        }
        return EvaluationMetrics(testErrors: errors, testAccuracy: n == 0 ? 0 : 1 - Double(errors) / Double(n), count: n,
                                 perClassErrors: perClass, confusionMatrix: confusion, teacherAgreement: agreement,
                                 klTeacherStudent: kl, expectedCalibrationError: ece, loss: n == 0 ? 0 : lossSum / Double(n),
                                 reliability: bins)
    }
}

/// Errors overall and on `classes`, on `dataset`.
public func errors(_ model: Sequential, on dataset: LabeledDataset, classes: Set<Int>) -> (all: Int, onClasses: Int, classCount: Int) {
    var all = 0, on = 0
    var start = 0
    while start < dataset.count {
        let end = Swift.min(start + 1000, dataset.count)
        let predictions = model.infer(dataset.inputs(rows: start..<end)).argmax(axis: 1)
        for (i, p) in predictions.enumerated() {
            let y = dataset.labels[start + i]
            if p != y { all += 1; if classes.contains(y) { on += 1 } }
        }
        start = end
    }
    return (all, on, dataset.labels.filter { classes.contains($0) }.count)
}
