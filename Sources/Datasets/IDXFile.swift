import Foundation

/// An IDX file (the format of the MNIST distribution): a magic `0x00 0x00 <type> <rank>`, `rank` big-endian
/// UInt32 dimension sizes, then the elements in row-major order.
///
/// Only element type `0x08` (unsigned byte, the one MNIST uses) is supported; other types are rejected with a
/// clear error. Files may be raw or gzip-compressed (detected by the `0x1f 0x8b` magic).
public struct IDXFile: Equatable, Sendable {
    /// Element type code `0x08`: unsigned byte.
    public static let unsignedByte: UInt8 = 0x08

    /// The dimension sizes, outermost first (e.g. `[60000, 28, 28]` for MNIST training images).
    public let shape: [Int]
    /// The elements, row-major; `bytes.count == shape.reduce(1, *)`.
    public let bytes: [UInt8]
    /// The element type code (always `0x08` today).
    public let elementType: UInt8

    /// The 32-bit magic number, e.g. `0x00000803` for a rank-3 unsigned-byte file.
    public var magic: UInt32 { UInt32(elementType) << 8 | UInt32(shape.count) }

    /// Creates an unsigned-byte IDX value; `bytes.count` must equal the product of `shape`.
    public init(shape: [Int], bytes: [UInt8]) throws {
        guard shape.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }), (1...255).contains(shape.count) else {
            throw DataError.invalidArgument(context: "IDXFile", expected: "1 to 255 dimensions each in 0...2^32-1", found: "shape \(shape)")
        }
        var total = 1
        for size in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow else {
                throw DataError.invalidArgument(context: "IDXFile", expected: "a shape with fewer than Int.max elements", found: "shape \(shape)")
            }
            total = product
        }
        guard total == bytes.count else {
            throw DataError.invalidArgument(context: "IDXFile", expected: "\(total) bytes for shape \(shape)", found: "\(bytes.count)")
        }
        self.shape = shape
        self.bytes = bytes
        self.elementType = Self.unsignedByte
    }

    init(validatedShape: [Int], bytes: [UInt8]) {
        self.shape = validatedShape
        self.bytes = bytes
        self.elementType = Self.unsignedByte
    }

    /// Reads an IDX file, raw or gzip-compressed.
    ///
    /// - Parameter maximumBytes: the largest file (and, for gzip, decompressed stream) accepted; 1 GiB by default.
    /// - Throws: `DataError` for a missing file, a bad gzip stream, a bad header, an unsupported element type, or a
    ///   size that disagrees with the header (truncated or trailing bytes).
    public static func read(_ url: URL, maximumBytes: Int = 1 << 30) throws -> IDXFile {
        let raw = try DataFile.read(url, maximumBytes: maximumBytes)
        return try parse(raw, file: url.lastPathComponent, maximumBytes: maximumBytes)
    }

    /// Parses IDX content (raw or gzip); `file` names the source in error messages.
    public static func parse(_ content: [UInt8], file: String, maximumBytes: Int = 1 << 30) throws -> IDXFile {
        if Gzip.isGzip(content) {
            let inflated = try Gzip.decompress(content, file: file, maximumBytes: maximumBytes)
            return try parseRaw(consume inflated, file: file)
        }
        return try parseRaw(content, file: file)
    }

    /// Parses uncompressed IDX bytes. Sizes are validated against the byte count before anything is allocated.
    ///
    /// `data` becomes the elements' storage: when the caller hands over the only reference (as `parse` does with
    /// the decompressed stream) the header is removed in place, so the elements are not copied.
    static func parseRaw(_ data: consuming [UInt8], file: String) throws -> IDXFile {
        guard data.count >= 4 else {
            throw DataError.format(file: file, expected: "an IDX header of at least 4 bytes", found: "\(data.count) bytes")
        }
        let magic = readUInt32(data, at: 0)
        guard data[0] == 0, data[1] == 0 else {
            throw DataError.format(file: file, expected: "IDX magic 0x0000TTRR (two zero bytes, type, rank)",
                                   found: String(format: "0x%08X", magic))
        }
        guard data[2] == unsignedByte else {
            throw DataError.format(file: file, expected: "IDX element type 0x08 (unsigned byte)",
                                   found: String(format: "0x%02X", data[2]) + " (\(typeName(data[2]))) in magic " + String(format: "0x%08X", magic))
        }
        let rank = Int(data[3])
        guard rank >= 1 else {
            throw DataError.format(file: file, expected: "at least one IDX dimension", found: "rank 0 (magic \(String(format: "0x%08X", magic)))")
        }
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else {
            throw DataError.format(file: file, expected: "a \(headerSize)-byte header for \(rank) dimensions", found: "\(data.count) bytes (truncated)")
        }
        var shape: [Int] = []
        var total = 1
        var overflow = false
        for d in 0..<rank {
            let size = Int(readUInt32(data, at: 4 + 4 * d))
            shape.append(size)
            if !overflow {
                let (product, didOverflow) = total.multipliedReportingOverflow(by: size)
                overflow = didOverflow
                total = product
            }
        }
        let available = data.count - headerSize
        if overflow || total > available {
            throw DataError.format(file: file, expected: "\(overflow ? "more than Int.max" : String(total)) data bytes for shape \(shape)",
                                   found: "\(available) (truncated or absurd header)")
        }
        if total < available {
            throw DataError.format(file: file, expected: "\(total) data bytes for shape \(shape)",
                                   found: "\(available) (\(available - total) bytes of trailing garbage)")
        }
        var elements = consume data
        elements.removeSubrange(0..<headerSize)
        return IDXFile(validatedShape: shape, bytes: elements)
    }

    static func readUInt32(_ data: [UInt8], at offset: Int) -> UInt32 {
        UInt32(data[offset]) << 24 | UInt32(data[offset + 1]) << 16 | UInt32(data[offset + 2]) << 8 | UInt32(data[offset + 3])
    }

    static func typeName(_ code: UInt8) -> String {
        switch code {
        case 0x08: return "unsigned byte"
        case 0x09: return "signed byte"
        case 0x0B: return "int16"
        case 0x0C: return "int32"
        case 0x0D: return "float32"
        case 0x0E: return "float64"
        default: return "unknown type"
        }
    }

    /// Serialises this value as raw (uncompressed) IDX bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, elementType, UInt8(shape.count)]
        out.reserveCapacity(4 + 4 * shape.count + bytes.count)
        for size in shape {
            let v = UInt32(size)
            out += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
        }
        out += bytes
        return out
    }
}
