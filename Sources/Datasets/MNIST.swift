import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The MNIST handwritten digits (LeCun et al.): 60,000 training and 10,000 test images of 28x28 pixels, 10 classes.
///
/// The repository vendors the four gzip IDX files and a `SHA256SUMS` in `Data/mnist`; `defaultDirectory()` finds
/// that copy, `load(directory:)` reads and verifies it, and `fetch(to:)` downloads a fresh copy.
public enum MNIST {
    /// Training images file name (IDX `[60000, 28, 28]`, gzip).
    public static let trainImagesFile = "train-images-idx3-ubyte.gz"
    /// Training labels file name (IDX `[60000]`, gzip).
    public static let trainLabelsFile = "train-labels-idx1-ubyte.gz"
    /// Test images file name (IDX `[10000, 28, 28]`, gzip).
    public static let testImagesFile = "t10k-images-idx3-ubyte.gz"
    /// Test labels file name (IDX `[10000]`, gzip).
    public static let testLabelsFile = "t10k-labels-idx1-ubyte.gz"
    /// All four data files.
    public static let fileNames = [trainImagesFile, trainLabelsFile, testImagesFile, testLabelsFile]

    /// The canonical SHA-256 digests of the four files (as in the vendored `SHA256SUMS`).
    public static let canonicalSums = SHA256Sums(digests: [
        testImagesFile: "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
        testLabelsFile: "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        trainImagesFile: "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
        trainLabelsFile: "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    ])

    /// The public mirror used by `fetch(to:)`.
    public static let mirror = "https://ossci-datasets.s3.amazonaws.com/mnist/"

    /// Image side length.
    public static let side = 28
    /// Number of classes.
    public static let classCount = 10

    /// Largest accepted file or decompressed stream: the training images are 47,040,016 bytes uncompressed.
    static let maximumBytes = 64 << 20

    /// Loads the training and test sets from `directory`.
    ///
    /// When `directory/SHA256SUMS` exists every file is first checked against it (a missing entry or a different
    /// digest is an error naming the file and both digests). Then: image files must be IDX `0x00000803` of
    /// `[N, 28, 28]`, label files IDX `0x00000801` of `[N]` with labels in 0...9, and the counts must agree.
    /// - Returns: datasets of N rows of 784 pixels stored as bytes (`LabeledDataset.init(pixels:)`), read as
    ///   `byte / 255` in [0, 1]; `sampleShape` [1, 28, 28], `classCount` 10. Each compressed file is released once it is
    ///   decompressed, and the decompressed images become the dataset's storage without a copy.
    /// - Throws: `DataError` naming the offending file.
    public static func load(directory: URL) throws -> (train: LabeledDataset, test: LabeledDataset) {
        try load(directory: directory, classCount: classCount, side: side)
    }

    /// The same layout with another class count (labels in `0..<classCount`) and image size (`side` x `side`, or
    /// any size when nil): data sets published in MNIST's format, such as `Data/glyphs`.
    public static func load(directory: URL, classCount: Int, side: Int?) throws -> (train: LabeledDataset, test: LabeledDataset) {
        let sumsURL = directory.appendingPathComponent("SHA256SUMS")
        let sums = FileManager.default.fileExists(atPath: sumsURL.path) ? try SHA256Sums.read(sumsURL) : nil
        func file(_ name: String) throws -> IDXFile {
            let url = directory.appendingPathComponent(name)
            let raw = try DataFile.read(url, maximumBytes: maximumBytes)
            try sums?.verify(raw, name: name, path: url.path)
            return try IDXFile.parse(raw, file: name, maximumBytes: maximumBytes)
        }
        let train = try dataset(images: file(trainImagesFile), imagesName: trainImagesFile,
                                labels: file(trainLabelsFile), labelsName: trainLabelsFile, classCount: classCount, side: side)
        let test = try dataset(images: file(testImagesFile), imagesName: testImagesFile,
                               labels: file(testLabelsFile), labelsName: testLabelsFile, classCount: classCount, side: side)
        return (train, test)
    }

    /// Validates one images/labels pair and converts it.
    static func dataset(images: IDXFile, imagesName: String, labels: IDXFile, labelsName: String,
                        classCount: Int = MNIST.classCount, side: Int? = MNIST.side) throws -> LabeledDataset {
        guard labels.magic == 0x0000_0801 else {
            throw DataError.format(file: labelsName, expected: "IDX magic 0x00000801 (labels)", found: String(format: "0x%08X", labels.magic))
        }
        guard images.magic == 0x0000_0803 else {
            throw DataError.format(file: imagesName, expected: "IDX magic 0x00000803 (images)", found: String(format: "0x%08X", images.magic))
        }
        if let side, images.shape[1] != side || images.shape[2] != side {
            throw DataError.format(file: imagesName, expected: "\(side)x\(side) images", found: "\(images.shape[1])x\(images.shape[2])")
        }
        guard images.shape[1] > 0, images.shape[2] > 0 else {
            throw DataError.format(file: imagesName, expected: "images of at least 1x1 pixels", found: "\(images.shape[1])x\(images.shape[2])")
        }
        let n = images.shape[0]
        guard labels.shape[0] == n else {
            throw DataError.format(file: labelsName, expected: "\(n) labels (one per image in \(imagesName))", found: "\(labels.shape[0])")
        }
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw DataError.format(file: labelsName, expected: "labels in 0...\(classCount - 1)", found: "\(labels.bytes[bad]) at index \(bad)")
        }
        // The pixels stay bytes (the decompressed array itself, shared, not copied) and are decoded to `byte / 255`
        // a batch at a time.
        return LabeledDataset(unchecked: images.bytes, sampleShape: [1, images.shape[1], images.shape[2]],
                              labels: labels.bytes.map { Int($0) }, classCount: classCount)
    }

    /// Where the MNIST files are, or nil if not found.
    ///
    /// In order: `$DISTILL_DATA_DIR` when set and non-empty (returned as is); `Data/mnist` under the current
    /// directory; then the nearest ancestor of the running executable (`CommandLine.arguments[0]` resolved, then
    /// `/proc/self/exe`) containing `Data/mnist/train-images-idx3-ubyte.gz` (the binary lives at
    /// `<repo>/.build/release/distill`). The last two require that file to exist.
    public static func defaultDirectory() -> URL? {
        let environment = ProcessInfo.processInfo.environment
        if let dir = environment["DISTILL_DATA_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return embeddedDirectory(named: "mnist")
    }

    /// `Data/<name>` of the project, found as for MNIST (the current directory, then the ancestors of the running
    /// executable), when it holds a training images file in MNIST's layout; nil otherwise.
    public static func embeddedDirectory(named name: String) -> URL? {
        let fileManager = FileManager.default
        func hasData(_ root: URL) -> Bool {
            fileManager.fileExists(atPath: root.appendingPathComponent("Data/\(name)/\(trainImagesFile)").path)
        }
        let current = URL(fileURLWithPath: fileManager.currentDirectoryPath, isDirectory: true)
        if hasData(current) { return current.appendingPathComponent("Data/\(name)", isDirectory: true) }

        var executables: [URL] = []
        if let argument = CommandLine.arguments.first, argument.contains("/") {
            executables.append(URL(fileURLWithPath: argument, relativeTo: current).standardizedFileURL.resolvingSymlinksInPath())
        }
        if let exe = try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            executables.append(URL(fileURLWithPath: exe))
        }
        for executable in executables {
            var directory = executable.deletingLastPathComponent()
            while directory.path != "/" && !directory.path.isEmpty {
                if hasData(directory) { return directory.appendingPathComponent("Data/\(name)", isDirectory: true) }
                directory = directory.deletingLastPathComponent()
            }
        }
        return nil
    }

    /// Downloads the four files from `mirror` into `directory` (created if needed), verifies each against
    /// `canonicalSums`, and writes `SHA256SUMS`.
    ///
    /// Each file is verified in memory and then written atomically (temporary file and rename), so a failure never
    /// leaves a partial or unverified file. Files already present with the right digest are not downloaded again.
    /// - Parameters:
    ///   - mirror: base URL ending in `/`; the default is the public mirror.
    ///   - timeout: seconds allowed per request.
    /// - Throws: `DataError.download` (e.g. offline), `DataError.checksumMismatch`, or `DataError.io`.
    public static func fetch(to directory: URL, mirror: String = MNIST.mirror, timeout: TimeInterval = 120) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError.io(file: directory.path, reason: error.localizedDescription)
        }
        for name in fileNames {
            let destination = directory.appendingPathComponent(name)
            if let existing = try? DataFile.read(destination, maximumBytes: maximumBytes),
               (try? canonicalSums.verify(existing, name: name)) != nil {
                continue
            }
            let address = mirror.hasSuffix("/") ? mirror + name : mirror + "/" + name
            guard let url = URL(string: address), url.scheme != nil else {
                throw DataError.download(file: name, url: address, reason: "not a valid URL")
            }
            let bytes = try Downloader.download(url, file: name, timeout: timeout, maximumBytes: maximumBytes)
            try canonicalSums.verify(bytes, name: name, path: address)
            try DataFile.writeAtomically(bytes, to: destination)
        }
        try DataFile.writeAtomically(Array(canonicalSums.text.utf8), to: directory.appendingPathComponent("SHA256SUMS"))
    }
}
