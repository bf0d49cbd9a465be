import Foundation
import TensorCore
import Datasets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The labels of every data row as read: whole numbers where they are, the text otherwise.
struct LabelCollector {
    /// Per row: the integer label, or `Int.min` when the row's label is text (kept in `texts`).
    var integers: [Int]
    var texts: [Int: String] = [:]

    init(rows: Int) { integers = [Int](repeating: Int.min, count: rows) }

    /// Class indices and, for named classes, the names: labels that are exactly `0..<K` are indices themselves; any
    /// other labels are names, numbered in `order`.
    func classes(order: TabularData.ClassOrder, name: String, labelColumn: String) throws -> (labels: [Int], names: [String]?) {
        if texts.isEmpty, let maximum = integers.max(), let minimum = integers.min(), minimum >= 0, maximum < 1 << 20 {
            var present = [Bool](repeating: false, count: maximum + 1)
            for v in integers { present[v] = true }
            if present.allSatisfy({ $0 }) { return (integers, nil) }
        }
        let names = integers.indices.map { texts[$0] ?? String(integers[$0]) }
        var order_: [String]
        switch order {
        case .sorted:
            let allIntegers = texts.isEmpty
            order_ = Array(Set(names))
            if allIntegers { order_.sort { Int($0)! < Int($1)! } } else { order_.sort() }
        case .appearance:
            var seen = Set<String>()
            order_ = []
            for n in names where seen.insert(n).inserted { order_.append(n) }
        }
        guard order_.count >= 2 else {
            throw DataError.format(file: name, expected: "at least two classes in the label column '\(labelColumn)'", found: "\(order_.count)")
        }
        let index = Dictionary(uniqueKeysWithValues: order_.enumerated().map { ($0.element, $0.offset) })
        return (names.map { index[$0]! }, order_)
    }
}

/// Pass 2 of ``CSVReader``: complete lines of each block, split into one part per compute thread at line
/// boundaries, each part parsed straight into its rows of the output.
struct BlockParser {
    let layout: CSVReader.Layout
    let name: String

    /// The first problem a part met: its line number and the message.
    struct Problem {
        var line: Int
        var message: String
    }

    mutating func parse(source: ByteSource, into out: UnsafeMutablePointer<Float>, labels: inout LabelCollector) throws {
        var carry: [UInt8] = []
        var lineNumber = 0   // lines before the current chunk
        var row = 0          // data rows before the current chunk
        var problem: Problem? = nil
        let integers = labels.integers.withUnsafeMutableBufferPointer { $0.baseAddress! }
        var texts: [Int: String] = [:]
        func chunk(_ bytes: UnsafeBufferPointer<UInt8>) {
            let (lines, rows, p, t) = parseChunk(bytes, firstLine: lineNumber, firstRow: row, out: out, integers: integers)
            lineNumber += lines
            row += rows
            if problem == nil, let p { problem = p }
            texts.merge(t) { a, _ in a }
        }
        try source.forEachBlock { block in
            guard let base = block.baseAddress else { return true }
            // The last newline of the block: lines up to it are complete.
            var last = block.count - 1
            while last >= 0 && base[last] != 10 { last -= 1 }
            if last < 0 {
                carry.append(contentsOf: block)
                return true
            }
            if carry.isEmpty {
                chunk(UnsafeBufferPointer(rebasing: block[0...last]))
            } else {
                carry.append(contentsOf: block[0...last])
                carry.withUnsafeBufferPointer { chunk($0) }
                carry.removeAll(keepingCapacity: true)
            }
            carry.append(contentsOf: block[(last + 1)...])
            return problem == nil
        }
        if problem == nil, !carry.isEmpty {
            carry.append(10)
            carry.withUnsafeBufferPointer { chunk($0) }
        }
        if let problem { throw DataError.content(file: name, line: problem.line, expected: problem.message) }
        labels.texts = texts
    }

    /// Parses complete lines (each ends with `\n`); returns the lines and data rows it held, its first problem and
    /// its text labels by row.
    func parseChunk(_ bytes: UnsafeBufferPointer<UInt8>, firstLine: Int, firstRow: Int, out: UnsafeMutablePointer<Float>,
                    integers: UnsafeMutablePointer<Int>) -> (Int, Int, Problem?, [Int: String]) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return (0, 0, nil, [:]) }
        let parts = bytes.count >= 1 << 16 ? Swift.max(1, ComputeThreads.count) : 1
        // Part boundaries just after a newline.
        var bounds = [0]
        for k in 1..<parts {
            var b = Swift.max(bounds[k - 1], k * bytes.count / parts)
            while b < bytes.count && base[b - 1] != 10 { b += 1 }
            bounds.append(b)
        }
        bounds.append(bytes.count)
        // Lines per part, then data rows per part (blank lines and the lines before the first data line are not
        // rows), for each part's first line number and row.
        var lineCounts = [Int](repeating: 0, count: parts), rowCounts = [Int](repeating: 0, count: parts)
        let firstData = layout.firstDataLine
        lineCounts.withUnsafeMutableBufferPointer { lc in
            ComputeThreads.parallelFor(chunks: parts) { k in
                var line = 0
                forEachLine(base, bounds[k], bounds[k + 1]) { _, _ in line += 1 }
                lc[k] = line
            }
        }
        rowCounts.withUnsafeMutableBufferPointer { rc in
            ComputeThreads.parallelFor(chunks: parts) { k in
                var line = firstLine + lineCounts[0..<k].reduce(0, +), rows = 0
                forEachLine(base, bounds[k], bounds[k + 1]) { s, e in
                    line += 1
                    if line >= firstData && !isBlank(base, s, e) { rows += 1 }
                }
                rc[k] = rows
            }
        }
        var problems = [Problem?](repeating: nil, count: parts)
        var textsByPart = [[Int: String]](repeating: [:], count: parts)
        problems.withUnsafeMutableBufferPointer { pr in
            textsByPart.withUnsafeMutableBufferPointer { tp in
                ComputeThreads.parallelFor(chunks: parts) { k in
                    var line = firstLine + lineCounts[0..<k].reduce(0, +)
                    var row = firstRow + rowCounts[0..<k].reduce(0, +)
                    var texts: [Int: String] = [:]
                    var problem: Problem? = nil
                    forEachLine(base, bounds[k], bounds[k + 1]) { s, e in
                        line += 1
                        guard problem == nil, line >= firstData, !isBlank(base, s, e) else { return }
                        if let message = parseRow(base + s, e - s, row: row, out: out, integers: integers, texts: &texts) {
                            problem = Problem(line: line, message: message)
                        }
                        row += 1
                    }
                    pr[k] = problem
                    tp[k] = texts
                }
            }
        }
        var texts: [Int: String] = [:]
        for t in textsByPart { texts.merge(t) { a, _ in a } }
        return (lineCounts.reduce(0, +), rowCounts.reduce(0, +), problems.compactMap { $0 }.min { $0.line < $1.line }, texts)
    }

    /// Calls `body(start, end)` for each line in `lo..<hi` (ends exclude the `\n`).
    @inline(__always)
    func forEachLine(_ base: UnsafePointer<UInt8>, _ lo: Int, _ hi: Int, _ body: (Int, Int) -> Void) {
        var s = lo
        while s < hi {
            guard let p = memchr(base + s, 10, hi - s) else { body(s, hi); return }
            let e = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
            body(s, e)
            s = e + 1
        }
    }

    @inline(__always)
    func isBlank(_ base: UnsafePointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        var i = s
        while i < e { let b = base[i]; if b != 32 && b != 9 && b != 13 { return false }; i += 1 }
        return true
    }

    /// Parses one data row into `out[row * features ...]` and its label; returns a message on a problem.
    @inline(__always)
    func parseRow(_ p: UnsafePointer<UInt8>, _ n: Int, row: Int, out: UnsafeMutablePointer<Float>,
                  integers: UnsafeMutablePointer<Int>, texts: inout [Int: String]) -> String? {
        let columns = layout.columnCount, delimiter = layout.delimiter
        let features = layout.featureCount
        let n = n > 0 && p[n - 1] == 13 ? n - 1 : n   // \r\n line ends
        let destination = out + row * features
        if layout.quoted {
            let fields = CSVReader.splitFields(Array(UnsafeBufferPointer(start: p, count: n)), delimiter: delimiter)
            guard fields.count == columns else { return "\(columns) fields, found \(fields.count)" }
            for (i, field) in fields.enumerated() {
                if let message = field.withUnsafeBufferPointer({ f -> String? in
                    store(f.baseAddress ?? UnsafePointer(bitPattern: 1)!, f.count, column: i, row: row, destination: destination,
                          integers: integers, texts: &texts)
                }) { return message }
            }
            return nil
        }
        var column = 0, start = 0, i = 0
        while true {
            if i == n || p[i] == delimiter {
                guard column < columns else {
                    var total = column + 1
                    for j in (i + 1)..<Swift.max(i + 1, n) where p[j] == delimiter { total += 1 }
                    return "\(columns) fields, found \(total)"
                }
                if let message = store(p + start, i - start, column: column, row: row, destination: destination,
                                       integers: integers, texts: &texts) {
                    // A row with fields missing puts a later column's value under an earlier name: say so first.
                    var total = 1
                    for j in 0..<n where p[j] == delimiter { total += 1 }
                    return total == columns ? message : "\(columns) fields, found \(total)"
                }
                column += 1
                if i == n { break }
                start = i + 1
            }
            i += 1
        }
        guard column == columns else { return "\(columns) fields, found \(column)" }
        return nil
    }

    /// Stores one field: a feature value, or the label.
    @inline(__always)
    func store(_ p: UnsafePointer<UInt8>, _ n: Int, column: Int, row: Int, destination: UnsafeMutablePointer<Float>,
               integers: UnsafeMutablePointer<Int>, texts: inout [Int: String]) -> String? {
        let labelIndex = layout.labelIndex
        if column == labelIndex {
            if let v = FloatParsing.parseInteger(p, n) {
                integers[row] = v
            } else {
                let text = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self).trimmingCharacters(in: .whitespaces)
                guard !text.isEmpty else { return "a label in column \(columnName(column)), found an empty cell" }
                texts[row] = text
            }
            return nil
        }
        guard let value = FloatParsing.parse(p, n) else {
            let text = String(decoding: UnsafeBufferPointer(start: p, count: Swift.min(n, 40)), as: UTF8.self)
            let found = text.trimmingCharacters(in: .whitespaces).isEmpty ? "an empty cell" : "'\(text)'"
            return "a finite number in column \(columnName(column)), found \(found)"
        }
        destination[column < labelIndex ? column : column - 1] = value
        return nil
    }

    func columnName(_ column: Int) -> String {
        guard let names = layout.featureNames else { return "\(column)" }
        let featureIndex = column < layout.labelIndex ? column : column - 1
        return column == layout.labelIndex ? "'\(layout.labelName)' (\(column))" : "'\(names[featureIndex])' (\(column))"
    }
}
