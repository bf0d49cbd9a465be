import Foundation

/// A user-facing failure: one line naming the file, the place or the setting and what was expected (an invalid
/// value, a teacher that does not fit, a file that is unreadable or belongs to other data, a run that diverged).
/// Invalid configuration values are ``ConfigurationError``s, keyed by field.
public struct TrainingError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The complete one-line message.
    public let description: String

    /// An error with the given message (newlines are replaced by spaces).
    public init(_ description: String) {
        self.description = description.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    public var errorDescription: String? { description }
}
