import Foundation

/// A seeded, platform-independent pseudo-random generator: xoshiro256** seeded through SplitMix64.
///
/// Every method consumes a documented number of 64-bit draws, so two runs with the same seed see the same numbers on
/// every platform (the normal sampler uses `log`, `sqrt`, `cos` from libm in Double, whose last-bit results may in
/// principle differ between C libraries).
/// - `nextUInt64()`: one draw.
/// - `uniform()`: one draw; the top 24 bits give a Float in [0, 1) (exactly representable multiples of 2^-24).
/// - `normal()`: two draws (Box–Muller, the cosine branch only).
/// - `bernoulli(p)`: one uniform; true with probability p.
/// - `permutation(n)`: Fisher–Yates from the last index down, one bounded draw per step (Lemire's method, which may
///   redraw on rejection).
/// Generators are values passed to whoever needs randomness, never globals; `split()` derives an independent stream.
public struct RandomGenerator: Sendable, Codable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from a saved state (see `stateWords`).
    public init(stateWords w: [UInt64]) {
        precondition(w.count == 4, "RandomGenerator state needs 4 words, got \(w.count)")
        state = (w[0], w[1], w[2], w[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool { a.stateWords == b.stateWords }

    public init(from decoder: Decoder) throws {
        let words = try [UInt64](from: decoder)
        guard words.count == 4 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "RandomGenerator state needs 4 words, got \(words.count)"))
        }
        self.init(stateWords: words)
    }

    public func encode(to encoder: Encoder) throws { try stateWords.encode(to: encoder) }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// One 64-bit draw.
    public mutating func nextUInt64() -> UInt64 {
        let result = RandomGenerator.rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = RandomGenerator.rotl(state.3, 45)
        return result
    }

    /// Uniform Float in [0, 1).
    public mutating func uniform() -> Float { Float(nextUInt64() >> 40) * 0x1p-24 }

    /// Uniform Float in [low, high).
    public mutating func uniform(in low: Float, _ high: Float) -> Float { low + (high - low) * uniform() }

    /// Uniform Double in [0, 1) with 53 bits.
    public mutating func uniformDouble() -> Double { Double(nextUInt64() >> 11) * 0x1p-53 }

    /// Standard normal N(0, 1) by Box–Muller (two draws).
    public mutating func normal() -> Float {
        let u1 = 1 - uniformDouble()  // (0, 1]
        let u2 = uniformDouble()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// True with probability `p`.
    public mutating func bernoulli(_ p: Float) -> Bool { uniform() < p }

    /// Uniform integer in 0..<bound (Lemire's nearly divisionless method).
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "next(below:) needs a positive bound, got \(bound)")
        let b = UInt64(bound)
        var m = nextUInt64().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = nextUInt64().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var result = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { result.swapAt(i, next(below: i + 1)) }
        }
        return result
    }

    /// An independent generator derived from this one (consumes one draw).
    public mutating func split() -> RandomGenerator { RandomGenerator(seed: nextUInt64()) }
}

extension Tensor {
    /// Uniform samples in [low, high).
    public static func uniform(_ shape: [Int], low: Float, high: Float, generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = generator.uniform(in: low, high) } }
    }

    /// Normal samples with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = mean + standardDeviation * generator.normal() } }
    }

    /// Bernoulli samples: 1 with probability `p`, else 0.
    public static func bernoulli(_ shape: [Int], probability p: Float, generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = generator.bernoulli(p) ? 1 : 0 } }
    }
}
