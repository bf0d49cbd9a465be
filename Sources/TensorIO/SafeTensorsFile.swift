import Foundation
import TensorCore

/// A validated safetensors file held in memory; produced by ``SafeTensors/read(url:)`` or
/// ``SafeTensors/read(data:source:)``.
public struct SafeTensorsFile {
    /// The file path or in-memory source name used in errors.
    public let source: String
    /// The `"__metadata__"` object (empty if absent).
    public let metadata: [String: String]
    /// Tensor names in data-offset order.
    public let names: [String]
    private let infos: [String: SafeTensorInfo]
    private let data: Data
    private let dataStart: Int

    init(data: Data, source: String) throws {
        self.source = source
        func fail(_ reason: String) -> TensorIOError { TensorIOError(file: source, reason: reason) }
        let total = data.count
        guard total >= 8 else { throw fail("file is \(total) bytes, expected at least 8 (the header length field)") }
        let declared = data.withUnsafeBytes { SafeTensorsFile.load($0, at: 0, bytes: 8) }
        guard declared <= UInt64(SafeTensors.maxHeaderLength) else {
            throw fail("header length \(declared) exceeds the limit of \(SafeTensors.maxHeaderLength) bytes")
        }
        let headerLength = Int(declared)
        guard headerLength <= total - 8 else {
            throw fail("header length \(headerLength) exceeds the \(total - 8) bytes after the 8-byte length field")
        }
        let headerBytes = data.withUnsafeBytes { Array($0[8..<(8 + headerLength)]) }
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail("header is not valid UTF-8")
        }
        let json: JSONValue
        do {
            json = try StrictJSONParser.parse(headerBytes)
        } catch let failure as StrictJSONParser.Failure {
            throw fail("invalid header JSON at byte \(8 + failure.offset): \(failure.reason)")
        }
        guard case .object(let members) = json else { throw fail("header must be a JSON object, found \(json.summary)") }

        let dataLength = total - 8 - headerLength
        var metadata: [String: String] = [:]
        var infos: [String: SafeTensorInfo] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw fail("\"__metadata__\" must be an object, found \(value.summary)") }
                for (key, item) in pairs {
                    guard case .string(let s) = item else {
                        throw fail("metadata \"\(JSONValue.clip(key))\" must be a string, found \(item.summary)")
                    }
                    metadata[key] = s
                }
                continue
            }
            infos[name] = try SafeTensorsFile.parseInfo(name: name, value, dataLength: dataLength, fail: fail)
        }

        let ordered = infos.sorted {
            ($0.value.dataOffsets.lowerBound, $0.value.dataOffsets.upperBound) < ($1.value.dataOffsets.lowerBound, $1.value.dataOffsets.upperBound)
                || ($0.value.dataOffsets == $1.value.dataOffsets && $0.key.utf8.lexicographicallyPrecedes($1.key.utf8))
        }
        var expectedBegin = 0
        for (name, info) in ordered {
            let range = info.dataOffsets
            if range.lowerBound != expectedBegin {
                let what = range.lowerBound > expectedBegin ? "a gap" : "an overlap"
                throw fail("tensor \"\(JSONValue.clip(name))\" data_offsets start at \(range.lowerBound), expected \(expectedBegin) (\(what) in the data region)")
            }
            expectedBegin = range.upperBound
        }
        guard expectedBegin == dataLength else {
            throw fail("tensors cover \(expectedBegin) bytes of data, but the data region after the header is \(dataLength) bytes")
        }
        self.metadata = metadata
        self.infos = infos
        self.names = ordered.map(\.key)
        self.data = data
        self.dataStart = 8 + headerLength
    }

    private static func parseInfo(name: String, _ value: JSONValue, dataLength: Int, fail: (String) -> TensorIOError) throws -> SafeTensorInfo {
        let label = "tensor \"\(JSONValue.clip(name))\""
        guard case .object(let fields) = value else { throw fail("\(label) must be an object, found \(value.summary)") }
        var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
        for (key, field) in fields {
            switch key {
            case "dtype": dtypeValue = field
            case "shape": shapeValue = field
            case "data_offsets": offsetsValue = field
            default: throw fail("\(label) has unexpected field \"\(JSONValue.clip(key))\"; expected dtype, shape, data_offsets")
            }
        }
        guard let dtypeValue, let shapeValue, let offsetsValue else {
            let missing = [("dtype", dtypeValue), ("shape", shapeValue), ("data_offsets", offsetsValue)].filter { $0.1 == nil }.map(\.0)
            throw fail("\(label) is missing \(missing.joined(separator: ", "))")
        }
        guard case .string(let dtypeName) = dtypeValue else { throw fail("\(label) dtype must be a string, found \(dtypeValue.summary)") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw fail("\(label) has unsupported dtype \"\(JSONValue.clip(dtypeName))\"; expected one of \(DType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard case .array(let dims) = shapeValue else { throw fail("\(label) shape must be an array, found \(shapeValue.summary)") }
        var shape: [Int] = []
        var byteCount = dtype.byteSize
        for dim in dims {
            guard let d = dim.nonNegativeInt else { throw fail("\(label) shape entries must be non-negative integers, found \(dim.summary)") }
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: d)
            if overflow { throw fail("\(label) shape \(dims.map { $0.nonNegativeInt.map(String.init) ?? "?" }) is too large (byte size overflows)") }
            byteCount = product
            shape.append(d)
        }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw fail("\(label) data_offsets must be an array of 2 integers, found \(offsetsValue.summary)")
        }
        guard let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt else {
            throw fail("\(label) data_offsets must be non-negative integers, found [\(offsets[0].summary), \(offsets[1].summary)]")
        }
        guard begin <= end else { throw fail("\(label) data_offsets [\(begin), \(end)] are reversed") }
        guard end <= dataLength else {
            throw fail("\(label) data_offsets end \(end) exceeds the \(dataLength)-byte data region")
        }
        guard end - begin == byteCount else {
            throw fail("\(label) data_offsets [\(begin), \(end)] span \(end - begin) bytes, expected \(byteCount) for \(dtype.rawValue) shape \(shape)")
        }
        return SafeTensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// The dtype, shape and offsets of tensor `name`.
    public func info(named name: String) throws -> SafeTensorInfo {
        guard let info = infos[name] else {
            throw TensorIOError(file: source, reason: "no tensor named \"\(JSONValue.clip(name))\"; found \(names.count) tensors: \(JSONValue.clip(names.joined(separator: ", "), limit: 200))")
        }
        return info
    }

    /// The raw little-endian bytes of tensor `name`.
    public func rawBytes(named name: String) throws -> Data {
        let info = try info(named: name)
        return data.withUnsafeBytes { Data($0[(dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)]) }
    }

    /// Tensor `name` converted to Float32 (F16/BF16 widen exactly; F64 and 64/32-bit integers round to nearest;
    /// BOOL gives 0 or 1).
    public func tensor(named name: String) throws -> Tensor {
        let info = try info(named: name)
        let count = info.elementCount
        return data.withUnsafeBytes { raw in
            let base = dataStart + info.dataOffsets.lowerBound
            return Tensor(shape: info.shape) { out in
                for i in 0..<count { out[i] = SafeTensorsFile.float(raw, at: base + i * info.dtype.byteSize, info.dtype) }
            }
        }
    }

    /// Integer tensor `name` (I64, I32, I16, I8, U64, U32, U16, U8 or BOOL) as `Int`s, row-major.
    public func integers(named name: String) throws -> [Int] {
        let info = try info(named: name)
        guard info.dtype.isInteger else {
            throw TensorIOError(file: source, reason: "tensor \"\(JSONValue.clip(name))\" has dtype \(info.dtype.rawValue), expected an integer dtype")
        }
        let size = info.dtype.byteSize
        return try data.withUnsafeBytes { raw in
            let base = dataStart + info.dataOffsets.lowerBound
            return try (0..<info.elementCount).map { i in
                let bits = SafeTensorsFile.load(raw, at: base + i * size, bytes: size)
                switch info.dtype {
                case .i64: return Int(Int64(bitPattern: bits))
                case .i32: return Int(Int32(truncatingIfNeeded: bits))
                case .i16: return Int(Int16(truncatingIfNeeded: bits))
                case .i8: return Int(Int8(truncatingIfNeeded: bits))
                case .bool: return bits == 0 ? 0 : 1
                default:
                    guard let v = Int(exactly: bits) else {
                        throw TensorIOError(file: source, reason: "tensor \"\(JSONValue.clip(name))\" element \(i) is \(bits), larger than Int.max")
                    }
                    return v
                }
            }
        }
    }

    @inline(__always)
    static func load(_ raw: UnsafeRawBufferPointer, at offset: Int, bytes: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<bytes { v |= UInt64(raw[offset + i]) << (8 * UInt64(i)) }
        return v
    }

    @inline(__always)
    static func float(_ raw: UnsafeRawBufferPointer, at offset: Int, _ dtype: DType) -> Float {
        let bits = load(raw, at: offset, bytes: dtype.byteSize)
        switch dtype {
        case .f32: return Float(bitPattern: UInt32(truncatingIfNeeded: bits))
        case .f16: return HalfPrecision.float(fromFloat16Bits: UInt16(truncatingIfNeeded: bits))
        case .bf16: return HalfPrecision.float(fromBFloat16Bits: UInt16(truncatingIfNeeded: bits))
        case .f64: return Float(Double(bitPattern: bits))
        case .i64: return Float(Int64(bitPattern: bits))
        case .i32: return Float(Int32(truncatingIfNeeded: bits))
        case .i16: return Float(Int16(truncatingIfNeeded: bits))
        case .i8: return Float(Int8(truncatingIfNeeded: bits))
        case .u64, .u32, .u16, .u8: return Float(bits)
        case .bool: return bits == 0 ? 0 : 1
        }
    }
}
