import Foundation

/// A user-facing failure of the distillation toolkit: an invalid option, a teacher that does not fit, or a
/// teacher-logit store that is unreadable or belongs to other data.
///
/// `description` is one line that names what is wrong: the command-line flag (`--temperature must be > 0, got -1`)
/// or the file and the expected versus found values.
public struct DistillationError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The complete one-line message.
    public let message: String

    /// An error with the given message (newlines are replaced by spaces).
    public init(_ message: String) {
        self.message = message.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    public var description: String { message }
    public var errorDescription: String? { message }
}
