import Foundation
import TensorCore
import Datasets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// NumPy `.npy` files (format versions 1-3): an inputs array `[N, ...]` of float32, float64, uint8 or int64 and a
/// labels array `[N]` of int64, int32 or uint8, both little-endian, C order.
///
/// float32 data is read straight into the tensor (no second copy); uint8 data stays bytes (decoded per batch, as
/// MNIST's pixels); float64 and int64 are converted block by block. Labels `0..<K` are class indices; other whole
/// numbers are class names, numbered in sorted order.
public enum NPYReader {
    /// The array a file holds: its element type, shape and where the data start.
    struct Header {
        enum DType: String { case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int64 = "<i8", int32 = "<i4" }
        var dtype: DType
        var shape: [Int]
        var dataOffset: Int
        var count: Int { shape.reduce(1, *) }
        var elementSize: Int {
            switch dtype { case .float32, .int32: return 4; case .float64, .int64: return 8; case .uint8: return 1 }
        }
    }

    /// Inputs from `data` and class labels from `labels`.
    public static func read(data: URL, labels: URL) throws -> TabularData {
        let dataHeader = try header(of: data.path, allowed: [.float32, .float64, .uint8, .int64])
        let labelHeader = try header(of: labels.path, allowed: [.int64, .int32, .uint8])
        guard dataHeader.shape.count >= 2, dataHeader.shape.allSatisfy({ $0 > 0 }) else {
            throw DataError.format(file: data.path, expected: "an array of shape [examples, features...] with every size > 0",
                                   found: "shape \(dataHeader.shape)")
        }
        guard labelHeader.shape == [dataHeader.shape[0]] else {
            throw DataError.format(file: labels.path, expected: "labels of shape [\(dataHeader.shape[0])] (one per row of \(data.lastPathComponent))",
                                   found: "shape \(labelHeader.shape)")
        }
        let n = dataHeader.shape[0], sampleShape = Array(dataHeader.shape.dropFirst())
        let rawLabels = try readIntegers(labels.path, labelHeader)
        let (classLabels, names) = classes(rawLabels)
        guard (names?.count ?? ((classLabels.max() ?? -1) + 1)) >= 2 else {
            throw DataError.format(file: labels.path, expected: "at least two classes", found: "one")
        }
        let classCount = names?.count ?? ((classLabels.max() ?? 0) + 1)
        let dataset: LabeledDataset
        switch dataHeader.dtype {
        case .uint8:
            let bytes = try readBytes(data.path, dataHeader)
            dataset = try LabeledDataset(bytes: bytes, sampleShape: sampleShape, labels: classLabels, classCount: classCount,
                                         table: (0..<256).map { Float($0) })
        default:
            let tensor = try readFloats(data.path, dataHeader)
            dataset = try LabeledDataset(inputs: tensor, labels: classLabels, classCount: classCount, sampleShape: sampleShape)
        }
        _ = n
        return TabularData(dataset: dataset, classNames: names, featureNames: nil, source: data.path)
    }

    static func classes(_ raw: [Int]) -> ([Int], [String]?) {
        if let lo = raw.min(), let hi = raw.max(), lo >= 0, hi < 1 << 20 {
            var present = [Bool](repeating: false, count: hi + 1)
            for v in raw { present[v] = true }
            if present.allSatisfy({ $0 }) { return (raw, nil) }
        }
        let values = Array(Set(raw)).sorted()
        let index = Dictionary(uniqueKeysWithValues: values.enumerated().map { ($0.element, $0.offset) })
        return (raw.map { index[$0]! }, values.map(String.init))
    }

    /// Parses the magic, version and header dictionary (`{'descr': '<f4', 'fortran_order': False, 'shape': (N, F), }`).
    static func header(of path: String, allowed: [Header.DType]) throws -> Header {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError.missingFile(path: path) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var prefix = [UInt8](repeating: 0, count: 12)
        let got = prefix.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 12) }
        guard got >= 10, prefix[0] == 0x93, Array(prefix[1..<6]) == Array("NUMPY".utf8) else {
            throw DataError.format(file: path, expected: "the NPY magic \\x93NUMPY", found: got < 6 ? "\(got) bytes" : "other bytes")
        }
        let major = prefix[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(prefix[8]) | Int(prefix[9]) << 8; headerStart = 10
        case 2, 3:
            guard got >= 12 else { throw DataError.format(file: path, expected: "a complete NPY preamble", found: "\(got) bytes") }
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
            headerStart = 12
        default:
            throw DataError.format(file: path, expected: "NPY format version 1, 2 or 3", found: "version \(major)")
        }
        guard headerLength > 0, headerLength < 1 << 20 else {
            throw DataError.format(file: path, expected: "an NPY header under 1 MiB", found: "\(headerLength) bytes")
        }
        var text = [UInt8](repeating: 0, count: headerLength)
        let read2 = text.withUnsafeMutableBytes { pread(fd, $0.baseAddress, headerLength, off_t(headerStart)) }
        guard read2 == headerLength else {
            throw DataError.format(file: path, expected: "an NPY header of \(headerLength) bytes", found: "\(Swift.max(read2, 0)) (truncated)")
        }
        let dictionary = String(decoding: text, as: UTF8.self)
        func value(_ key: String) -> Substring? {
            guard let k = dictionary.range(of: "'\(key)'") else { return nil }
            var rest = dictionary[k.upperBound...].drop { $0 == " " || $0 == ":" }
            if rest.first == "(" {
                guard let close = rest.firstIndex(of: ")") else { return nil }
                return rest[rest.startIndex...close]
            }
            rest = rest.prefix { $0 != "," && $0 != "}" }
            return rest
        }
        guard let descr = value("descr")?.trimmingCharacters(in: CharacterSet(charactersIn: "' ")),
              let fortran = value("fortran_order")?.trimmingCharacters(in: .whitespaces),
              let shapeText = value("shape") else {
            throw DataError.format(file: path, expected: "an NPY header with descr, fortran_order and shape", found: "'\(dictionary.trimmingCharacters(in: .whitespacesAndNewlines))'")
        }
        let normalised = descr == "<u1" ? "|u1" : descr
        guard let dtype = Header.DType(rawValue: normalised), allowed.contains(dtype) else {
            throw DataError.format(file: path, expected: "dtype \(allowed.map(\.rawValue).joined(separator: ", ")) (little-endian)", found: "'\(descr)'")
        }
        guard fortran == "False" else {
            throw DataError.format(file: path, expected: "C order (fortran_order False)", found: "fortran_order \(fortran)")
        }
        let dims = shapeText.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = dims.compactMap { Int($0) }
        guard shape.count == dims.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw DataError.format(file: path, expected: "a shape of non-negative integers", found: "\(shapeText)")
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p < 1 << 40 else { throw DataError.format(file: path, expected: "an array that fits in memory", found: "shape \(shape)") }
            count = p
        }
        let header = Header(dtype: dtype, shape: shape, dataOffset: headerStart + headerLength)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.intValue ?? 0
        guard size == header.dataOffset + count * header.elementSize else {
            throw DataError.format(file: path, expected: "\(header.dataOffset + count * header.elementSize) bytes for shape \(shape) of \(dtype.rawValue)",
                                   found: "\(size) bytes")
        }
        return header
    }

    /// Reads `count` bytes at `offset` into `destination`.
    static func readExactly(_ path: String, offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        while done < count {
            let n = pread(fd, destination + done, Swift.min(count - done, 1 << 26), off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DataError.io(file: path, reason: n == 0 ? "unexpected end of file" : String(cString: strerror(errno))) }
            done += n
        }
    }

    static func readBytes(_ path: String, _ header: Header) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: header.count)
        try bytes.withUnsafeMutableBytes { try readExactly(path, offset: header.dataOffset, count: header.count, into: $0.baseAddress!) }
        return bytes
    }

    /// float32 straight into the tensor; float64 and int64 converted a block at a time; non-finite values refused.
    static func readFloats(_ path: String, _ header: Header) throws -> Tensor {
        let count = header.count
        var problem: String? = nil
        let tensor = try Tensor(shape: header.shape) { out in
            guard let base = out.baseAddress else { return }
            switch header.dtype {
            case .float32:
                try readExactly(path, offset: header.dataOffset, count: count * 4, into: UnsafeMutableRawPointer(base))
            case .float64, .int64:
                let block = 1 << 16
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: block * 8, alignment: 8)
                defer { scratch.deallocate() }
                var start = 0
                while start < count {
                    let n = Swift.min(block, count - start)
                    try readExactly(path, offset: header.dataOffset + start * 8, count: n * 8, into: scratch)
                    if header.dtype == .float64 {
                        let d = scratch.assumingMemoryBound(to: Double.self)
                        for i in 0..<n { base[start + i] = Float(d[i]) }
                    } else {
                        let v = scratch.assumingMemoryBound(to: Int64.self)
                        for i in 0..<n { base[start + i] = Float(v[i]) }
                    }
                    start += n
                }
            default:
                problem = "a floating-point dtype"
            }
        }
        if let problem { throw DataError.format(file: path, expected: problem, found: header.dtype.rawValue) }
        if let bad = tensor.withUnsafeBufferPointer({ $0.firstIndex { !$0.isFinite } }) {
            let per = Swift.max(1, count / Swift.max(header.shape[0], 1))
            throw DataError.format(file: path, expected: "finite values", found: "\(tensor[flat: bad]) at row \(bad / per), column \(bad % per)")
        }
        return tensor
    }

    static func readIntegers(_ path: String, _ header: Header) throws -> [Int] {
        let n = header.count
        let size = n * header.elementSize
        var raw = [UInt8](repeating: 0, count: size)
        if size > 0 { try raw.withUnsafeMutableBytes { try readExactly(path, offset: header.dataOffset, count: size, into: $0.baseAddress!) } }
        return raw.withUnsafeBytes { b -> [Int] in
            switch header.dtype {
            case .int64: return (0..<n).map { Int(b.load(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .int32: return (0..<n).map { Int(b.load(fromByteOffset: $0 * 4, as: Int32.self)) }
            default: return (0..<n).map { Int(b[$0]) }
            }
        }
    }
}
