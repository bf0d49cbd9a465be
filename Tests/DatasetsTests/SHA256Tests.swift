import XCTest
import Datasets

final class SHA256Tests: XCTestCase {
    func testNISTVectors() {
        XCTAssertEqual(SHA256.hexHash(Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexHash([]),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexHash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hexHash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testStreamingMatchesOneShotAcrossBlockBoundaries() {
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for split in [0, 1, 55, 56, 63, 64, 65, 128, 299, 300] {
            var hasher = SHA256()
            hasher.update(Array(data[..<split]))
            hasher.update(Array(data[split...]))
            XCTAssertEqual(hasher.finalize(), SHA256.hash(data), "split at \(split)")
        }
        XCTAssertEqual(SHA256.hash([1, 2, 3]).count, 32)
    }

    func testSumsParsing() throws {
        let text = """
        # comment
        1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be  t10k-images-idx3-ubyte.gz
        B91679A0ACFE4BA0E50A2437A903084CBA1F5F92592B016A25A7DFD00455798B *t10k-labels-idx1-ubyte.gz

        """
        let sums = try SHA256Sums(parsing: text)
        XCTAssertEqual(sums.digests["t10k-labels-idx1-ubyte.gz"], "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b")
        XCTAssertEqual(sums.digests.count, 2)
        XCTAssertEqual(try SHA256Sums(parsing: sums.text), sums)
        let message = TestSupport.errorMessage { try SHA256Sums(parsing: "abc  file\n", file: "SUMS") }
        XCTAssertTrue(message.hasPrefix("SUMS: expected line 1"), message)
        let mismatch = TestSupport.errorMessage { try sums.verify([1, 2, 3], name: "t10k-images-idx3-ubyte.gz") }
        XCTAssertTrue(mismatch.contains("1a1a05eab793") && mismatch.contains(SHA256.hexHash([1, 2, 3])), mismatch)
        let missing = TestSupport.errorMessage { try sums.verify([1], name: "other.gz") }
        XCTAssertTrue(missing.contains("an entry for other.gz"), missing)
    }
}
