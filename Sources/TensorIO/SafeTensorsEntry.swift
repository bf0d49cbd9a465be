import TensorCore

/// One named array to be written by ``SafeTensors/write(_:metadata:to:overwrite:)``.
///
/// Float tensors are stored as `.f32`, `.f16`, `.bf16` or `.f64` (narrowing rounds to nearest, ties to even);
/// integer arrays (labels, indices) as `.i64`, `.i32` or `.u8`.
public struct SafeTensorsEntry {
    /// What an entry holds.
    public enum Payload {
        /// Float32 values, converted to the entry's float dtype on write.
        case floats(Tensor)
        /// Row-major integers with their shape, stored in the entry's integer dtype.
        case integers([Int], shape: [Int])
    }

    /// The tensor's name in the header (any string except `"__metadata__"`).
    public let name: String
    /// The storage dtype.
    public let dtype: DType
    /// The values.
    public let payload: Payload

    /// The shape recorded in the header.
    public var shape: [Int] {
        switch payload {
        case .floats(let t): return t.shape
        case .integers(_, let shape): return shape
        }
    }

    /// A float tensor stored as `dtype` (`.f32` by default; also `.f16`, `.bf16`, `.f64`).
    public static func tensor(_ name: String, _ tensor: Tensor, dtype: DType = .f32) -> SafeTensorsEntry {
        SafeTensorsEntry(name: name, dtype: dtype, payload: .floats(tensor))
    }

    /// An integer array stored as `dtype` (`.i64` by default; also `.i32`, `.u8`). `shape` defaults to
    /// `[values.count]`; the write fails if its element count differs or a value does not fit the dtype.
    public static func integers(_ name: String, _ values: [Int], shape: [Int]? = nil, dtype: DType = .i64) -> SafeTensorsEntry {
        SafeTensorsEntry(name: name, dtype: dtype, payload: .integers(values, shape: shape ?? [values.count]))
    }

    /// Appends the little-endian encoding of the values to `out` (call `validationFailure()` first).
    func encode(into out: inout [UInt8]) {
        switch payload {
        case .floats(let t):
            t.withUnsafeBufferPointer { values in
                switch dtype {
                case .f32: for v in values { SafeTensorsEntry.append(UInt64(v.bitPattern), bytes: 4, to: &out) }
                case .f16: for v in values { SafeTensorsEntry.append(UInt64(HalfPrecision.float16Bits(from: v)), bytes: 2, to: &out) }
                case .bf16: for v in values { SafeTensorsEntry.append(UInt64(HalfPrecision.bfloat16Bits(from: v)), bytes: 2, to: &out) }
                case .f64: for v in values { SafeTensorsEntry.append(Double(v).bitPattern, bytes: 8, to: &out) }
                default: break  // rejected in validate()
                }
            }
        case .integers(let values, _):
            for v in values {
                switch dtype {
                case .i64: SafeTensorsEntry.append(UInt64(bitPattern: Int64(v)), bytes: 8, to: &out)
                case .i32: SafeTensorsEntry.append(UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: v))), bytes: 4, to: &out)
                case .u8: out.append(UInt8(truncatingIfNeeded: v))
                default: break  // rejected in validate()
                }
            }
        }
    }

    /// A reason the entry cannot be written, or nil.
    func validationFailure() -> String? {
        if name == "__metadata__" { return "tensor name \"__metadata__\" is reserved" }
        switch payload {
        case .floats:
            guard [.f32, .f16, .bf16, .f64].contains(dtype) else {
                return "tensor \"\(name)\": cannot write float data as \(dtype.rawValue); use F32, F16, BF16 or F64"
            }
        case .integers(let values, let shape):
            guard [.i64, .i32, .u8].contains(dtype) else {
                return "tensor \"\(name)\": cannot write integer data as \(dtype.rawValue); use I64, I32 or U8"
            }
            guard shape.allSatisfy({ $0 >= 0 }), let count = SafeTensorsEntry.elementCount(shape), count == values.count else {
                return "tensor \"\(name)\": shape \(shape) does not match \(values.count) values"
            }
            let range: ClosedRange<Int> = dtype == .u8 ? 0...255 : dtype == .i32 ? Int(Int32.min)...Int(Int32.max) : Int.min...Int.max
            if let bad = values.first(where: { !range.contains($0) }) {
                return "tensor \"\(name)\": value \(bad) does not fit \(dtype.rawValue)"
            }
        }
        return nil
    }

    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            count = p
        }
        return count
    }

    @inline(__always)
    static func append(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}
