import Foundation

/// An image data set in MNIST's layout (the four gzip IDX files under MNIST's names, `SHA256SUMS` checked when
/// present) with any number of classes up to 256, named one per line in `classes.txt`. `Data/glyphs` is one.
public enum IDXImageSet {
    /// The class-names file.
    public static let classesFile = "classes.txt"

    /// Loads the training and test sets and the class names.
    /// - Throws: `DataError` naming the file: a missing or empty `classes.txt`, more than 256 classes, an empty or
    ///   repeated name, or any of `MNIST.load`'s checks (labels must be below the class count).
    public static func load(directory: URL) throws -> (train: LabeledDataset, test: LabeledDataset, classNames: [String]) {
        let url = directory.appendingPathComponent(classesFile)
        let raw = try DataFile.read(url, maximumBytes: 1 << 20)
        let sumsURL = directory.appendingPathComponent("SHA256SUMS")
        if FileManager.default.fileExists(atPath: sumsURL.path) {
            try SHA256Sums.read(sumsURL).verify(raw, name: classesFile, path: url.path)
        }
        guard let text = String(bytes: raw, encoding: .utf8) else {
            throw DataError.format(file: url.path, expected: "UTF-8 text, one class name per line", found: "bytes that are not UTF-8")
        }
        var names = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        if names.last == "" { names.removeLast() }
        guard names.count >= 2 && names.count <= 256 else {
            throw DataError.format(file: url.path, expected: "2 to 256 class names, one per line", found: "\(names.count)")
        }
        if let bad = names.firstIndex(where: { $0.isEmpty }) {
            throw DataError.format(file: url.path, expected: "a non-empty class name on every line", found: "an empty line \(bad + 1)")
        }
        guard Set(names).count == names.count else {
            throw DataError.format(file: url.path, expected: "distinct class names", found: "a repeated name")
        }
        let (train, test) = try MNIST.load(directory: directory, classCount: names.count, side: nil)
        return (train, test, names)
    }
}
