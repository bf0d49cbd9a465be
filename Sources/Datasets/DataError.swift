/// A failure while reading, verifying, downloading or slicing a dataset.
///
/// Every case names the file (or the API) concerned, and `description` renders it as one line of the form
/// `"<file>: expected <what>, found <what>"`, e.g.
/// `"t10k-labels-idx1-ubyte.gz: expected IDX magic 0x00000801 (labels), found 0x00000803"`.
/// Bad input never traps: readers throw one of these instead.
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file's content does not match its format (`expected` vs `found`).
    case format(file: String, expected: String, found: String)
    /// The file does not exist.
    case missingFile(path: String)
    /// The file exists but could not be read or written.
    case io(file: String, reason: String)
    /// The file's SHA-256 (lowercase hex) differs from the recorded one.
    case checksumMismatch(file: String, expected: String, actual: String)
    /// Downloading `file` from `url` failed.
    case download(file: String, url: String, reason: String)
    /// An argument passed to a dataset API is out of range (`context` names the API).
    case invalidArgument(context: String, expected: String, found: String)
    /// A line of a text file does not hold what it should (`expected` says what, and what was found).
    case content(file: String, line: Int, expected: String)

    /// The one-line message: the file (or API), what was expected and what was found.
    public var description: String {
        switch self {
        case let .format(file, expected, found):
            return "\(file): expected \(expected), found \(found)"
        case let .missingFile(path):
            return "\(path): expected an existing file, found none (missing file)"
        case let .io(file, reason):
            return "\(file): could not be read or written: \(reason)"
        case let .checksumMismatch(file, expected, actual):
            return "\(file): expected SHA-256 \(expected), found \(actual) (file corrupt or replaced)"
        case let .download(file, url, reason):
            return "could not download \(file) from \(url): \(reason); offline? use the embedded copy in Data/mnist or another local MNIST directory"
        case let .invalidArgument(context, expected, found):
            return "\(context): expected \(expected), found \(found)"
        case let .content(file, line, expected):
            return "\(file), line \(line): expected \(expected)"
        }
    }
}
