import Foundation
import TensorCore
import Datasets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a table of numeric features and one label column from CSV (or CSV.gz) into a ``TabularData``.
///
/// - The delimiter is detected (`,` `;` tab or `|`, whichever splits the first lines into the same number of fields,
///   more than one) unless given; fields may be quoted (`"a, b"`, `""` for a quote inside).
/// - A header is detected (a first row with a field that is not a number, outside the label column) unless given.
/// - The label column: a name (needs a header), a 0-based index, `last`, or by default the column named `label`
///   (any case) when there is one, else the last column.
/// - Labels that are all whole numbers `0..<K` are class indices; any other labels (strings, or integers that are
///   not `0..<K`) are class names, numbered in sorted order or in order of first appearance.
/// - Blank lines are skipped; a row with another number of fields, a cell that is not a finite number, or an empty
///   cell is an error naming the file, the line and the column.
///
/// Plain files are read twice in blocks (once to count rows, once to parse them, the second time on the compute
/// threads) straight into one Float32 buffer of the final size, so peak memory is the data plus a few blocks; a
/// gzip file is decompressed in memory first. Every value is the correctly rounded Float32 of its decimal text.
public enum CSVReader {
    public enum Header: String, Sendable, CaseIterable {
        case auto, yes, no
    }

    public enum LabelColumn: Equatable, Sendable {
        /// The column named `label` (any case), else the last.
        case automatic
        case name(String)
        /// 0-based.
        case index(Int)
        case last
        /// No label column: every column is a feature (data to predict); every label is 0.
        case none
    }

    public struct Options: Sendable {
        public var delimiter: UInt8? = nil
        public var header: Header = .auto
        /// Lines skipped before the header or the first row (a preamble).
        public var skipRows: Int = 0
        public var labelColumn: LabelColumn = .automatic
        public var classOrder: TabularData.ClassOrder = .sorted
        public init() {}
    }

    /// The bytes read per block.
    static let blockSize = 1 << 23

    public static func read(url: URL, options: Options = Options()) throws -> TabularData {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw DataError.missingFile(path: path) }
        guard !isDirectory.boolValue else { throw DataError.format(file: path, expected: "a CSV file", found: "a directory") }
        let source: ByteSource
        if try FileSource.startsWithGzipMagic(path) {
            let compressed = try DataFileAccess.readAll(path)
            source = MemorySource(bytes: try Gzip.decompress(compressed, file: path, maximumBytes: 1 << 36))
        } else {
            source = try FileSource(path: path)
        }
        return try read(source: source, name: path, options: options)
    }

    /// The number of columns of a CSV file (from its first lines, as `read` detects them; nothing else is parsed).
    public static func columnCount(url: URL, options: Options = Options()) throws -> Int {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw DataError.missingFile(path: path) }
        let source: ByteSource = try FileSource.startsWithGzipMagic(path)
            ? MemorySource(bytes: try Gzip.decompress(try DataFileAccess.readAll(path), file: path, maximumBytes: 1 << 36))
            : try FileSource(path: path)
        var probe = options
        probe.labelColumn = .none
        return try Layout.detect(source: source, name: path, options: probe).columnCount
    }

    /// Parses CSV text held in memory (`name` is used in messages).
    public static func read(bytes: [UInt8], name: String, options: Options = Options()) throws -> TabularData {
        try read(source: MemorySource(bytes: bytes), name: name, options: options)
    }

    // MARK: The two passes

    static func read(source: ByteSource, name: String, options: Options) throws -> TabularData {
        guard options.skipRows >= 0 else {
            throw DataError.invalidArgument(context: "CSV", expected: "skipRows >= 0", found: "\(options.skipRows)")
        }
        // Pass 1: the layout (from the first lines) and the number of data rows.
        let layout = try Layout.detect(source: source, name: name, options: options)
        var scanner = LineScanner(source: source, name: name)
        var lineNumber = 0, rows = 0
        try scanner.forEachLine { line, _ in
            lineNumber += 1
            if lineNumber <= layout.firstDataLine - 1 { return }
            if !line.isBlank { rows += 1 }
        }
        guard rows > 0 else {
            throw DataError.format(file: name, expected: "at least one data row", found: lineNumber == 0 ? "an empty file" : "none after line \(lineNumber)")
        }
        // Pass 2: parse the data rows into their final places, blocks of rows split over the threads.
        let featureCount = layout.featureCount
        var labels = LabelCollector(rows: rows)
        var parser = BlockParser(layout: layout, name: name)
        // Parsed straight into the tensor's storage: the data exist once.
        let values = try Tensor(shape: [rows, featureCount]) { out in
            try parser.parse(source: source, into: out.baseAddress!, labels: &labels)
        }
        if options.labelColumn == .none {
            let dataset = try LabeledDataset(inputs: values, labels: [Int](repeating: 0, count: rows), classCount: 1)
            return TabularData(dataset: dataset, classNames: nil, featureNames: layout.featureNames, source: name)
        }
        let (classLabels, classNames) = try labels.classes(order: options.classOrder, name: name, labelColumn: layout.labelName)
        return try TabularData(values: values, labels: classLabels, classNames: classNames,
                               featureNames: layout.featureNames, source: name)
    }
}

// MARK: Layout detection

extension CSVReader {
    /// What the first lines say: delimiter, header, columns, label column.
    struct Layout {
        var delimiter: UInt8
        var columnCount: Int
        /// The label column, or Int.max without one.
        var labelIndex: Int
        var featureCount: Int { labelIndex == Int.max ? columnCount : columnCount - 1 }
        var labelName: String
        var featureNames: [String]?
        /// 1-based number of the first data line (after the preamble and the header).
        var firstDataLine: Int
        var quoted: Bool

        static func detect(source: ByteSource, name: String, options: Options) throws -> Layout {
            var lines: [[UInt8]] = []
            var quoted = false
            var scanner = LineScanner(source: source, name: name)
            var skipped = 0
            try scanner.forEachLine(limit: options.skipRows + 64) { line, stop in
                if skipped < options.skipRows { skipped += 1; return }
                if line.isBlank && lines.isEmpty { skipped += 1; return }
                if !line.isBlank { lines.append(Array(line.bytes)) }
                if line.bytes.contains(UInt8(ascii: "\"")) { quoted = true }
                if lines.count >= 32 { stop = true }
            }
            guard let first = lines.first else {
                throw DataError.format(file: name, expected: "a header or data row", found: skipped == 0 ? "an empty file" : "nothing after \(skipped) skipped lines")
            }
            let delimiter = options.delimiter ?? detectDelimiter(lines)
            let firstFields = splitFields(first, delimiter: delimiter).map { String(decoding: $0, as: UTF8.self) }
            let columns = firstFields.count
            guard columns >= (options.labelColumn == .none ? 1 : 2) else {
                throw DataError.format(file: name, expected: "at least two columns (features and a label) separated by '\(Character(UnicodeScalar(delimiter)))'",
                                       found: "\(columns) column in line \(options.skipRows + 1)")
            }
            // Header: a field that is not a number, other than in the label column (which may hold names).
            let candidateLabel = try resolveLabel(options.labelColumn, header: firstFields, columns: columns, name: name, allowNames: true)
            let hasHeader: Bool
            switch options.header {
            case .yes: hasHeader = true
            case .no: hasHeader = false
            case .auto:
                hasHeader = firstFields.enumerated().contains { i, field in
                    i != candidateLabel && FloatParsing.parse(Array(field.utf8)[...]) == nil
                } || (options.labelColumn == .automatic && firstFields.contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "label" })
            }
            if case .name = options.labelColumn, !hasHeader {
                throw DataError.format(file: name, expected: "a header row to find the label column by name", found: "no header (use a 0-based column index)")
            }
            let header = hasHeader ? firstFields.map { $0.trimmingCharacters(in: .whitespaces) } : nil
            let labelIndex = try resolveLabel(options.labelColumn, header: header, columns: columns, name: name, allowNames: hasHeader)
            var featureNames: [String]? = nil
            if let header { featureNames = header.enumerated().filter { $0.offset != labelIndex }.map(\.element) }
            let labelName = labelIndex == Int.max ? "" : header?[labelIndex] ?? "column \(labelIndex)"
            return Layout(delimiter: delimiter, columnCount: columns, labelIndex: labelIndex, labelName: labelName,
                          featureNames: featureNames, firstDataLine: skipped + (hasHeader ? 1 : 0) + 1,
                          quoted: quoted)
        }

        static func resolveLabel(_ choice: LabelColumn, header: [String]?, columns: Int, name: String, allowNames: Bool) throws -> Int {
            switch choice {
            case .last:
                return columns - 1
            case .none:
                return Int.max
            case .index(let i):
                guard i >= 0 && i < columns else {
                    throw DataError.format(file: name, expected: "a label column index in 0..<\(columns)", found: "\(i)")
                }
                return i
            case .name(let wanted):
                guard let header else { return columns - 1 }
                guard let i = header.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == wanted }) else {
                    guard allowNames else { return columns - 1 }
                    throw DataError.format(file: name, expected: "a label column named '\(wanted)'",
                                           found: "columns \(header.prefix(8).map { "'\($0)'" }.joined(separator: ", "))\(header.count > 8 ? ", ..." : "")")
                }
                return i
            case .automatic:
                if let header, let i = header.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "label" }) { return i }
                return columns - 1
            }
        }

        /// The candidate that splits every sampled line into the same number (> 1) of fields, the most fields winning.
        static func detectDelimiter(_ lines: [[UInt8]]) -> UInt8 {
            var best: (delimiter: UInt8, fields: Int) = (UInt8(ascii: ","), 0)
            for candidate in [",", ";", "\t", "|"].map({ UInt8(ascii: Unicode.Scalar($0)!) }) {
                let counts = lines.map { splitFields($0, delimiter: candidate).count }
                guard let n = counts.first, n > 1, counts.allSatisfy({ $0 == n }) else { continue }
                if n > best.fields { best = (candidate, n) }
            }
            return best.delimiter
        }
    }

    /// Splits one line into fields, honouring double quotes (the quotes are removed, `""` becomes `"`).
    static func splitFields(_ line: [UInt8], delimiter: UInt8) -> [[UInt8]] {
        var fields: [[UInt8]] = []
        var current: [UInt8] = []
        var inQuotes = false
        var i = 0
        while i < line.count {
            let b = line[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < line.count && line[i + 1] == UInt8(ascii: "\"") { current.append(b); i += 1 } else { inQuotes = false }
                } else { current.append(b) }
            } else if b == UInt8(ascii: "\"") {
                inQuotes = true
            } else if b == delimiter {
                fields.append(current)
                current = []
            } else {
                current.append(b)
            }
            i += 1
        }
        fields.append(current)
        return fields
    }
}

// MARK: Sources of bytes

/// A file or buffer read front to back in blocks, any number of times.
protocol ByteSource {
    /// Calls `body` with consecutive blocks of the whole content.
    func forEachBlock(_ body: (UnsafeBufferPointer<UInt8>) throws -> Bool) throws
}

struct MemorySource: ByteSource {
    let bytes: [UInt8]
    func forEachBlock(_ body: (UnsafeBufferPointer<UInt8>) throws -> Bool) throws {
        try bytes.withUnsafeBufferPointer { b in
            var start = 0
            while start < b.count {
                let n = Swift.min(CSVReader.blockSize, b.count - start)
                if try !body(UnsafeBufferPointer(rebasing: b[start..<(start + n)])) { return }
                start += n
            }
        }
    }
}

struct FileSource: ByteSource {
    let path: String

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(file: path, reason: String(cString: strerror(errno))) }
        close(fd)
    }

    static func startsWithGzipMagic(_ path: String) throws -> Bool {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 2)
        let n = magic.withUnsafeMutableBytes { read(fd, $0.baseAddress, 2) }
        return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b
    }

    func forEachBlock(_ body: (UnsafeBufferPointer<UInt8>) throws -> Bool) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: CSVReader.blockSize)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer, CSVReader.blockSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError.io(file: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { return }
            if try !body(UnsafeBufferPointer(start: buffer, count: n)) { return }
        }
    }
}

/// Whole-file reads for the gzip path.
enum DataFileAccess {
    static func readAll(_ path: String) throws -> [UInt8] {
        do { return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw DataError.io(file: path, reason: error.localizedDescription)
        }
    }
}

// MARK: Lines

/// One line without its terminator (`\n` or `\r\n`).
struct Line {
    var bytes: UnsafeBufferPointer<UInt8>
    var isBlank: Bool { bytes.allSatisfy { $0 == 32 || $0 == 9 || $0 == 13 } }
}

/// Splits a source into lines across block boundaries.
struct LineScanner {
    let source: ByteSource
    let name: String

    /// Calls `body` for each line (at most `limit`); setting `stop` ends the scan.
    mutating func forEachLine(limit: Int = Int.max, _ body: (Line, inout Bool) throws -> Void) throws {
        var carry: [UInt8] = []
        var count = 0
        var stop = false
        func emit(_ p: UnsafeBufferPointer<UInt8>) throws {
            var end = p.count
            if end > 0 && p[end - 1] == 13 { end -= 1 }
            try body(Line(bytes: UnsafeBufferPointer(rebasing: p[0..<end])), &stop)
            count += 1
        }
        try source.forEachBlock { block in
            var start = 0
            while start < block.count, !stop, count < limit {
                guard let p = memchr(block.baseAddress! + start, 10, block.count - start) else { break }
                let end = block.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                if carry.isEmpty {
                    try emit(UnsafeBufferPointer(rebasing: block[start..<end]))
                } else {
                    carry.append(contentsOf: block[start..<end])
                    try carry.withUnsafeBufferPointer { try emit($0) }
                    carry.removeAll(keepingCapacity: true)
                }
                start = end + 1
            }
            if stop || count >= limit { return false }
            carry.append(contentsOf: block[start..<block.count])
            return true
        }
        if !stop, count < limit, !carry.isEmpty { try carry.withUnsafeBufferPointer { try emit($0) } }
    }
}
