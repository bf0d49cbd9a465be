import CZlib

/// Gzip decompression through the system zlib.
///
/// Handles multi-member streams (concatenated gzip members, as `cat a.gz b.gz` produces), reports truncated or
/// corrupt input as `DataError.format`, and never produces more than a caller-given number of bytes, so a
/// "zip bomb" cannot make it allocate unbounded memory.
public enum Gzip {
    /// Whether `bytes` starts with the gzip magic `0x1f 0x8b`.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// Decompresses every gzip member in `bytes` and returns the concatenated output.
    ///
    /// - Parameters:
    ///   - bytes: the compressed file content (must start with a gzip member).
    ///   - file: the name used in error messages.
    ///   - maximumBytes: the most output bytes accepted; more is an error (thrown before it is allocated).
    /// - Throws: `DataError.format` on a truncated stream, corrupt data, bytes after the last member that are not
    ///   another gzip member, or output larger than `maximumBytes`.
    public static func decompress(_ bytes: [UInt8], file: String, maximumBytes: Int) throws -> [UInt8] {
        let maximumBytes = Swift.max(0, maximumBytes)
        guard isGzip(bytes) else {
            throw DataError.format(file: file, expected: "gzip magic 0x1f8b", found: magicDescription(bytes))
        }
        guard bytes.count <= Int(UInt32.max) else {
            throw DataError.format(file: file, expected: "a compressed file under 4 GiB", found: "\(bytes.count) bytes")
        }
        var stream = z_stream()
        let status = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            throw DataError.io(file: file, reason: "zlib inflateInit2 failed with status \(status)")
        }
        defer { inflateEnd(&stream) }

        let chunkSize = 1 << 18
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        var output: [UInt8] = []
        output.reserveCapacity(expectedSize(bytes, maximumBytes: maximumBytes))

        try bytes.withUnsafeBufferPointer { input in
            guard let base = input.baseAddress else { return }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(input.count)
            var member = 1
            while true {
                stream.next_out = chunk
                stream.avail_out = uInt(chunkSize)
                let result = inflate(&stream, Z_NO_FLUSH)
                let produced = chunkSize - Int(stream.avail_out)
                if produced > maximumBytes - output.count {
                    throw DataError.format(file: file, expected: "at most \(maximumBytes) decompressed bytes",
                                           found: "more (decompression stopped at \(output.count + produced) bytes)")
                }
                output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
                switch result {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let remaining = Int(stream.avail_in)
                    if remaining == 0 { return }
                    let consumed = input.count - remaining
                    guard remaining >= 2, input[consumed] == 0x1f, input[consumed + 1] == 0x8b else {
                        throw DataError.format(file: file, expected: "end of file or another gzip member after member \(member)",
                                               found: "\(remaining) trailing bytes at offset \(consumed)")
                    }
                    member += 1
                    guard inflateReset(&stream) == Z_OK else {
                        throw DataError.io(file: file, reason: "zlib inflateReset failed")
                    }
                case Z_BUF_ERROR:
                    throw DataError.format(file: file, expected: "a complete gzip stream",
                                           found: "truncated data (input ended inside member \(member) after \(output.count) output bytes)")
                case Z_MEM_ERROR:
                    throw DataError.io(file: file, reason: "zlib ran out of memory")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(result)"
                    throw DataError.format(file: file, expected: "valid gzip data", found: "corrupt data in member \(member) (\(message))")
                }
            }
        }
        return output
    }

    /// The capacity to reserve for the output: the last member's ISIZE trailer (the uncompressed size modulo 2^32,
    /// exact for the usual single-member file, so the output is allocated once and never regrown), capped at
    /// `maximumBytes` and at deflate's largest ratio (1032:1) since the trailer is not yet verified; without a
    /// plausible trailer, four times the input. The output still grows as needed when this is too small.
    static func expectedSize(_ bytes: [UInt8], maximumBytes: Int) -> Int {
        let fallback = min(maximumBytes, max(bytes.count * 4, 1024))
        guard bytes.count >= 18 else { return fallback }  // a 10-byte header, an empty deflate block, the 8-byte trailer
        let n = bytes.count
        let trailer = Int(UInt32(bytes[n - 4]) | UInt32(bytes[n - 3]) << 8 | UInt32(bytes[n - 2]) << 16 | UInt32(bytes[n - 1]) << 24)
        let (bound, overflow) = bytes.count.multipliedReportingOverflow(by: 1032)
        guard trailer > 0, overflow || trailer <= bound else { return fallback }
        return min(maximumBytes, trailer)
    }

    /// The first four bytes of `bytes` as hex, for error messages.
    static func magicDescription(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "an empty file" }
        return "0x" + bytes.prefix(4).map { hex2($0) }.joined()
    }

    static func hex2(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
