import Foundation
import TensorCore
import XCTest
import Datasets

/// Seeded mutation fuzzing of the IDX + gzip reader: every mutated file must parse or throw a `DataError`.
/// The gzip seeds are mutated as compressed bytes (header flags, deflate blocks, CRC-32 / ISIZE trailer).
/// Longer: `DISTILL_FUZZ_ITERATIONS=200000 DISTILL_FUZZ_SEED=3 swift test --filter DatasetsTests.FuzzTests`.
final class FuzzTests: XCTestCase {
    func testMutatedFilesParseOrThrow() throws {
        let environment = ProcessInfo.processInfo.environment
        let iterations = environment["DISTILL_FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max($0, 0) } ?? 3000
        let seed = environment["DISTILL_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_240_611
        var generator = RandomGenerator(seed: seed)
        let images = try IDXFile(shape: [4, 6, 5], bytes: (0..<120).map { _ in UInt8(generator.next(below: 256)) })
        let labels = try IDXFile(shape: [9], bytes: (0..<9).map { UInt8($0) })
        let seeds = [images.encoded(), TestSupport.gzip(images.encoded()), labels.encoded(), TestSupport.gzip(labels.encoded()),
                     TestSupport.gzip(Array(images.encoded()[..<50])) + TestSupport.gzip(Array(images.encoded()[50...]))]
        var parsed = 0, rejected = 0
        let start = Date()
        for _ in 0..<iterations {
            var bytes = seeds[generator.next(below: seeds.count)]
            let mutations = 1 + generator.next(below: 3)
            for _ in 0..<mutations where !bytes.isEmpty {
                switch generator.next(below: 7) {
                case 0: // bit flip
                    bytes[generator.next(below: bytes.count)] ^= UInt8(1) << UInt8(generator.next(below: 8))
                case 1: // truncation
                    bytes.removeLast(bytes.count - generator.next(below: bytes.count))
                case 2: // random byte overwrite
                    bytes[generator.next(below: bytes.count)] = UInt8(generator.next(below: 256))
                case 3: // header byte overwrite (dimension sizes)
                    bytes[generator.next(below: min(bytes.count, 20))] = UInt8(generator.next(below: 256))
                case 5: // gzip trailer (CRC-32, ISIZE) or gzip header (flags, method) byte
                    let tail = generator.next(below: 2) == 0
                    let p = tail ? bytes.count - 1 - generator.next(below: min(bytes.count, 8)) : generator.next(below: min(bytes.count, 10))
                    bytes[p] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x1F, 0x8B, 0x08, 0x1E][generator.next(below: 9)]
                case 6: // ISIZE rewritten to a huge or zero size
                    if bytes.count >= 4 {
                        let v: UInt32 = [0, 1, 0xFFFF_FFFF, 0x8000_0000, 1 << 20][generator.next(below: 5)]
                        for k in 0..<4 { bytes[bytes.count - 4 + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
                    }
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
        let elapsed = Date().timeIntervalSince(start)
        print("fuzz IDX/gzip: \(iterations) mutations (seed \(seed)): \(parsed) parsed, \(rejected) rejected in \(String(format: "%.2f", elapsed)) s")
        XCTAssertEqual(parsed + rejected, iterations)
        XCTAssertGreaterThan(rejected, iterations / 3)
        if iterations <= 3000 { XCTAssertLessThan(elapsed, 10) }
    }
}
