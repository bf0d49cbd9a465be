import TensorCore
import XCTest
import Datasets

final class JitterTests: XCTestCase {
    func testZeroShiftIsIdentityWithoutDraws() {
        var g = RandomGenerator(seed: 5)
        let images = Tensor.uniform([3, 784], low: 0, high: 1, generator: &g)
        let before = g
        XCTAssertEqual(Jitter.shift(images: images, maxShift: 0, generator: &g), images)
        XCTAssertEqual(g, before)
    }

    func testSinglePixelMovesAtMostMaxShiftAndKeepsMass() {
        let n = 200
        var images = Tensor.zeros([n, 784])
        for i in 0..<n { images[i, 14 * 28 + 13] = 1 }
        var g = RandomGenerator(seed: 11)
        let shifted = Jitter.shift(images: images, maxShift: 2, generator: &g)
        var offsets = Set<[Int]>()
        for i in 0..<n {
            let row = shifted.rows(i..<(i + 1)).scalars
            XCTAssertEqual(row.reduce(0, +), 1, "mass preserved for an interior pixel")
            let position = row.firstIndex(of: 1)!
            let (dy, dx) = (position / 28 - 14, position % 28 - 13)
            XCTAssertTrue(abs(dx) <= 2 && abs(dy) <= 2, "moved by (\(dx), \(dy))")
            offsets.insert([dx, dy])
        }
        XCTAssertEqual(offsets.count, 25, "all 5x5 offsets occur")
    }

    func testMatchesReferenceWithDocumentedDraws() {
        var g = RandomGenerator(seed: 21)
        let (h, w) = (5, 7)
        let images = Tensor.uniform([40, h * w], low: 0.1, high: 1, generator: &g)
        var reference = g
        let shifted = Jitter.shift(images: images, height: h, width: w, maxShift: 3, generator: &g)
        for i in 0..<40 {
            let dx = reference.next(below: 7) - 3, dy = reference.next(below: 7) - 3
            for y in 0..<h {
                for x in 0..<w {
                    let (sy, sx) = (y - dy, x - dx)
                    let expected: Float = (0..<h).contains(sy) && (0..<w).contains(sx) ? images[i, sy * w + sx] : 0
                    XCTAssertEqual(shifted[i, y * w + x], expected)
                }
            }
        }
        XCTAssertEqual(reference, g, "two bounded draws per image")
    }

    func testShiftLargerThanImageBlanksIt() {
        var g = RandomGenerator(seed: 2)
        let shifted = Jitter.shift(images: Tensor.ones([50, 4]), height: 2, width: 2, maxShift: 3, generator: &g)
        for i in 0..<50 { XCTAssertLessThanOrEqual(shifted.rows(i..<(i + 1)).sum(), 4) }
    }

    /// Colour images `[N, 3, H, W]`: every channel of an image moves by the same offset, drawn once per image, so
    /// the result is each channel shifted as a one-channel image with the same draws.
    func testChannelsOfAnImageMoveTogether() {
        var g = RandomGenerator(seed: 4)
        let n = 3, c = 3, h = 5, w = 4
        let images = Tensor.uniform([n, c, h, w], low: 0, high: 1, generator: &g)
        var a = RandomGenerator(seed: 9)
        let shifted = Jitter.shift(images: images, channels: c, height: h, width: w, maxShift: 2, generator: &a)
        XCTAssertEqual(shifted.shape, [n, c, h, w])
        for channel in 0..<c {
            // The same channel of every image, as a batch of one-channel images, with the same generator.
            let plane = Tensor(shape: [n, h * w]) { out in
                for i in 0..<n { for p in 0..<(h * w) { out[i * h * w + p] = images[flat: (i * c + channel) * h * w + p] } }
            }
            var b = RandomGenerator(seed: 9)
            let expected = Jitter.shift(images: plane, height: h, width: w, maxShift: 2, generator: &b)
            for i in 0..<n {
                for p in 0..<(h * w) {
                    XCTAssertEqual(shifted[flat: (i * c + channel) * h * w + p], expected[flat: i * h * w + p], "image \(i) channel \(channel)")
                }
            }
            XCTAssertEqual(a.stateWords, b.stateWords, "two draws per image, whatever the channels")
        }
    }
}
