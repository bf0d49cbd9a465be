import Foundation

/// The content of a `SHA256SUMS` file as `sha256sum` writes it: lines `<64 hex digits>  <file name>` (a `*` before
/// the name, binary mode, is accepted). Blank lines and lines starting with `#` are ignored.
public struct SHA256Sums: Equatable, Sendable {
    /// Lowercase hex digest by file name.
    public var digests: [String: String]

    /// Sums from a dictionary of file name to lowercase hex digest.
    public init(digests: [String: String]) { self.digests = digests }

    /// Parses `text`; `file` names the source in error messages.
    /// - Throws: `DataError.format` naming the first malformed line.
    public init(parsing text: String, file: String = "SHA256SUMS") throws {
        var digests: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            let hexPart = line.prefix(64)
            let rest = line.dropFirst(64)
            guard hexPart.count == 64, hexPart.allSatisfy({ $0.isHexDigit && $0.isASCII }),
                  rest.hasPrefix(" ") else {
                throw DataError.format(file: file, expected: "line \(number + 1) as '<64 hex digits>  <file name>'",
                                       found: "'\(line.prefix(100))'")
            }
            var name = rest.dropFirst()
            if name.hasPrefix(" ") || name.hasPrefix("*") { name = name.dropFirst() }
            guard !name.isEmpty else {
                throw DataError.format(file: file, expected: "a file name on line \(number + 1)", found: "none")
            }
            digests[String(name)] = hexPart.lowercased()
        }
        self.digests = digests
    }

    /// Reads and parses a `SHA256SUMS` file.
    public static func read(_ url: URL) throws -> SHA256Sums {
        let bytes = try DataFile.read(url, maximumBytes: 1 << 20)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DataError.format(file: url.path, expected: "UTF-8 text", found: "invalid UTF-8")
        }
        return try SHA256Sums(parsing: text, file: url.path)
    }

    /// The file in `sha256sum` format, sorted by file name.
    public var text: String {
        digests.sorted { $0.key < $1.key }.map { "\($0.value)  \($0.key)\n" }.joined()
    }

    /// Checks `bytes` (the content of `name`) against the recorded digest.
    /// - Throws: `DataError.format` when `name` has no entry, `DataError.checksumMismatch` when the digest differs.
    public func verify(_ bytes: [UInt8], name: String, path: String? = nil) throws {
        guard let expected = digests[name] else {
            throw DataError.format(file: "SHA256SUMS", expected: "an entry for \(name)", found: "none")
        }
        let actual = SHA256.hexHash(bytes)
        guard actual == expected else {
            throw DataError.checksumMismatch(file: path ?? name, expected: expected, actual: actual)
        }
    }
}
