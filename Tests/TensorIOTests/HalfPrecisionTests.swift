import XCTest
import TensorIO

final class HalfPrecisionTests: XCTestCase {
    func testKnownValues() {
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3C00), (-2, 0xC000), (0.5, 0x3800),
            (65504, 0x7BFF),  // largest finite
            (6.1035156e-05, 0x0400),  // smallest normal
            (5.9604645e-08, 0x0001),  // smallest subnormal
            (6.0975552e-05, 0x03FF),  // largest subnormal
            (.infinity, 0x7C00), (-.infinity, 0xFC00),
        ]
        for (value, bits) in cases {
            XCTAssertEqual(HalfPrecision.float16Bits(from: value), bits, "\(value)")
            XCTAssertEqual(HalfPrecision.float(fromFloat16Bits: bits).bitPattern, value.bitPattern, "\(bits)")
        }
    }

    func testRounding() {
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1.0 / 3.0), 0x3555)
        XCTAssertEqual(HalfPrecision.float16Bits(from: 65519), 0x7BFF)  // below the halfway point to 65536
        XCTAssertEqual(HalfPrecision.float16Bits(from: 65520), 0x7C00)  // halfway: ties to even -> infinity
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1e10), 0x7C00)
        // Ties to even between 1 and 1 + 2^-10.
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1 + 0x1p-11), 0x3C00)
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1 + 3 * 0x1p-11), 0x3C02)
        XCTAssertEqual(HalfPrecision.float16Bits(from: 1 + 0x1p-11 + 0x1p-20), 0x3C01)
        // Subnormal rounding: 2^-25 is a tie between 0 and the smallest subnormal -> 0; just above -> 1.
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1p-25), 0x0000)
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1.000002p-25), 0x0001)
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1.8p-24), 0x0002)  // 1.5 units -> ties to even 2
        XCTAssertEqual(HalfPrecision.float16Bits(from: -0x1p-30), 0x8000)
        // Rounding the largest subnormal up carries into the smallest normal.
        XCTAssertEqual(HalfPrecision.float16Bits(from: 0x1.FFFp-15), 0x0400)
    }

    func testNaN() {
        let bits = HalfPrecision.float16Bits(from: .nan)
        XCTAssertEqual(bits & 0x7C00, 0x7C00)
        XCTAssertNotEqual(bits & 0x03FF, 0)
        XCTAssertTrue(HalfPrecision.float(fromFloat16Bits: 0x7E00).isNaN)
        XCTAssertTrue(HalfPrecision.float(fromFloat16Bits: 0xFC01).isNaN)
        // A signalling float NaN whose payload sits only in the low bits must stay NaN.
        XCTAssertTrue(HalfPrecision.float(fromFloat16Bits: HalfPrecision.float16Bits(from: Float(bitPattern: 0x7F80_0001))).isNaN)
        XCTAssertTrue(HalfPrecision.float(fromBFloat16Bits: HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x7F80_0001))).isNaN)
    }

    func testAllHalfValuesRoundTrip() {
        for bits in UInt16.min...UInt16.max {
            let f = HalfPrecision.float(fromFloat16Bits: bits)
            if f.isNaN { continue }
            XCTAssertEqual(HalfPrecision.float16Bits(from: f), bits)
        }
    }

    func testBFloat16() {
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: 1), 0x3F80)
        XCTAssertEqual(HalfPrecision.float(fromBFloat16Bits: 0xC040), -3)
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie -> even
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie -> even
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(HalfPrecision.bfloat16Bits(from: .greatestFiniteMagnitude), 0x7F80)  // overflows to inf
    }
}
