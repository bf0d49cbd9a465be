import ArgumentParser
import Foundation
import DataFormats
import Datasets

extension CSVReader.Header: ExpressibleByArgument {}
extension TabularData.ClassOrder: ExpressibleByArgument {}

/// Where the examples come from: the embedded MNIST (or `--data-dir`), or a CSV / NPY file of one's own.
struct DataOptions: ParsableArguments {
    @Option(help: "MNIST directory (default: the embedded copy in Data/mnist).") var dataDir: String?
    @Option(help: ArgumentHelp("Your own data: a CSV file (.csv, .csv.gz; numeric features and a label column), an NPY array of inputs [N, ...] (with --labels), or a folder of PNG/JPEG images with one subfolder per class.", valueName: "path"))
    var data: String?
    @Option(help: ArgumentHelp("The labels of an NPY --data file: an NPY array [N] of integers.", valueName: "file")) var labels: String?
    @Option(help: ArgumentHelp("Test examples in a file of their own (same format; NPY with --test-labels) instead of a split of --data.", valueName: "file"))
    var testData: String?
    @Option(help: ArgumentHelp("The labels of an NPY --test-data file.", valueName: "file")) var testLabels: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Fraction of --data held out as the test set (stratified, seeded by --seed; default 0.2 when there is no --test-data).", valueName: "fraction"))
    var testSplit: Double?
    @Option(help: ArgumentHelp("The CSV label column: a header name, a 0-based index, or last (default: the column named 'label', else the last).", valueName: "name|index|last"))
    var labelColumn: String?
    @Option(help: "Whether the CSV's first row is a header: auto (detected), yes or no.") var header: CSVReader.Header = .auto
    @Option(help: ArgumentHelp("The CSV delimiter, one character (default: detected among , ; tab |).", valueName: "char")) var delimiter: String?
    @Option(parsing: .unconditional, help: "CSV lines to skip before the header (a preamble).") var skipRows: Int = 0
    @Option(help: "How named classes are numbered: sorted or appearance (order of first appearance in the file).")
    var classOrder: TabularData.ClassOrder = .sorted
    @Option(parsing: .unconditional, help: ArgumentHelp("A folder of images as --data: read them as grey (1) or RGB (3) (default: RGB when any image has colour).", valueName: "1|3"))
    var imageChannels: Int?
    @Option(help: ArgumentHelp("A folder of images as --data: resize every image to HEIGHTxWIDTH (default: all must have one size).", valueName: "HxW"))
    var imageSize: String?
    @Flag(help: "Do not standardise the features of --data (by default each feature of float data is standardised with the training part's mean and deviation, stored in the model file and applied by evaluate).")
    var noStandardize = false

    func validate() throws {
        if data == nil {
            for (flag, value) in [("--labels", labels), ("--test-data", testData), ("--test-labels", testLabels), ("--label-column", labelColumn)] where value != nil {
                throw ValidationError("\(flag) needs --data")
            }
            if testSplit != nil { throw ValidationError("--test-split needs --data") }
        } else if dataDir != nil {
            throw ValidationError("give either --data (your own file) or --data-dir (an MNIST directory), not both")
        }
        if let data, data.hasSuffix(".npy"), labels == nil { throw ValidationError("--data \(data): an NPY file needs --labels FILE.npy") }
        if let testData, testData.hasSuffix(".npy"), testLabels == nil { throw ValidationError("--test-data \(testData): an NPY file needs --test-labels FILE.npy") }
        if testData != nil, testSplit != nil { throw ValidationError("give either --test-data or --test-split, not both") }
        if let testSplit, !(testSplit > 0 && testSplit < 1) { throw ValidationError("--test-split must be in (0, 1), got \(testSplit)") }
        if let delimiter, delimiter.utf8.count != 1 { throw ValidationError("--delimiter must be one character, got '\(delimiter)'") }
        if skipRows < 0 { throw ValidationError("--skip-rows must be >= 0, got \(skipRows)") }
        if let imageChannels, imageChannels != 1 && imageChannels != 3 { throw ValidationError("--image-channels must be 1 or 3, got \(imageChannels)") }
        if let imageSize, parseImageSize(imageSize) == nil { throw ValidationError("--image-size expects HEIGHTxWIDTH (e.g. 28x28), got '\(imageSize)'") }
    }

    /// The request for a run seeded with `seed` (the split's seed).
    func request(seed: UInt64) -> DataRequest {
        var r = DataRequest()
        r.data = data
        r.labels = labels
        r.testData = testData
        r.testLabels = testLabels
        r.testSplit = testSplit
        r.splitSeed = seed
        r.mnistDirectory = dataDir
        r.standardize = noStandardize ? false : nil
        r.csv.header = header
        r.csv.skipRows = skipRows
        r.csv.classOrder = classOrder
        r.csv.delimiter = delimiter.flatMap { $0.utf8.first }
        r.images.channels = imageChannels
        r.images.size = imageSize.flatMap(parseImageSize)
        switch labelColumn {
        case nil: r.csv.labelColumn = .automatic
        case "last"?: r.csv.labelColumn = .last
        case let text?: r.csv.labelColumn = Int(text).map { .index($0) } ?? .name(text)
        }
        return r
    }

    func parseImageSize(_ text: String) -> (height: Int, width: Int)? {
        let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else { return nil }
        return (parts[0], parts[1])
    }

    /// A short description for reports: the file, or MNIST.
    var describe: String { data ?? "MNIST" }
}
