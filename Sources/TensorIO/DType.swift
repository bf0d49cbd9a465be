/// A safetensors element type, named as in the file header (`"F32"`, `"I64"`, ...).
///
/// Every case can be read (converted to `Float` by ``SafeTensorsFile/tensor(named:)`` and, for integer and boolean
/// types, to `Int` by ``SafeTensorsFile/integers(named:)``). The writer accepts `.f32`, `.f16`, `.bf16` and `.f64`
/// for float tensors and `.i64`, `.i32` and `.u8` for integer arrays. Other safetensors dtypes (e.g. FP8 formats)
/// are rejected as unsupported.
public enum DType: String, CaseIterable, Sendable, Hashable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether the type holds integers (or booleans), readable with ``SafeTensorsFile/integers(named:)``.
    public var isInteger: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return false
        default: return true
        }
    }

    /// Order used by the writer to lay out tensors: larger elements first so every tensor is aligned to its
    /// element size (the header is padded to 8 bytes), then the reference implementation's dtype order.
    var layoutRank: Int {
        switch self {
        case .u64: return 0
        case .i64: return 1
        case .f64: return 2
        case .f32: return 3
        case .u32: return 4
        case .i32: return 5
        case .bf16: return 6
        case .f16: return 7
        case .u16: return 8
        case .i16: return 9
        case .i8: return 10
        case .u8: return 11
        case .bool: return 12
        }
    }
}
