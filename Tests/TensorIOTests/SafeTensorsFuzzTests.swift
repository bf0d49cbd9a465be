import Foundation
import TensorCore
import XCTest
import TensorIO

/// Seeded mutation fuzzing of the safetensors reader: every mutated input must either parse (and then every tensor
/// must be readable) or throw a `TensorIOError`; a trap or hang fails the whole test run.
///
/// The default run (20,000 random mutations plus every truncation of a small file) takes well under 10 s in a debug
/// build. To fuzz longer, set `DISTILL_FUZZ_ITERATIONS` to the number of random mutations, and optionally
/// `DISTILL_FUZZ_SEED` to explore a different sequence, e.g.
/// `DISTILL_FUZZ_ITERATIONS=1000000 DISTILL_FUZZ_SEED=42 swift test -c release --filter SafeTensorsFuzzTests`.
final class SafeTensorsFuzzTests: XCTestCase {
    private func seeds() throws -> [[UInt8]] {
        var rng = RandomGenerator(seed: 1)
        let files: [Data] = [
            try SafeTensors.serialize([.tensor("a", Tensor([1, -2])), .integers("b", [3])], metadata: ["k": "v"]),
            try SafeTensors.serialize([]),
            try SafeTensors.serialize(
                [.tensor("w", Tensor.normal([3, 2], generator: &rng)), .tensor("h", Tensor([0.5, 1, 2]), dtype: .f16),
                 .tensor("bf", Tensor([3]), dtype: .bf16), .tensor("d", Tensor([0.25]), dtype: .f64),
                 .integers("i", [1, -2], dtype: .i32), .integers("u", [7, 8, 9], dtype: .u8),
                 .tensor("z", Tensor(shape: [0, 4])), .tensor("s", Tensor(scalar: 9))],
                metadata: ["format": "pt", "epoch": "3"]),
            safetensorsBytes(header: #" {"x":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}, "__metadata__":{}}  "#, data: [0, 1]),
            safetensorsBytes(header: #"{"u":{"dtype":"U64","shape":[1,1],"data_offsets":[0,8]},"q":{"dtype":"I16","shape":[1],"data_offsets":[8,10]}}"#,
                             data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ]
        return files.map { Array($0) }
    }

    private struct Tally { var accepted = 0, rejected = 0 }

    private func check(_ bytes: [UInt8], _ tally: inout Tally) {
        do {
            let file = try SafeTensors.read(data: Data(bytes), source: "fuzz.safetensors")
            for name in file.names {
                let info = try file.info(named: name)
                let tensor = try file.tensor(named: name)
                XCTAssertEqual(tensor.shape, info.shape)
                if info.dtype.isInteger { _ = try? file.integers(named: name) }
            }
            tally.accepted += 1
        } catch let error as TensorIOError {
            XCTAssertTrue(error.description.hasPrefix("fuzz.safetensors: "), error.description)
            tally.rejected += 1
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
        }
    }

    private func mutate(_ input: [UInt8], _ rng: inout RandomGenerator) -> [UInt8] {
        var bytes = input
        let interesting: [UInt8] = Array("{}[]\",:0123456789-.e ".utf8) + [0x00, 0x7F, 0x80, 0xC0, 0xFF]
        // End of the header as currently declared, clamped to the (possibly already mutated) input.
        var headerEnd: Int {
            guard bytes.count >= 8 else { return bytes.count }
            let declared = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            return min(bytes.count, 8 + Int(truncatingIfNeeded: declared & 0xFFFF))
        }
        func position(headerOnly: Bool = false) -> Int {
            let end = headerEnd
            if headerOnly && end > 8 { return 8 + rng.next(below: end - 8) }
            return rng.next(below: max(bytes.count, 1))
        }
        let rounds = 1 + rng.next(below: 3)
        for _ in 0..<rounds where !bytes.isEmpty {
            switch rng.next(below: 8) {
            case 0:  // bit flip
                let p = position()
                bytes[p] ^= UInt8(1) << UInt8(rng.next(below: 8))
            case 1:  // random byte overwrite
                bytes[position()] = UInt8(truncatingIfNeeded: rng.nextUInt64())
            case 2:  // structural byte overwrite inside the header
                bytes[position(headerOnly: true)] = interesting[rng.next(below: interesting.count)]
            case 3:  // digit change inside the header (offsets, shapes)
                let end = headerEnd
                let digits = bytes.indices.filter { $0 >= 8 && $0 < end && (0x30...0x39).contains(bytes[$0]) }
                if let p = digits.isEmpty ? nil : digits[rng.next(below: digits.count)] { bytes[p] = 0x30 + UInt8(rng.next(below: 10)) }
            case 4:  // header-length field rewrite
                let n = UInt64(max(bytes.count - 8, 0))
                let choices: [UInt64] = [0, 1, n, n &+ 1, n &- 1, n &+ 8, UInt64(max(headerEnd - 8, 0)) &+ 1, UInt64(max(headerEnd - 8, 0)) &- 1,
                                         UInt64.max, UInt64(Int.max), 100_000_001, rng.nextUInt64() >> UInt64(rng.next(below: 64))]
                var value = choices[rng.next(below: choices.count)].littleEndian
                if bytes.count >= 8 { withUnsafeBytes(of: &value) { for i in 0..<8 { bytes[i] = $0[i] } } }
            case 5:  // insert bytes
                let p = rng.next(below: bytes.count + 1)
                let count = 1 + rng.next(below: 4)
                bytes.insert(contentsOf: (0..<count).map { _ in interesting[rng.next(below: interesting.count)] }, at: p)
            case 6:  // delete a range
                let p = position()
                bytes.removeSubrange(p..<min(bytes.count, p + 1 + rng.next(below: 4)))
            default:  // truncate
                bytes.removeSubrange(position()..<bytes.count)
            }
        }
        return bytes
    }

    func testMutationFuzz() throws {
        let environment = ProcessInfo.processInfo.environment
        let iterations = environment["DISTILL_FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max($0, 0) } ?? 20_000
        let seed = environment["DISTILL_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_240_601
        let inputs = try seeds()
        var tally = Tally()
        let start = Date()

        // Every truncation of the small files (including the empty input).
        for input in inputs where input.count <= 512 {
            for length in 0..<input.count { check(Array(input[..<length]), &tally) }
        }
        for input in inputs { check(input, &tally) }
        XCTAssertEqual(tally.accepted, inputs.count, "the unmutated seeds must parse")

        var rng = RandomGenerator(seed: seed)
        for _ in 0..<iterations {
            check(mutate(inputs[rng.next(below: inputs.count)], &rng), &tally)
        }
        let elapsed = Date().timeIntervalSince(start)
        print("fuzz: \(iterations) mutations + truncations, \(tally.accepted) accepted, \(tally.rejected) rejected in \(String(format: "%.2f", elapsed)) s")
        XCTAssertGreaterThan(tally.rejected, iterations / 2)
        XCTAssertGreaterThan(tally.accepted, inputs.count)  // some mutations (e.g. to data bytes) stay valid
    }
}
