import Foundation
import Datasets

/// Finds and loads the dataset a command works on.
public enum DataLocation {
    /// The MNIST directory: `--data-dir` when given, else the embedded copy (`Data/mnist`, found by
    /// `MNIST.defaultDirectory()`).
    public static func mnistDirectory(_ flag: String?) throws -> URL {
        if let flag { return URL(fileURLWithPath: flag) }
        guard let url = MNIST.defaultDirectory() else {
            throw TrainingError("cannot find the embedded MNIST copy (Data/mnist beside the project); pass --data-dir DIR or run `distill data fetch mnist --output DIR`")
        }
        return url
    }

    /// Loads MNIST (train 60,000 / test 10,000), verified against SHA256SUMS when present.
    public static func loadMNIST(_ flag: String?) throws -> (train: LabeledDataset, test: LabeledDataset) {
        try MNIST.load(directory: mnistDirectory(flag))
    }

    /// Refuses to start a run whose output exists (without `force`) or whose directory is missing, before any work.
    public static func checkOutput(_ path: String, force: Bool, flag: String = "--output") throws {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw TrainingError("\(flag) \(path) is a directory; expected a file path") }
            if !force { throw TrainingError("\(path) exists; pass --force to overwrite") }
        }
        let parent = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw TrainingError("\(flag) \(path): directory \(parent) does not exist")
        }
    }
}
