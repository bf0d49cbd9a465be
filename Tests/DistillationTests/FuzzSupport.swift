import Foundation
import TensorCore
import XCTest

/// Shared seeded mutation engine for the reader fuzz tests (model checkpoints, teacher logit stores, training states).
///
/// `DISTILL_FUZZ_ITERATIONS` overrides the number of mutations and `DISTILL_FUZZ_SEED` the seed, as in
/// `SafeTensorsFuzzTests`, e.g. `DISTILL_FUZZ_ITERATIONS=200000 DISTILL_FUZZ_SEED=7 swift test --filter Fuzz`.
enum Fuzz {
    static func iterations(default value: Int) -> Int {
        ProcessInfo.processInfo.environment["DISTILL_FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max($0, 0) } ?? value
    }

    static func seed(default value: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment["DISTILL_FUZZ_SEED"].flatMap { UInt64($0) } ?? value
    }

    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Splits a safetensors file into its header text and data bytes, when the declared header length fits.
    static func split(_ bytes: [UInt8]) -> (header: [UInt8], data: [UInt8])? {
        guard bytes.count >= 8 else { return nil }
        let declared = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(bytes.count - 8) else { return nil }
        let end = 8 + Int(declared)
        return (Array(bytes[8..<end]), Array(bytes[end...]))
    }

    /// A safetensors file from a header text and data bytes (the header length field is recomputed).
    static func assemble(_ header: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var length = UInt64(header.count).littleEndian
        var out = withUnsafeBytes(of: &length) { Array($0) }
        out += header
        out += data
        return out
    }

    static let replacements: [String] = [
        "0", "1", "-1", "-7", "2", "3", "1e9", "999999999", "4294967297", "9223372036854775807", "9223372036854775808",
        "99999999999999999999999", "-9223372036854775808", "0.5", "-0.5", "1.5", "0.999999", "1e308", "1e-45", "nan",
        "NaN", "inf", "-0", "null", "true", "[]", "{}", "\\\"x\\\"", "\"", "", " ", "ff", "FFFFFFFFFFFFFFFF", "1.0", "00",
    ]

    /// One to three mutations of a safetensors file: raw byte edits anywhere (which mostly break it) and edits of
    /// the header text that keep the length field consistent (which reach the metadata checks behind the parser).
    /// `tokens` are words of the header worth swapping for each other or for odd values.
    static func mutate(_ input: [UInt8], _ rng: inout RandomGenerator, tokens: [String]) -> [UInt8] {
        var bytes = input
        let interesting: [UInt8] = Array("{}[]\",:0123456789-.e \\".utf8) + [0x00, 0x7F, 0x80, 0xC0, 0xFF]
        func pick<T>(_ a: [T]) -> T { a[rng.next(below: a.count)] }
        let rounds = 1 + rng.next(below: 3)
        for _ in 0..<rounds where !bytes.isEmpty {
            let parts = split(bytes)
            switch rng.next(below: 12) {
            case 0:  // bit flip anywhere
                bytes[rng.next(below: bytes.count)] ^= UInt8(1) << UInt8(rng.next(below: 8))
            case 1:  // random byte anywhere
                bytes[rng.next(below: bytes.count)] = UInt8(truncatingIfNeeded: rng.nextUInt64())
            case 2:  // structural byte inside the header, length kept consistent
                guard let (header, data) = parts, !header.isEmpty else { continue }
                var h = header
                h[rng.next(below: h.count)] = pick(interesting)
                bytes = assemble(h, data)
            case 3, 4, 5:  // replace a run of digits (a size, count, offset, probability) with an odd value
                guard let (header, data) = parts else { continue }
                var runs: [Range<Int>] = []
                var i = 0
                while i < header.count {
                    if (0x30...0x39).contains(header[i]) {
                        var j = i
                        while j < header.count, (0x30...0x39).contains(header[j]) || header[j] == 0x2E { j += 1 }
                        runs.append(i..<j)
                        i = j
                    } else { i += 1 }
                }
                guard !runs.isEmpty else { continue }
                var h = header
                let run = pick(runs)
                if rng.next(below: 3) == 0 {
                    h[run.lowerBound] = 0x30 + UInt8(rng.next(below: 10))  // one digit
                } else {
                    h.replaceSubrange(run, with: Array(pick(replacements).utf8))
                }
                bytes = assemble(h, data)
            case 6, 7:  // swap a known token for another token or an odd value
                guard let (header, data) = parts, !tokens.isEmpty else { continue }
                let text = String(decoding: header, as: UTF8.self)
                let present = tokens.filter { text.contains($0) }
                guard !present.isEmpty else { continue }
                let needle = pick(present)
                let ranges = ranges(of: needle, in: text)
                let range = pick(ranges)
                let replacement = rng.next(below: 2) == 0 ? pick(tokens) : pick(replacements)
                var edited = text
                edited.replaceSubrange(range, with: replacement)
                bytes = assemble(Array(edited.utf8), data)
            case 8:  // header-length field rewrite
                guard bytes.count >= 8 else { continue }
                let n = UInt64(bytes.count - 8)
                let h = UInt64(parts?.header.count ?? 0)
                var value = pick([0, 1, n, n &+ 1, n &- 1, h &+ 1, h &- 1, UInt64.max, UInt64(Int.max), 100_000_001,
                                  rng.nextUInt64() >> UInt64(rng.next(below: 64))]).littleEndian
                withUnsafeBytes(of: &value) { for i in 0..<8 { bytes[i] = $0[i] } }
            case 9:  // special float bit patterns in the data (NaN, infinity, huge; f32 or f16 sized)
                guard let (header, data) = parts, data.count >= 2 else { continue }
                var d = data
                if d.count >= 4, rng.next(below: 2) == 0 {
                    let p = 4 * rng.next(below: d.count / 4)
                    let v: UInt32 = pick([0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0x4F00_0000, 0xCF00_0000, 0x0000_0001, 0x5F80_0000])
                    for k in 0..<4 { d[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
                } else {
                    let p = 2 * rng.next(below: d.count / 2)
                    let v: UInt16 = pick([0x7E00, 0x7C00, 0xFC00, 0x7BFF, 0x0001])
                    d[p] = UInt8(truncatingIfNeeded: v); d[p + 1] = UInt8(truncatingIfNeeded: v >> 8)
                }
                bytes = assemble(header, d)
            case 10:  // insert or delete a few bytes
                if rng.next(below: 2) == 0 {
                    let p = rng.next(below: bytes.count + 1)
                    bytes.insert(contentsOf: (0..<(1 + rng.next(below: 4))).map { _ in pick(interesting) }, at: p)
                } else {
                    let p = rng.next(below: bytes.count)
                    bytes.removeSubrange(p..<min(bytes.count, p + 1 + rng.next(below: 4)))
                }
            default:  // truncate
                bytes.removeSubrange(rng.next(below: bytes.count)..<bytes.count)
            }
        }
        return bytes
    }

    static func ranges(of needle: String, in text: String) -> [Range<String.Index>] {
        var result: [Range<String.Index>] = []
        var start = text.startIndex
        while start < text.endIndex, let r = text.range(of: needle, range: start..<text.endIndex) {
            result.append(r)
            start = r.upperBound
        }
        return result
    }

    /// Seeds plus every truncation of the small ones, then `iterations` mutations, each checked by `check` (which
    /// returns true when the file loaded). Prints and returns the tally.
    @discardableResult
    static func run(_ name: String, seeds: [[UInt8]], iterations: Int, seed: UInt64, tokens: [String],
                    truncations: Bool = true, check: ([UInt8]) -> Bool) -> (loaded: Int, rejected: Int) {
        var loaded = 0, rejected = 0
        let start = Date()
        func tally(_ bytes: [UInt8]) { if check(bytes) { loaded += 1 } else { rejected += 1 } }
        for s in seeds { XCTAssertTrue(check(s), "\(name): an unmutated seed must load") }
        if truncations {
            for s in seeds {
                let step = max(1, s.count / 200)
                for length in stride(from: 0, to: s.count, by: step) { tally(Array(s[..<length])) }
            }
        }
        var rng = RandomGenerator(seed: seed)
        for _ in 0..<iterations { tally(mutate(seeds[rng.next(below: seeds.count)], &rng, tokens: tokens)) }
        let elapsed = Date().timeIntervalSince(start)
        print("fuzz \(name): \(iterations) mutations (seed \(seed)) + truncations: \(loaded) loaded, \(rejected) rejected in \(String(format: "%.2f", elapsed)) s")
        return (loaded, rejected)
    }
}
