/// A small, strict RFC 8259 JSON parser for safetensors headers.
///
/// Unlike `JSONSerialization` it rejects duplicate object keys (which would otherwise be silently merged), bounds
/// nesting depth and array length, rejects control characters and unpaired surrogates in strings, and reports the byte offset of
/// every problem. Surrounding whitespace (including the spec's space padding) is allowed.
struct StrictJSONParser {
    /// Why parsing failed and where (byte offset into the input).
    struct Failure: Error {
        let offset: Int
        let reason: String
    }

    static let maxDepth = 32
    /// Longest accepted array: safetensors arrays are shapes and offset pairs, and the cap keeps a hostile
    /// 100 MB header of `[0,0,0,...]` from expanding into gigabytes of parsed values.
    static let maxArrayLength = 1024

    private let bytes: [UInt8]
    private var position = 0

    /// Parses one complete JSON document from UTF-8 `bytes`.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var parser = StrictJSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position != bytes.count {
            throw Failure(offset: parser.position, reason: "expected end of JSON, found \(parser.describeCurrent())")
        }
        return value
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func describeCurrent() -> String {
        guard position < bytes.count else { return "end of input" }
        let b = bytes[position]
        return (0x21...0x7E).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16))"
    }

    private func fail(_ expected: String) -> Failure {
        Failure(offset: position, reason: "expected \(expected), found \(describeCurrent())")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard position < bytes.count else { throw fail("a JSON value") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        default: throw fail("a JSON value")
        }
    }

    private mutating func expectLiteral(_ literal: String) throws {
        for b in literal.utf8 {
            guard position < bytes.count, bytes[position] == b else { throw fail("'\(literal)'") }
            position += 1
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        if depth > StrictJSONParser.maxDepth { throw Failure(offset: position, reason: "JSON nested deeper than \(StrictJSONParser.maxDepth) levels") }
        position += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        var seen = Set<String>()
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("a string key") }
            let keyOffset = position
            let key = try parseString()
            if !seen.insert(key).inserted {
                throw Failure(offset: keyOffset, reason: "duplicate key \"\(JSONValue.clip(key))\"")
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("':'") }
            position += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth)))
            skipWhitespace()
            guard position < bytes.count else { throw fail("',' or '}'") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw fail("',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        if depth > StrictJSONParser.maxDepth { throw Failure(offset: position, reason: "JSON nested deeper than \(StrictJSONParser.maxDepth) levels") }
        position += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            if items.count == StrictJSONParser.maxArrayLength {
                throw Failure(offset: position, reason: "array longer than \(StrictJSONParser.maxArrayLength) elements")
            }
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < bytes.count else { throw fail("',' or ']'") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw fail("',' or ']'")
        }
    }

    private mutating func parseNumber() throws -> String {
        let start = position
        func digits() -> Int {
            let s = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            return position - s
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let intStart = position
        let intDigits = digits()
        if intDigits == 0 { throw fail("a digit") }
        if intDigits > 1, bytes[intStart] == UInt8(ascii: "0") { throw Failure(offset: intStart, reason: "number with a leading zero") }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            if digits() == 0 { throw fail("a digit after '.'") }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            if digits() == 0 { throw fail("a digit in the exponent") }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func parseHex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard position < bytes.count else { throw fail("4 hex digits after \\u") }
            let b = bytes[position]
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("a hex digit")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Parses a string starting at the opening quote. The input is assumed to be valid UTF-8 (checked by the caller).
    private mutating func parseString() throws -> String {
        position += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("closing '\"'") }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") { position += 1; break }
            if b < 0x20 { throw Failure(offset: position, reason: "unescaped control character 0x\(String(b, radix: 16)) in string") }
            if b != UInt8(ascii: "\\") { out.append(b); position += 1; continue }
            position += 1
            guard position < bytes.count else { throw fail("an escape character") }
            let e = bytes[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xDC00...0xDFFF).contains(scalar) { throw Failure(offset: position - 6, reason: "unpaired low surrogate in string") }
                if (0xD800...0xDBFF).contains(scalar) {
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                        throw Failure(offset: position, reason: "unpaired high surrogate in string")
                    }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw Failure(offset: position - 6, reason: "invalid low surrogate in string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw Failure(offset: position, reason: "invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                position -= 1
                throw fail("a valid escape character")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
