/// Bit-exact conversions between `Float` and the 16-bit formats IEEE binary16 (F16) and bfloat16 (BF16).
///
/// Implemented with integer bit manipulation so they behave identically on every platform (Swift's `Float16` type
/// is not available everywhere). Narrowing rounds to nearest, ties to even; subnormals, infinities and NaN are
/// handled (NaN stays NaN, quieted). Widening is exact.
public enum HalfPrecision {
    /// The binary16 bit pattern nearest to `value` (round to nearest, ties to even; overflow gives infinity).
    public static func float16Bits(from value: Float) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let exponent = Int((x >> 23) & 0xFF)
        let mantissa = x & 0x7F_FFFF
        if exponent == 0xFF {
            if mantissa == 0 { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)  // quiet NaN, keep payload top bits
        }
        let e = exponent - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            // Result is subnormal (or zero): value = m * 2^(e - 14) half-subnormal units of 2^-24.
            if e < -10 { return sign }
            let m = mantissa | 0x80_0000
            let shift = UInt32(14 - e)  // 14...24
            var h = m >> shift
            let remainder = m & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && h & 1 == 1) { h += 1 }
            return sign | UInt16(truncatingIfNeeded: h)
        }
        var h = (UInt32(e) << 10) | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && h & 1 == 1) { h += 1 }  // a carry may yield infinity
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// The `Float` with the value of the binary16 bit pattern `bits` (exact).
    public static func float(fromFloat16Bits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24  // exact: zero or subnormal
            return Float(bitPattern: magnitude.bitPattern | sign)
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// The bfloat16 bit pattern nearest to `value` (round to nearest, ties to even; NaN stays a quiet NaN).
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let x = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: x >> 16) | 0x0040 }
        let rounded = x &+ 0x7FFF &+ ((x >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// The `Float` with the value of the bfloat16 bit pattern `bits` (exact).
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
