import Foundation
import TensorCore

/// Reading and writing the Hugging Face safetensors format.
///
/// Layout: an 8-byte little-endian `UInt64` header length `N`; `N` bytes of UTF-8 JSON mapping each tensor name to
/// `{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}` (offsets relative to the byte after the header),
/// plus an optional `"__metadata__"` object of string to string; then the little-endian, row-major tensor data.
///
/// The writer is deterministic: tensors are laid out by element size (largest first, so each is aligned) and then
/// by name; the header is compact JSON with `"__metadata__"` first (keys sorted) and is padded with spaces to a
/// multiple of 8 bytes. The reader treats input as hostile and validates everything (see
/// ``read(data:source:)``).
public enum SafeTensors {
    /// Headers larger than this are rejected before anything is allocated for them (the reference limit).
    public static let maxHeaderLength = 100_000_000

    // MARK: Writing

    /// Writes `entries` and `metadata` to `url` atomically (see ``AtomicFile``).
    ///
    /// - Throws: ``TensorIOError`` for duplicate or reserved names, unsupported dtypes, integers that do not fit,
    ///   an existing target when `overwrite` is false (`"<path> exists; not overwritten (overwriting was not allowed)"`), or I/O failure.
    public static func write(_ entries: [SafeTensorsEntry], metadata: [String: String] = [:], to url: URL, overwrite: Bool) throws {
        let data = try serialize(entries, metadata: metadata, source: url.path)
        try AtomicFile.write(data: data, to: url, overwrite: overwrite)
    }

    /// Writes float tensors, each stored with its own dtype (`.f32`, `.f16`, `.bf16` or `.f64`), atomically.
    public static func write(tensors: [(name: String, tensor: Tensor, dtype: DType)], metadata: [String: String] = [:], to url: URL, overwrite: Bool) throws {
        try write(tensors.map { SafeTensorsEntry.tensor($0.name, $0.tensor, dtype: $0.dtype) }, metadata: metadata, to: url, overwrite: overwrite)
    }

    /// The complete file bytes for `entries` and `metadata`; `source` names the destination in errors.
    public static func serialize(_ entries: [SafeTensorsEntry], metadata: [String: String] = [:], source: String = "<memory>") throws -> Data {
        var seen = Set<String>()
        for entry in entries {
            if let reason = entry.validationFailure() { throw TensorIOError(file: source, reason: reason) }
            if !seen.insert(entry.name).inserted {
                throw TensorIOError(file: source, reason: "duplicate tensor name \"\(entry.name)\"")
            }
        }
        let ordered = entries.sorted {
            $0.dtype.layoutRank != $1.dtype.layoutRank ? $0.dtype.layoutRank < $1.dtype.layoutRank
                : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
        var body: [UInt8] = []
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            header += "\"__metadata__\":{" + pairs.map { jsonString($0.key) + ":" + jsonString($0.value) }.joined(separator: ",") + "}"
            first = false
        }
        for entry in ordered {
            let begin = body.count
            entry.encode(into: &body)
            let shape = entry.shape.map(String.init).joined(separator: ",")
            header += (first ? "" : ",") + jsonString(entry.name)
                + ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(body.count)]}"
            first = false
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        headerBytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8))
        var out = Data(capacity: 8 + headerBytes.count + body.count)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        out.append(contentsOf: body)
        return out
    }

    /// `s` as a JSON string literal, escaped like serde_json (short escapes, `\u00XX` for other controls, UTF-8 raw).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    // MARK: Reading

    /// Reads and validates the safetensors file at `url` (see ``read(data:source:)`` for what is checked).
    public static func read(url: URL) throws -> SafeTensorsFile {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw TensorIOError(file: url.path, reason: "cannot read file: \(reason)")
        }
        return try read(data: data, source: url.path)
    }

    /// Parses and validates safetensors bytes held in memory; `source` names them in errors.
    ///
    /// Checks: at least 8 bytes; header length at most ``maxHeaderLength`` and within the data; header is valid
    /// UTF-8 JSON (no duplicate keys) whose top level is an object; `"__metadata__"`, if present, maps strings to
    /// strings; every tensor entry is an object with exactly `dtype` (a known type), `shape` (non-negative integers
    /// whose product, in bytes, does not overflow) and `data_offsets` (`[begin, end]`, `begin <= end`,
    /// `end - begin` equal to the tensor's byte size); and the tensors tile the data region exactly, without gaps or
    /// overlap. Nothing is allocated from a header-declared size before it is checked against the input's size.
    public static func read(data: Data, source: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(data: data, source: source)
    }
}
