import Foundation
import TensorCore
import XCTest
import Datasets

/// Seeded mutation fuzzing of the IDX + gzip reader: every mutated file must parse or throw a `DataError`.
final class FuzzTests: XCTestCase {
    func testMutatedFilesParseOrThrow() throws {
        var generator = RandomGenerator(seed: 20_240_611)
        let images = try IDXFile(shape: [4, 6, 5], bytes: (0..<120).map { _ in UInt8(generator.next(below: 256)) })
        let labels = try IDXFile(shape: [9], bytes: (0..<9).map { UInt8($0) })
        let seeds = [images.encoded(), TestSupport.gzip(images.encoded()), labels.encoded(), TestSupport.gzip(labels.encoded()),
                     TestSupport.gzip(Array(images.encoded()[..<50])) + TestSupport.gzip(Array(images.encoded()[50...]))]
        var parsed = 0, rejected = 0
        let start = Date()
        for _ in 0..<3000 {
            var bytes = seeds[generator.next(below: seeds.count)]
            let mutations = 1 + generator.next(below: 3)
            for _ in 0..<mutations where !bytes.isEmpty {
                switch generator.next(below: 5) {
                case 0: // bit flip
                    bytes[generator.next(below: bytes.count)] ^= UInt8(1) << UInt8(generator.next(below: 8))
                case 1: // truncation
                    bytes.removeLast(bytes.count - generator.next(below: bytes.count))
                case 2: // random byte overwrite
                    bytes[generator.next(below: bytes.count)] = UInt8(generator.next(below: 256))
                case 3: // header byte overwrite (dimension sizes)
                    bytes[generator.next(below: min(bytes.count, 20))] = UInt8(generator.next(below: 256))
                default: // appended garbage
                    bytes += (0..<(1 + generator.next(below: 8))).map { _ in UInt8(generator.next(below: 256)) }
                }
            }
            do {
                let file = try IDXFile.parse(bytes, file: "fuzz", maximumBytes: 1 << 16)
                XCTAssertEqual(file.shape.reduce(1, *), file.bytes.count)
                parsed += 1
            } catch let error as DataError {
                XCTAssertTrue(error.description.hasPrefix("fuzz: expected"), error.description)
                rejected += 1
            }
        }
        XCTAssertEqual(parsed + rejected, 3000)
        XCTAssertGreaterThan(rejected, 1000)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }
}
