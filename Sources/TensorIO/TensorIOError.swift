import Foundation

/// An error reading or writing a tensor file.
///
/// `description` is a single line naming the file and what was expected versus what was found, e.g.
/// `model.safetensors: header length 4096 exceeds the 120 bytes after the 8-byte length field`.
public struct TensorIOError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The file (path or in-memory source name) the error concerns.
    public let file: String
    /// The complete one-line message.
    public let message: String

    /// An error whose message is `"<file>: <reason>"`.
    public init(file: String, reason: String) {
        self.file = file
        self.message = "\(file): \(TensorIOError.oneLine(reason))"
    }

    /// An error with a message given verbatim (it should mention `file`).
    public init(file: String, message: String) {
        self.file = file
        self.message = TensorIOError.oneLine(message)
    }

    /// The error thrown when a write would replace an existing file without permission.
    public static func exists(_ path: String) -> TensorIOError {
        TensorIOError(file: path, message: "\(path) exists; not overwritten (overwriting was not allowed)")
    }

    public var description: String { message }
    public var errorDescription: String? { message }

    static func oneLine(_ s: String) -> String {
        s.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }
}
