import Foundation
import TensorCore
import Datasets

/// Examples read from a file: inputs, class labels, and the names a person knows them by.
public struct TabularData: Sendable {
    /// How class names are numbered.
    public enum ClassOrder: String, Codable, Sendable, CaseIterable {
        /// Sorted (numerically when every name is a whole number).
        case sorted
        /// In order of first appearance in the file.
        case appearance
    }

    public var dataset: LabeledDataset
    /// Class names by index (nil when the labels were the class indices themselves).
    public var classNames: [String]?
    /// Feature names from a header (nil without one).
    public var featureNames: [String]?
    /// Where the data came from (a path), for messages and reports.
    public var source: String

    public init(dataset: LabeledDataset, classNames: [String]?, featureNames: [String]?, source: String) {
        self.dataset = dataset
        self.classNames = classNames
        self.featureNames = featureNames
        self.source = source
    }

    /// Float rows `[labels.count, featureCount]` (kept without a copy).
    init(values tensor: Tensor, labels: [Int], classNames: [String]?, featureNames: [String]?, source: String) throws {
        let classCount = classNames?.count ?? ((labels.max() ?? -1) + 1)
        guard classCount >= 2 else {
            throw DataError.format(file: source, expected: "at least two classes", found: "\(classCount)")
        }
        self.init(dataset: try LabeledDataset(inputs: tensor, labels: labels, classCount: classCount),
                  classNames: classNames, featureNames: featureNames, source: source)
    }

    /// A seeded, stratified split: from every class, `round(fraction * its count)` examples (at least one when the
    /// class has two or more) go to the second part. Both parts keep the file's order.
    public func split(testFraction fraction: Double, seed: UInt64) throws -> (train: TabularData, test: TabularData) {
        guard fraction > 0, fraction < 1 else {
            throw DataError.invalidArgument(context: "test split", expected: "a fraction in (0, 1)", found: "\(fraction)")
        }
        var generator = RandomGenerator(seed: seed ^ 0x7E57_5EED)
        var byClass = [[Int]](repeating: [], count: dataset.classCount)
        for (i, label) in dataset.labels.enumerated() { byClass[label].append(i) }
        var isTest = [Bool](repeating: false, count: dataset.count)
        for members in byClass where !members.isEmpty {
            var take = Int((fraction * Double(members.count)).rounded())
            if members.count >= 2 { take = Swift.min(Swift.max(take, 1), members.count - 1) } else { take = 0 }
            for position in generator.permutation(members.count).prefix(take) { isTest[members[position]] = true }
        }
        let test = (0..<dataset.count).filter { isTest[$0] }, train = (0..<dataset.count).filter { !isTest[$0] }
        guard !test.isEmpty, !train.isEmpty else {
            throw DataError.invalidArgument(context: "test split", expected: "examples on both sides of a \(fraction) split",
                                            found: "\(dataset.count) examples")
        }
        var a = self, b = self
        a.dataset = dataset.subset(indices: train)
        b.dataset = dataset.subset(indices: test)
        return (a, b)
    }
}

/// Per-feature standardisation `(x - mean) / std`, fitted on training examples only and stored with a model so that
/// evaluation and teacher logits see the inputs the model was trained on. A feature with zero spread keeps `std` 1.
public struct Standardization: Codable, Equatable, Sendable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// Mean and (population) standard deviation of every feature, accumulated in Double.
    public static func fit(_ dataset: LabeledDataset) -> Standardization {
        let n = dataset.count, f = dataset.featureCount
        var sum = [Double](repeating: 0, count: f), squares = [Double](repeating: 0, count: f)
        var start = 0
        while start < n {
            let end = Swift.min(start + 4096, n)
            dataset.inputs(rows: start..<end).withUnsafeBufferPointer { values in
                for r in 0..<(end - start) {
                    for j in 0..<f { let v = Double(values[r * f + j]); sum[j] += v; squares[j] += v * v }
                }
            }
            start = end
        }
        var mean = [Float](repeating: 0, count: f), std = [Float](repeating: 1, count: f)
        for j in 0..<f where n > 0 {
            let m = sum[j] / Double(n)
            let variance = Swift.max(0, squares[j] / Double(n) - m * m)
            mean[j] = Float(m)
            let s = variance.squareRoot()
            std[j] = s > 1e-12 ? Float(s) : 1
        }
        return Standardization(mean: mean, std: std)
    }

    /// `dataset` with every feature standardised (a new Float dataset).
    public func apply(to dataset: LabeledDataset) throws -> LabeledDataset {
        let f = dataset.featureCount
        guard mean.count == f, std.count == f else {
            throw DataError.invalidArgument(context: "standardization", expected: "\(mean.count) features", found: "\(f)")
        }
        let all = dataset.inputs.reshaped([dataset.count, f])
        let out = Tensor(shape: [dataset.count, f]) { o in
            all.withUnsafeBufferPointer { x in
                for i in 0..<(dataset.count * f) { let j = i % f; o[i] = (x[i] - mean[j]) / std[j] }
            }
        }
        return try LabeledDataset(inputs: out.reshaped([dataset.count] + dataset.sampleShape), labels: dataset.labels,
                                  classCount: dataset.classCount)
    }
}
