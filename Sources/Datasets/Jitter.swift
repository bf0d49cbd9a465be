import TensorCore

/// Random-translation ("jitter") augmentation for batches of images stored as rows.
public enum Jitter {
    /// Shifts each image independently by a random integer offset, filling uncovered pixels with 0.
    ///
    /// For each image, in row order, draws `dx = generator.next(below: 2*maxShift+1) - maxShift` and then `dy` the
    /// same way: two bounded draws per image (each of which may redraw internally on Lemire rejection). The content
    /// moves right by `dx` and down by `dy`: `out[y][x] = in[y - dy][x - dx]`, or 0 when that is outside the image;
    /// every channel of an image moves alike. With `maxShift == 0` the input is returned unchanged and no draws are
    /// made.
    ///
    /// - Parameters:
    ///   - images: `[N, ...]` with `channels * height * width` values per image, channel planes row-major
    ///     (`[N, C, H, W]`, or `[N, H * W]` for one channel) (precondition).
    ///   - maxShift: the largest shift in either direction, `>= 0` (precondition).
    /// - Returns: a tensor of the same shape.
    public static func shift(images: Tensor, channels: Int = 1, height: Int = 28, width: Int = 28, maxShift: Int,
                             generator: inout RandomGenerator) -> Tensor {
        precondition(images.rank >= 2 && channels >= 1 && images.count == images.shape[0] * channels * height * width,
                     "Jitter.shift needs images of \(channels)x\(height)x\(width) values each, got shape \(images.shape)")
        precondition(maxShift >= 0, "Jitter.shift needs maxShift >= 0, got \(maxShift)")
        if maxShift == 0 { return images }
        let n = images.shape[0]
        let pixels = height * width
        var offsets = [Int](repeating: 0, count: 2 * n)
        for i in 0..<n {
            offsets[2 * i] = generator.next(below: 2 * maxShift + 1) - maxShift
            offsets[2 * i + 1] = generator.next(below: 2 * maxShift + 1) - maxShift
        }
        return Tensor(shape: images.shape, initializingWith: { out in
            images.withUnsafeBufferPointer { input in
                guard let dstBase = out.baseAddress, let srcBase = input.baseAddress else { return }
                offsets.withUnsafeBufferPointer { offsets in
                    let chunks = Swift.min(n, 64)
                    ComputeThreads.parallelFor(chunks: chunks) { chunk in
                        let lower = chunk * n / chunks, upper = (chunk + 1) * n / chunks
                        for i in lower..<upper {
                            for c in 0..<channels {
                                let plane = (i * channels + c) * pixels
                                shiftOne(from: srcBase + plane, to: dstBase + plane, height: height, width: width,
                                         dx: offsets[2 * i], dy: offsets[2 * i + 1])
                            }
                        }
                    }
                }
            }
        })
    }

    /// Writes one shifted image: whole-row copies plus zero fill.
    @inline(__always)
    static func shiftOne(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>,
                         height: Int, width: Int, dx: Int, dy: Int) {
        let copyWidth = width - Swift.abs(dx)
        let dstColumn = Swift.max(dx, 0), srcColumn = Swift.max(-dx, 0)
        for y in 0..<height {
            let row = dst + y * width
            let sy = y - dy
            guard copyWidth > 0, sy >= 0, sy < height else {
                row.update(repeating: 0, count: width)
                continue
            }
            if dstColumn > 0 { row.update(repeating: 0, count: dstColumn) }
            (row + dstColumn).update(from: src + sy * width + srcColumn, count: copyWidth)
            let tail = width - dstColumn - copyWidth
            if tail > 0 { (row + dstColumn + copyWidth).update(repeating: 0, count: tail) }
        }
    }
}
