import Foundation
import TensorIO

/// Whole-file reads and atomic writes with `DataError` failures.
enum DataFile {
    /// Reads the file at `url`, refusing files larger than `maximumBytes` before reading them.
    static func read(_ url: URL, maximumBytes: Int) throws -> [UInt8] {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.missingFile(path: path)
        }
        guard !isDirectory.boolValue else {
            throw DataError.format(file: path, expected: "a regular file", found: "a directory")
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
           size.int64Value > Int64(maximumBytes) {
            throw DataError.format(file: path, expected: "at most \(maximumBytes) bytes", found: "\(size.int64Value) bytes")
        }
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw DataError.io(file: path, reason: error.localizedDescription)
        }
    }

    /// Writes `bytes` to `url` atomically (``AtomicFile``: a temporary file in the same directory, fsync, rename),
    /// so readers never see a partial file.
    static func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
        do {
            try AtomicFile.write(data: Data(bytes), to: url, overwrite: true)
        } catch let error as TensorIOError {
            throw DataError.io(file: url.path, reason: error.description)
        }
    }
}
