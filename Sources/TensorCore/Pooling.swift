/// Max and average pooling over NCHW planes (PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d`, `ceil_mode=False`).
///
/// Output size per axis: `(H + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`. Max pooling pads with
/// -infinity and records, for each output, the flat index (in its input plane) of the first maximum in row-major
/// window order (PyTorch's); its backward adds each upstream value at that index. Average pooling divides by the
/// whole window (`count_include_pad=True`, PyTorch's default) or by the part inside the image. Planes (batch x
/// channel) are spread over the compute threads; each output is computed by one thread, so results do not depend on
/// the thread count. The loops are the definition; the unrolled 2x2 stride-2 max pooling beside them is tested
/// against it.
public struct PoolingGeometry: Equatable, Hashable, Sendable {
    public var height, width: Int
    public var kernelHeight, kernelWidth: Int
    public var strideHeight, strideWidth: Int
    public var paddingHeight, paddingWidth: Int
    public var dilationHeight, dilationWidth: Int

    public init(height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1)) {
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (paddingHeight, paddingWidth) = padding
        (dilationHeight, dilationWidth) = dilation
    }

    public var outHeight: Int { (height + 2 * paddingHeight - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1 }
    public var outWidth: Int { (width + 2 * paddingWidth - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1 }
}

public enum Pooling {
    /// Planes per parallel chunk: enough work to be worth a thread.
    static func chunks(planes: Int, planeSize: Int) -> Int {
        planes * planeSize < 1 << 14 ? 1 : Swift.min(planes, 4 * ComputeThreads.count)
    }

    /// Max pooling of `input` `[B, C, H, W]`: the output `[B, C, Ho, Wo]` and the argmax index of each output within
    /// its input plane (as Int32).
    public static func maxForward(_ input: Tensor, _ g: PoolingGeometry) -> (output: Tensor, indices: [Int32]) {
        precondition(input.rank == 4 && input.shape[2] == g.height && input.shape[3] == g.width,
                     "maxPool2d: input \(input.shape) does not match [batch, channels, \(g.height), \(g.width)]")
        let planes = input.shape[0] * input.shape[1], ho = g.outHeight, wo = g.outWidth, inPlane = g.height * g.width
        var indices = [Int32](repeating: 0, count: planes * ho * wo)
        let output = Tensor(shape: [input.shape[0], input.shape[1], ho, wo]) { out in
            indices.withUnsafeMutableBufferPointer { ib in
                input.withUnsafeBufferPointer { xb in
                    guard let x = xb.baseAddress, let o = out.baseAddress, let ip = ib.baseAddress else { return }
                    let chunks = chunks(planes: planes, planeSize: inPlane)
                    let simple2x2 = g.kernelHeight == 2 && g.kernelWidth == 2 && g.strideHeight == 2 && g.strideWidth == 2
                        && g.paddingHeight == 0 && g.paddingWidth == 0 && g.dilationHeight == 1 && g.dilationWidth == 1
                    ComputeThreads.parallelFor(chunks: chunks) { chunk in
                        for plane in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) {
                            let source = x + plane * inPlane, target = o + plane * ho * wo, index = ip + plane * ho * wo
                            if simple2x2 {
                                // 2x2 windows, stride 2, no padding or dilation: the same first-maximum rule unrolled.
                                for oi in 0..<ho {
                                    let r0 = 2 * oi * g.width, r1 = r0 + g.width
                                    for oj in 0..<wo {
                                        let i0 = r0 + 2 * oj
                                        var best = source[i0], bestIndex = i0
                                        @inline(__always) func consider(_ i: Int) {
                                            let v = source[i]
                                            if v > best || (v.isNaN && !best.isNaN) { best = v; bestIndex = i }
                                        }
                                        consider(i0 + 1)
                                        consider(r1 + 2 * oj)
                                        consider(r1 + 2 * oj + 1)
                                        target[oi * wo + oj] = best
                                        index[oi * wo + oj] = Int32(bestIndex)
                                    }
                                }
                                continue
                            }
                            for oi in 0..<ho { for oj in 0..<wo {
                                var best = -Float.infinity, bestIndex = -1
                                for ki in 0..<g.kernelHeight {
                                    let iy = oi * g.strideHeight + ki * g.dilationHeight - g.paddingHeight
                                    if iy < 0 || iy >= g.height { continue }
                                    for kj in 0..<g.kernelWidth {
                                        let ix = oj * g.strideWidth + kj * g.dilationWidth - g.paddingWidth
                                        if ix < 0 || ix >= g.width { continue }
                                        let v = source[iy * g.width + ix]
                                        // NaN propagates (PyTorch's max pooling returns NaN when a window holds one).
                                        if bestIndex < 0 || v > best || (v.isNaN && !best.isNaN) {
                                            best = v
                                            bestIndex = iy * g.width + ix
                                        }
                                    }
                                }
                                target[oi * wo + oj] = bestIndex < 0 ? -Float.infinity : best
                                index[oi * wo + oj] = Int32(Swift.max(bestIndex, 0))
                            } }
                        }
                    }
                }
            }
        }
        return (output, indices)
    }

    /// The input gradient of max pooling: each upstream value added at its output's argmax.
    public static func maxBackward(_ upstream: Tensor, indices: [Int32], inputShape: [Int], _ g: PoolingGeometry) -> Tensor {
        let planes = inputShape[0] * inputShape[1], inPlane = g.height * g.width, outPlane = g.outHeight * g.outWidth
        precondition(upstream.count == planes * outPlane && indices.count == upstream.count, "maxPool2d backward: shapes disagree")
        var dx = Tensor(shape: inputShape, repeating: 0)
        dx.withUnsafeMutableBufferPointer { db in
            upstream.withUnsafeBufferPointer { gb in
                indices.withUnsafeBufferPointer { ib in
                    guard let d = db.baseAddress, let gp = gb.baseAddress, let ip = ib.baseAddress else { return }
                    let chunks = chunks(planes: planes, planeSize: inPlane)
                    ComputeThreads.parallelFor(chunks: chunks) { chunk in
                        for plane in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) {
                            let target = d + plane * inPlane, source = gp + plane * outPlane, index = ip + plane * outPlane
                            for i in 0..<outPlane { target[Int(index[i])] += source[i] }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// The divisor of output (oi, oj): the window size, or with `countIncludePad` false the part of it inside the image.
    @inline(__always)
    static func divisor(_ oi: Int, _ oj: Int, _ g: PoolingGeometry, countIncludePad: Bool) -> Float {
        // PyTorch counts the window clipped to the padded image (the padding is inside, anything beyond is not).
        let y0 = oi * g.strideHeight - g.paddingHeight, x0 = oj * g.strideWidth - g.paddingWidth
        if countIncludePad {
            let y1 = Swift.min(y0 + g.kernelHeight, g.height + g.paddingHeight)
            let x1 = Swift.min(x0 + g.kernelWidth, g.width + g.paddingWidth)
            return Float((y1 - y0) * (x1 - x0))
        }
        let y1 = Swift.min(y0 + g.kernelHeight, g.height), x1 = Swift.min(x0 + g.kernelWidth, g.width)
        return Float((y1 - Swift.max(y0, 0)) * (x1 - Swift.max(x0, 0)))
    }

    /// Average pooling of `[B, C, H, W]` (no dilation).
    public static func averageForward(_ input: Tensor, _ g: PoolingGeometry, countIncludePad: Bool = true) -> Tensor {
        precondition(input.rank == 4 && input.shape[2] == g.height && input.shape[3] == g.width,
                     "avgPool2d: input \(input.shape) does not match [batch, channels, \(g.height), \(g.width)]")
        let planes = input.shape[0] * input.shape[1], ho = g.outHeight, wo = g.outWidth, inPlane = g.height * g.width
        return Tensor(shape: [input.shape[0], input.shape[1], ho, wo]) { out in
            input.withUnsafeBufferPointer { xb in
                guard let x = xb.baseAddress, let o = out.baseAddress else { return }
                let chunks = chunks(planes: planes, planeSize: inPlane)
                ComputeThreads.parallelFor(chunks: chunks) { chunk in
                    for plane in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) {
                        let source = x + plane * inPlane, target = o + plane * ho * wo
                        for oi in 0..<ho { for oj in 0..<wo {
                            var sum: Float = 0
                            for ki in 0..<g.kernelHeight {
                                let iy = oi * g.strideHeight + ki - g.paddingHeight
                                if iy < 0 || iy >= g.height { continue }
                                for kj in 0..<g.kernelWidth {
                                    let ix = oj * g.strideWidth + kj - g.paddingWidth
                                    if ix >= 0 && ix < g.width { sum += source[iy * g.width + ix] }
                                }
                            }
                            target[oi * wo + oj] = sum / divisor(oi, oj, g, countIncludePad: countIncludePad)
                        } }
                    }
                }
            }
        }
    }

    /// The input gradient of average pooling.
    public static func averageBackward(_ upstream: Tensor, inputShape: [Int], _ g: PoolingGeometry, countIncludePad: Bool = true) -> Tensor {
        let planes = inputShape[0] * inputShape[1], ho = g.outHeight, wo = g.outWidth, inPlane = g.height * g.width
        precondition(upstream.count == planes * ho * wo, "avgPool2d backward: shapes disagree")
        var dx = Tensor(shape: inputShape, repeating: 0)
        dx.withUnsafeMutableBufferPointer { db in
            upstream.withUnsafeBufferPointer { gb in
                guard let d = db.baseAddress, let gp = gb.baseAddress else { return }
                let chunks = chunks(planes: planes, planeSize: inPlane)
                ComputeThreads.parallelFor(chunks: chunks) { chunk in
                    for plane in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) {
                        let target = d + plane * inPlane, source = gp + plane * ho * wo
                        for oi in 0..<ho { for oj in 0..<wo {
                            let v = source[oi * wo + oj] / divisor(oi, oj, g, countIncludePad: countIncludePad)
                            for ki in 0..<g.kernelHeight {
                                let iy = oi * g.strideHeight + ki - g.paddingHeight
                                if iy < 0 || iy >= g.height { continue }
                                for kj in 0..<g.kernelWidth {
                                    let ix = oj * g.strideWidth + kj - g.paddingWidth
                                    if ix >= 0 && ix < g.width { target[iy * g.width + ix] += v }
                                }
                            }
                        } }
                    }
                }
            }
        }
        return dx
    }
}
