import Foundation
import Datasets

/// Finds and loads the dataset a command works on.
public enum DataLocation {
    /// The MNIST directory: `directory` when given, else the embedded copy (`Data/mnist`, found by
    /// `MNIST.defaultDirectory()`).
    public static func mnistDirectory(_ directory: String?) throws -> URL {
        if let directory { return URL(fileURLWithPath: directory) }
        guard let url = MNIST.defaultDirectory() else {
            throw TrainingError("cannot find the embedded MNIST copy (Data/mnist beside the project); give the directory of an MNIST copy (its four IDX files)")
        }
        return url
    }

    /// Loads MNIST (train 60,000 / test 10,000), verified against SHA256SUMS when present.
    public static func loadMNIST(_ directory: String?) throws -> (train: LabeledDataset, test: LabeledDataset) {
        try MNIST.load(directory: mnistDirectory(directory))
    }

    /// Loads the embedded printed-characters set (`Data/glyphs`, 62 classes), or an MNIST-layout set with a
    /// `classes.txt` in `directory`.
    public static func loadGlyphs(_ directory: String?) throws -> (train: LabeledDataset, test: LabeledDataset, classNames: [String]) {
        let url: URL
        if let directory {
            url = URL(fileURLWithPath: directory)
        } else {
            guard let found = MNIST.embeddedDirectory(named: "glyphs") else {
                throw TrainingError("cannot find the embedded glyphs copy (Data/glyphs beside the project); give the directory of an MNIST-layout data set with classes.txt")
            }
            url = found
        }
        return try IDXImageSet.load(directory: url)
    }
}
