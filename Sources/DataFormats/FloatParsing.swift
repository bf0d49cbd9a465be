#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decimal text to the correctly rounded Float32, fast for the common forms.
///
/// `[+-]digits[.digits][(e|E)[+-]digits]` with surrounding spaces. A mantissa of at most 19 digits below 2^53 and a
/// decimal exponent within ±22 is converted in Double arithmetic, which is exact up to one rounding (both operands
/// are exact doubles); the Double is then rounded to Float. That second rounding can differ from a direct one only
/// when the Double lies exactly halfway between two Floats, so those values, subnormals and every other form
/// (`inf`, `nan`, long mantissas, large exponents) go to the C library's `strtof`, which rounds correctly.
enum FloatParsing {
    static let powersOfTen: [Double] = (0...22).map { Double("1e\($0)")! }

    /// The value of `count` bytes at `p`, or nil when they are not one number (an empty field is not a number).
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ count: Int) -> Float? {
        var i = 0
        while i < count && (p[i] == 32 || p[i] == 9) { i += 1 }
        var end = count
        while end > i && (p[end - 1] == 32 || p[end - 1] == 9 || p[end - 1] == 13) { end -= 1 }
        guard end > i else { return nil }
        let start = i
        var negative = false
        if p[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if p[i] == UInt8(ascii: "+") { i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0, significant = 0, exponent = 0
        while i < end, p[i] &- 48 < 10 {
            if significant > 0 || p[i] != 48 { significant += 1 }
            if significant <= 19 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48) } else { exponent += 1 }
            digits += 1; i += 1
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, p[i] &- 48 < 10 {
                if significant > 0 || p[i] != 48 { significant += 1 }
                if significant <= 19 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48); exponent -= 1 }
                digits += 1; i += 1
            }
        }
        guard digits > 0 else { return slow(p + start, end - start) }
        if i < end && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            var expNegative = false
            if i < end && p[i] == UInt8(ascii: "-") { expNegative = true; i += 1 } else if i < end && p[i] == UInt8(ascii: "+") { i += 1 }
            var e = 0, expDigits = 0
            while i < end, p[i] &- 48 < 10 {
                if e < 100_000 { e = e * 10 + Int(p[i] &- 48) }
                expDigits += 1; i += 1
            }
            guard expDigits > 0 else { return nil }
            exponent += expNegative ? -e : e
        }
        guard i == end else { return nil }
        if mantissa == 0 { return negative ? -0.0 : 0 }
        guard significant <= 19, mantissa < (1 << 53), exponent >= -22, exponent <= 22 else { return slow(p + start, end - start) }
        var d = Double(mantissa)
        d = exponent < 0 ? d / powersOfTen[-exponent] : d * powersOfTen[exponent]
        // A Double exactly halfway between two Floats (its 29 bits below Float's precision are 1000...0) may have
        // been rounded there from either side; and subnormal Floats round at another bit.
        guard d.bitPattern & 0x1FFF_FFFF != 0x1000_0000, d >= Double(Float.leastNormalMagnitude) else {
            return slow(p + start, end - start)
        }
        let f = Float(d)
        guard f.isFinite else { return nil }
        return negative ? -f : f
    }

    /// `strtof` on the field (NUL-terminated copy); nil unless it consumes all of it and the value is finite.
    static func slow(_ p: UnsafePointer<UInt8>, _ count: Int) -> Float? {
        guard count > 0, count < 4096 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer -> Float? in
            for k in 0..<count { buffer[k] = CChar(bitPattern: p[k]) }
            buffer[count] = 0
            var endPointer: UnsafeMutablePointer<CChar>? = nil
            let value = strtof(buffer.baseAddress!, &endPointer)
            guard let endPointer, buffer.baseAddress!.distance(to: endPointer) == count, value.isFinite else { return nil }
            return value
        }
    }

    /// Convenience for tests and small inputs.
    static func parse(_ bytes: ArraySlice<UInt8>) -> Float? {
        bytes.withUnsafeBufferPointer { b in b.baseAddress.flatMap { parse($0, b.count) } }
    }

    /// A whole number (optional sign, digits, surrounding spaces), or nil.
    @inline(__always)
    static func parseInteger(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        var i = 0, end = count
        while i < end && (p[i] == 32 || p[i] == 9) { i += 1 }
        while end > i && (p[end - 1] == 32 || p[end - 1] == 9 || p[end - 1] == 13) { end -= 1 }
        guard end > i else { return nil }
        var negative = false
        if p[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if p[i] == UInt8(ascii: "+") { i += 1 }
        guard i < end, end - i <= 15 else { return nil }
        var v = 0
        while i < end {
            let d = p[i] &- 48
            guard d < 10 else { return nil }
            v = v * 10 + Int(d)
            i += 1
        }
        return negative ? -v : v
    }
}
