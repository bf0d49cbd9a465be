import Foundation
import XCTest
import Datasets

final class IDXTests: XCTestCase {
    let sample = try! IDXFile(shape: [3, 4, 5], bytes: (0..<60).map { UInt8($0 * 4) })

    func testRawAndGzipRoundTrip() throws {
        let dir = try TestSupport.temporaryDirectory(self)
        try TestSupport.write(sample.encoded(), dir, "a.idx")
        try TestSupport.write(TestSupport.gzip(sample.encoded()), dir, "a.idx.gz")
        XCTAssertEqual(try IDXFile.read(dir.appendingPathComponent("a.idx")), sample)
        let unzipped = try IDXFile.read(dir.appendingPathComponent("a.idx.gz"))
        XCTAssertEqual(unzipped, sample)
        XCTAssertEqual(unzipped.magic, 0x0000_0803)
        XCTAssertEqual(unzipped.shape, [3, 4, 5])
    }

    func testMultiMemberGzip() throws {
        let bytes = sample.encoded()
        let joined = TestSupport.gzip(Array(bytes[..<10])) + TestSupport.gzip(Array(bytes[10...]))
        XCTAssertEqual(try Gzip.decompress(joined, file: "m.gz", maximumBytes: 1000), bytes)
        XCTAssertEqual(try IDXFile.parse(joined, file: "m.gz"), sample)
    }

    /// The output is reserved once from the gzip size trailer (not regrown by doubling, which briefly held two
    /// copies of MNIST's 47 MB of images), and gzip IDX elements keep that buffer.
    func testGzipOutputIsSizedFromTheTrailer() throws {
        let elements = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 % 1000) * ($0 % 7)) }
        let idx = try IDXFile(shape: [1 << 10, 1 << 10], bytes: elements)
        let zipped = TestSupport.gzip(idx.encoded())
        XCTAssertGreaterThan(idx.encoded().count, zipped.count * 8, "compressible enough that the old 4x guess was too small")
        let inflated = try Gzip.decompress(zipped, file: "big.gz", maximumBytes: 1 << 30)
        XCTAssertEqual(inflated, idx.encoded())
        XCTAssertLessThan(inflated.capacity, inflated.count + inflated.count / 16)
        let parsed = try IDXFile.parse(zipped, file: "big.gz")
        XCTAssertEqual(parsed, idx)
        XCTAssertLessThan(parsed.bytes.capacity, parsed.bytes.count + parsed.bytes.count / 16)
        // A multi-member stream (the trailer is the last member's) still decompresses in full.
        let joined = TestSupport.gzip(Array(idx.encoded()[..<(1 << 19)])) + TestSupport.gzip(Array(idx.encoded()[(1 << 19)...]))
        XCTAssertEqual(try IDXFile.parse(joined, file: "m.gz"), idx)
    }

    func testTruncatedGzip() {
        let zipped = TestSupport.gzip(sample.encoded())
        for cut in [zipped.count - 1, zipped.count - 8, zipped.count / 2, 3] {
            let message = TestSupport.errorMessage { try IDXFile.parse(Array(zipped[..<cut]), file: "t.gz") }
            XCTAssertTrue(message.hasPrefix("t.gz: expected"), message)
            XCTAssertTrue(message.contains("truncated") || message.contains("corrupt"), message)
        }
    }

    func testCorruptGzip() {
        var zipped = TestSupport.gzip(sample.encoded())
        zipped[zipped.count - 6] ^= 0xff // CRC / length trailer
        let message = TestSupport.errorMessage { try IDXFile.parse(zipped, file: "c.gz") }
        XCTAssertTrue(message.contains("c.gz: expected valid gzip data, found corrupt data"), message)
        let garbage: [UInt8] = [0x1f, 0x8b, 0x08, 0x00] + [UInt8](repeating: 0xff, count: 40)
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.parse(garbage, file: "g.gz") }.hasPrefix("g.gz: expected"))
        let trailing = TestSupport.gzip([1, 2, 3]) + [9, 9, 9]
        let trailingMessage = TestSupport.errorMessage { try Gzip.decompress(trailing, file: "x.gz", maximumBytes: 100) }
        XCTAssertTrue(trailingMessage.contains("3 trailing bytes"), trailingMessage)
    }

    func testOutputCapStopsZipBomb() {
        let bomb = TestSupport.gzip([UInt8](repeating: 0, count: 8 << 20), level: 9)
        XCTAssertLessThan(bomb.count, 100_000)
        let message = TestSupport.errorMessage { try Gzip.decompress(bomb, file: "bomb.gz", maximumBytes: 1 << 20) }
        XCTAssertTrue(message.hasPrefix("bomb.gz: expected at most 1048576 decompressed bytes"), message)
    }

    func testHeaderErrors() {
        let wrongMagic = TestSupport.errorMessage { try IDXFile.parse([1, 0, 8, 1, 0, 0, 0, 0], file: "w") }
        XCTAssertEqual(wrongMagic, "w: expected IDX magic 0x0000TTRR (two zero bytes, type, rank), found 0x01000801")
        let float = TestSupport.errorMessage { try IDXFile.parse(TestSupport.idx(type: 0x0D, dims: [1], data: [0, 0, 0, 0]), file: "f") }
        XCTAssertEqual(float, "f: expected IDX element type 0x08 (unsigned byte), found 0x0D (float32) in magic 0x00000D01")
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.parse([0, 0], file: "s") }.hasPrefix("s: expected an IDX header"))
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.parse([], file: "e") }.hasPrefix("e: expected"))
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.parse([0, 0, 8, 0], file: "r") }.contains("rank 0"))
        let shortHeader = TestSupport.errorMessage { try IDXFile.parse([0, 0, 8, 3, 0, 0, 0, 1], file: "h") }
        XCTAssertEqual(shortHeader, "h: expected a 16-byte header for 3 dimensions, found 8 bytes (truncated)")
    }

    func testSizeMismatches() {
        let truncated = TestSupport.errorMessage { try IDXFile.parse(TestSupport.idx(dims: [2, 3], data: [1, 2, 3]), file: "t") }
        XCTAssertEqual(truncated, "t: expected 6 data bytes for shape [2, 3], found 3 (truncated or absurd header)")
        let trailing = TestSupport.errorMessage { try IDXFile.parse(TestSupport.idx(dims: [2], data: [1, 2, 3]), file: "g") }
        XCTAssertEqual(trailing, "g: expected 2 data bytes for shape [2], found 3 (1 bytes of trailing garbage)")
    }

    func testAbsurdDimensionsFailFastWithoutAllocating() throws {
        let huge = TestSupport.idx(dims: [0xFFFF_FFFF, 0xFFFF_FFFF], data: [UInt8](repeating: 7, count: 8))
        XCTAssertEqual(huge.count, 20)
        let start = Date()
        let message = TestSupport.errorMessage { try IDXFile.parse(huge, file: "huge") }
        XCTAssertTrue(message.contains("more than Int.max data bytes for shape [4294967295, 4294967295]"), message)
        let three = TestSupport.idx(dims: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: [])
        XCTAssertEqual(three.count, 16)
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.parse(TestSupport.gzip(three), file: "z") }.contains("absurd header"))
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
    }

    func testMissingFileAndDirectory() throws {
        let dir = try TestSupport.temporaryDirectory(self)
        let missing = dir.appendingPathComponent("nope.gz")
        XCTAssertEqual(TestSupport.errorMessage { try IDXFile.read(missing) },
                       "\(missing.path): expected an existing file, found none (missing file)")
        XCTAssertTrue(TestSupport.errorMessage { try IDXFile.read(dir) }.contains("expected a regular file, found a directory"))
    }

    func testFileLargerThanLimitIsRejectedBeforeReading() throws {
        let dir = try TestSupport.temporaryDirectory(self)
        try TestSupport.write([UInt8](repeating: 0, count: 2000), dir, "big")
        let message = TestSupport.errorMessage { try IDXFile.read(dir.appendingPathComponent("big"), maximumBytes: 1000) }
        XCTAssertTrue(message.hasSuffix("expected at most 1000 bytes, found 2000 bytes"), message)
    }

    func testInitValidatesShape() {
        XCTAssertNil(try? IDXFile(shape: [2, 2], bytes: [1, 2, 3]))
        XCTAssertNil(try? IDXFile(shape: [Int(UInt32.max), Int(UInt32.max), Int(UInt32.max)], bytes: []))
        XCTAssertNil(try? IDXFile(shape: [], bytes: []))
        XCTAssertEqual(try IDXFile(shape: [0, 5], bytes: []).encoded(), [0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 5])
    }
}
