import Experiments
import Datasets
import Distillation
import Foundation
import TensorCore
import XCTest

/// The statistics and table helpers of the experiments, and the seeded train/validation split.
final class ExperimentSupportTests: XCTestCase {
    func testMeanAndDeviation() {
        let empty = meanAndDeviation([])
        XCTAssertTrue(empty.mean.isNaN && empty.deviation.isNaN)
        let one = meanAndDeviation([3])
        XCTAssertEqual(one.mean, 3)
        XCTAssertEqual(one.deviation, 0)
        // Sample (n - 1) standard deviation: sum of squares 5 over 3.
        let four = meanAndDeviation([1, 2, 3, 4])
        XCTAssertEqual(four.mean, 2.5, accuracy: 1e-12)
        XCTAssertEqual(four.deviation, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        let constant = meanAndDeviation([7, 7, 7])
        XCTAssertEqual(constant.mean, 7)
        XCTAssertEqual(constant.deviation, 0)
    }

    func testFormatStatistic() {
        XCTAssertEqual(formatStatistic([5]), "5.0")
        XCTAssertEqual(formatStatistic([74, 76]), "75.0 ± 1.4")
        XCTAssertEqual(formatStatistic([1, 2, 3, 4], decimals: 2), "2.50 ± 1.29")
        XCTAssertEqual(formatStatistic([2], decimals: 0), "2")
        XCTAssertEqual(formatStatistic([]), "nan")
    }

    func testFormatTable() {
        let table = formatTable(["model", "paper", "ours"], [["teacher", "67", "70.0 ± 1.0"], ["student, labels only", "146", "150"]])
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.count, 4, table)
        XCTAssertEqual(lines[0], "model                 paper  ours      ")
        XCTAssertEqual(lines[1], "--------------------  -----  ----------")
        XCTAssertEqual(lines[2], "teacher               67     70.0 ± 1.0")
        XCTAssertEqual(lines[3], "student, labels only  146    150       ")
        // Every line has the same width in characters (the ± counts as one).
        XCTAssertEqual(Set(lines.map(\.count)).count, 1, table)
        // A row with fewer cells than the header is padded as far as it goes; no rows: header and rule only.
        XCTAssertEqual(formatTable(["a", "bb"], [["xyz"]]).split(separator: "\n").last, "xyz")
        XCTAssertEqual(formatTable(["a", "bb"], []), "a  bb\n-  --")
    }

    func dataset(_ n: Int) throws -> LabeledDataset {
        let images = Tensor(shape: [n, 3]) { out in for i in 0..<out.count { out[i] = Float(i / 3) } }
        return try LabeledDataset(inputs: images, labels: (0..<n).map { $0 % 4 }, classCount: 4)
    }

    func testSplitIsDisjointCoveringAndSeeded() throws {
        let data = try dataset(50)
        var configuration = TrainingConfiguration()
        configuration.data.validationCount = 12
        configuration.seed = 7
        let (train, validation, trainIndices) = try TrainingJob.split(data, configuration: configuration)
        let indices = try XCTUnwrap(trainIndices)
        let validationSet = try XCTUnwrap(validation)
        XCTAssertEqual(train.count, 38)
        XCTAssertEqual(validationSet.count, 12)
        XCTAssertEqual(indices, indices.sorted(), "the training part keeps the original order")
        XCTAssertEqual(Set(indices).count, 38)
        // Image row i holds the value i: recover the validation indices from the images.
        let validationIndices = (0..<validationSet.count).map { Int(validationSet.inputs[flat: $0 * 3]) }
        XCTAssertEqual(validationIndices, validationIndices.sorted())
        XCTAssertTrue(Set(indices).isDisjoint(with: validationIndices))
        XCTAssertEqual(Set(indices).union(validationIndices), Set(0..<50))
        // The subset rows are the mapped dataset rows.
        for (position, index) in indices.enumerated() {
            XCTAssertEqual(train.labels[position], data.labels[index])
            XCTAssertEqual(train.inputs[flat: position * 3], Float(index))
        }
        // Seeded: the same seed gives the same split, another seed another one.
        XCTAssertEqual(try TrainingJob.split(data, configuration: configuration).trainIndices, indices)
        configuration.seed = 8
        XCTAssertNotEqual(try TrainingJob.split(data, configuration: configuration).trainIndices, indices)
        // No validation: the dataset itself and no map.
        configuration.data.validationCount = 0
        let whole = try TrainingJob.split(data, configuration: configuration)
        XCTAssertNil(whole.validation)
        XCTAssertNil(whole.trainIndices)
        XCTAssertEqual(whole.train.count, 50)
        // Too large a validation set is an error naming the field, not a trap.
        for v in [50, 51] {
            configuration.data.validationCount = v
            let message = thrownMessage { _ = try TrainingJob.split(data, configuration: configuration) }
            XCTAssertEqual(message, "data.validationCount must be smaller than the training set (50), got \(v)")
        }
    }
}
