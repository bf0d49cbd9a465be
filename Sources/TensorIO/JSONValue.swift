/// A parsed JSON value as produced by ``StrictJSONParser``: objects keep their key order and numbers keep their
/// source text, so the safetensors reader can report exactly what it found.
enum JSONValue: Equatable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// A short description of the value for error messages (e.g. `string "abc"`, `array of 3`).
    var summary: String {
        switch self {
        case .object(let members): return "object with \(members.count) keys"
        case .array(let items): return "array of \(items.count)"
        case .string(let s): return "string \"\(JSONValue.clip(s))\""
        case .number(let text): return "number \(JSONValue.clip(text))"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }

    /// The value as a non-negative `Int` if it is an integer literal that fits, else nil.
    var nonNegativeInt: Int? {
        guard case .number(let text) = self, let value = Int(text), value >= 0 else { return nil }
        return value
    }

    static func clip(_ s: String, limit: Int = 40) -> String {
        let escaped = s.unicodeScalars.map { $0.value < 0x20 ? "?" : String($0) }.joined()
        return escaped.count <= limit ? escaped : String(escaped.prefix(limit)) + "..."
    }
}
