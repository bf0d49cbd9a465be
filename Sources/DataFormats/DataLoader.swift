import Foundation
import TensorCore
import Datasets

/// What a model file records about the data it was trained on, so that evaluation and teacher logits read new data
/// the same way: class names, the standardisation, the test split, the sample shape.
public struct DataSpecification: Codable, Equatable, Sendable {
    /// `mnist`, `csv` or `npy`.
    public var format: String
    public var source: String?
    public var sampleShape: [Int]
    public var classNames: [String]?
    public var featureNames: [String]?
    public var standardization: Standardization?
    /// The held-out test fraction and the seed of its stratified split, when the test set came from the data file.
    public var testSplit: Double?
    public var splitSeed: UInt64?

    enum CodingKeys: String, CodingKey {
        case format, source
        case sampleShape = "sample_shape", classNames = "class_names", featureNames = "feature_names"
        case standardization, testSplit = "test_split", splitSeed = "split_seed"
    }

    /// The metadata key model files store it under.
    public static let metadataKey = "data"

    public func metadataValue() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public static func from(metadata: [String: String]) throws -> DataSpecification? {
        guard let text = metadata[metadataKey] else { return nil }
        do { return try JSONDecoder().decode(DataSpecification.self, from: Data(text.utf8)) } catch {
            throw DataError.invalidArgument(context: "model metadata 'data'", expected: "a data specification", found: "\(error)")
        }
    }
}

/// Where a command's examples come from and how to read them.
public struct DataRequest: Sendable {
    /// A CSV (`.csv`, `.csv.gz`, any name with CSV text) or NPY (`.npy`, with `labels`) file; nil for MNIST.
    public var data: String?
    public var labels: String?
    public var testData: String?
    public var testLabels: String?
    /// The stratified test fraction when no test file is given (default 0.2).
    public var testSplit: Double?
    public var splitSeed: UInt64 = 0
    public var csv = CSVReader.Options()
    /// Standardise features (fitted on the training part); nil: yes for float data, no for bytes (images).
    public var standardize: Bool? = nil
    /// The MNIST directory when `data` is nil (nil: the embedded copy).
    public var mnistDirectory: String?
    /// How a folder of images is read: grey or RGB, and a size to resize to.
    public var images = ImageFolderReader.Options()

    public init() {}
}

public enum DataLoader {
    /// Training and test examples for a training command, and what the model file should record.
    public static func load(_ request: DataRequest) throws -> (train: LabeledDataset, test: LabeledDataset, specification: DataSpecification) {
        guard let path = request.data else {
            let (train, test) = try MNIST.load(directory: try mnistDirectory(request.mnistDirectory))
            return (train, test, DataSpecification(format: "mnist", source: request.mnistDirectory, sampleShape: train.sampleShape))
        }
        let all = try read(path, labels: request.labels, request: request)
        var train = all, test: TabularData
        var split: Double? = nil
        if let testPath = request.testData {
            test = try read(testPath, labels: request.testLabels, request: request)
            test = try align(test, to: train)
        } else {
            split = request.testSplit ?? 0.2
            (train, test) = try all.split(testFraction: split!, seed: request.splitSeed)
        }
        guard test.dataset.sampleShape == train.dataset.sampleShape else {
            throw DataError.format(file: test.source, expected: "examples of shape \(train.dataset.sampleShape) as in \(train.source)",
                                   found: "\(test.dataset.sampleShape)")
        }
        var standardization: Standardization? = nil
        if request.standardize ?? !train.dataset.isByteStorage {
            let s = Standardization.fit(train.dataset)
            standardization = s
            train.dataset = try s.apply(to: train.dataset)
            test.dataset = try s.apply(to: test.dataset)
        }
        var isDirectory: ObjCBool = false
        let folder = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        let specification = DataSpecification(
            format: folder ? "images" : path.hasSuffix(".npy") ? "npy" : "csv", source: path, sampleShape: train.dataset.sampleShape,
            classNames: train.classNames, featureNames: train.featureNames, standardization: standardization,
            testSplit: split, splitSeed: split == nil ? nil : request.splitSeed)
        return (train.dataset, test.dataset, specification)
    }

    /// Examples to evaluate a model on, read as its data specification says: the test part of the same split when
    /// the model's test set was split off this file, every example otherwise; its standardisation; its class names.
    public static func loadForEvaluation(_ request: DataRequest, specification: DataSpecification?) throws -> LabeledDataset {
        guard let path = request.data else {
            return try MNIST.load(directory: try mnistDirectory(request.mnistDirectory)).test
        }
        var data = try read(path, labels: request.labels, request: request)
        if let spec = specification {
            if let names = spec.classNames {
                let reference = TabularData(dataset: data.dataset, classNames: names, featureNames: nil, source: spec.source ?? "the model")
                data = try align(data, to: reference)
            }
            if let fraction = request.testSplit ?? (spec.source == path ? spec.testSplit : nil) {
                data = try data.split(testFraction: fraction, seed: request.testSplit == nil ? (spec.splitSeed ?? 0) : request.splitSeed).test
            }
            if let s = spec.standardization { data.dataset = try s.apply(to: data.dataset) }
        }
        return data.dataset
    }

    public static func read(_ path: String, labels: String?, request: DataRequest) throws -> TabularData {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return try ImageFolderReader.read(directory: url, options: request.images)
        }
        if path.hasSuffix(".npy") {
            guard let labels else {
                throw DataError.invalidArgument(context: "\(path)", expected: "a labels file (NPY) beside the inputs", found: "none")
            }
            return try NPYReader.read(data: url, labels: URL(fileURLWithPath: labels))
        }
        return try CSVReader.read(url: url, options: request.csv)
    }

    /// `data` with its labels renumbered to `reference`'s class names (a test file's classes are those of training).
    static func align(_ data: TabularData, to reference: TabularData) throws -> TabularData {
        guard let names = reference.classNames else {
            guard data.classNames == nil else {
                throw DataError.format(file: data.source, expected: "class indices 0..<\(reference.dataset.classCount) as in the training data",
                                       found: "named classes")
            }
            guard data.dataset.classCount <= reference.dataset.classCount else {
                throw DataError.format(file: data.source, expected: "labels in 0..<\(reference.dataset.classCount) as in the training data",
                                       found: "label \(data.dataset.classCount - 1)")
            }
            var d = data
            d.dataset = data.dataset.relabelled(data.dataset.labels, classCount: reference.dataset.classCount)
            return d
        }
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        let own = data.classNames ?? (0..<data.dataset.classCount).map(String.init)
        let labels = try data.dataset.labels.map { label -> Int in
            guard let i = index[own[label]] else {
                throw DataError.format(file: data.source, expected: "labels among the training classes \(names.prefix(10).joined(separator: ", "))\(names.count > 10 ? ", ..." : "")",
                                       found: "'\(own[label])'")
            }
            return i
        }
        var d = data
        d.dataset = data.dataset.relabelled(labels, classCount: names.count)
        d.classNames = names
        return d
    }

    static func mnistDirectory(_ directory: String?) throws -> URL {
        if let directory { return URL(fileURLWithPath: directory) }
        guard let url = MNIST.defaultDirectory() else {
            throw DataError.invalidArgument(context: "MNIST", expected: "the embedded copy in Data/mnist beside the project", found: "none")
        }
        return url
    }
}
