import XCTest
import TensorCore

final class RandomGeneratorTests: XCTestCase {
    /// Golden values: these exact numbers must come out on every platform (integer arithmetic only).
    func testGoldenSequence() {
        var rng = RandomGenerator(seed: 42)
        let draws = (0..<3).map { _ in rng.nextUInt64() }
        var again = RandomGenerator(seed: 42)
        XCTAssertEqual(draws, (0..<3).map { _ in again.nextUInt64() })
        XCTAssertEqual(draws, RandomGeneratorTests.golden42, "xoshiro256** sequence for seed 42 changed")
    }

    // Computed independently (Python reference of SplitMix64 seeding + xoshiro256**); a change here breaks the
    // reproducibility of every seeded result.
    static let golden42: [UInt64] = [1546998764402558742, 6990951692964543102, 12544586762248559009]

    func testUniformRangeAndMoments() {
        var rng = RandomGenerator(seed: 1)
        var sum: Double = 0, sumSq: Double = 0
        let n = 100_000
        for _ in 0..<n {
            let u = rng.uniform()
            XCTAssert(u >= 0 && u < 1)
            sum += Double(u); sumSq += Double(u * u)
        }
        XCTAssertEqual(sum / Double(n), 0.5, accuracy: 0.01)
        XCTAssertEqual(sumSq / Double(n) - pow(sum / Double(n), 2), 1.0 / 12, accuracy: 0.005)
    }

    func testNormalMoments() {
        var rng = RandomGenerator(seed: 2)
        let t = Tensor.normal([100_000], mean: 1, standardDeviation: 2, generator: &rng)
        let mean = t.mean()
        let variance = (t - mean).squared().mean()
        XCTAssertEqual(mean, 1, accuracy: 0.03)
        XCTAssertEqual(variance, 4, accuracy: 0.1)
    }

    func testPermutationAndBernoulli() {
        var rng = RandomGenerator(seed: 3)
        let p = rng.permutation(1000)
        XCTAssertEqual(p.sorted(), Array(0..<1000))
        XCTAssertNotEqual(p, Array(0..<1000))
        var other = RandomGenerator(seed: 3)
        XCTAssertEqual(other.permutation(1000), p)
        let b = Tensor.bernoulli([50_000], probability: 0.3, generator: &rng)
        XCTAssertEqual(b.mean(), 0.3, accuracy: 0.01)
        XCTAssert(b.scalars.allSatisfy { $0 == 0 || $0 == 1 })
    }

    func testStateRoundTrip() throws {
        var rng = RandomGenerator(seed: 9)
        _ = rng.nextUInt64()
        let data = try JSONEncoder().encode(rng)
        var restored = try JSONDecoder().decode(RandomGenerator.self, from: data)
        XCTAssertEqual(restored.nextUInt64(), rng.nextUInt64())
    }
}
