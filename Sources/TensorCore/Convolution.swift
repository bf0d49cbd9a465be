/// 2-D convolution (PyTorch's `nn.Conv2d`, NCHW, cross-correlation) as im2col and BLAS products over chunks of
/// images, with `naiveForward`/`naiveBackward` (seven nested loops, Double sums) beside it as the reference the tests
/// compare against.
///
/// Shapes: input `[B, C, H, W]`, weight `[O, C / groups, kh, kw]`, bias `[O]`, output `[B, O, Ho, Wo]` with
/// `Ho = (H + 2 * padH - dilationH * (kh - 1) - 1) / strideH + 1` (likewise `Wo`).
///
/// For image b and group g, the columns `col = im2col(x_b, g)` form a `[K, Ho * Wo]` matrix (`K = C / groups * kh * kw`,
/// one row per weight of a filter, zero where the window reaches into the padding), so
///
///     y_b[g] = W_g [O/groups, K] x col [K, Ho*Wo]          (forward)
///     dW_g  += dy_b[g] x col^T                              (weight gradient)
///     dcol   = W_g^T x dy_b[g];  dx_b += col2im(dcol)       (input gradient)
///
/// The images of a batch are split over the compute threads (`ComputeThreads.onWorkers`), each calling BLAS on one
/// thread. A thread takes its images in chunks of `imagesPerChunk` (set by the geometry alone): the chunk's columns
/// sit side by side in one `[K, n * Ho*Wo]` buffer, so each group's forward, weight-gradient and input-gradient
/// product is one BLAS call per chunk (the weight gradient then sums over the chunk's positions inside the product);
/// the product's `[O/groups, n * Ho*Wo]` result is copied out to the images with the bias and a fused ReLU.
/// A chunk of one image writes straight into the output, and a 1x1 convolution with stride 1 and no padding then
/// needs no columns (`col` is the image itself). Column and chunk buffers come from the `BufferPool` (no page
/// faults once warm). Weight-gradient partial sums are added in part order, so a run is reproducible at a fixed
/// thread count. Columns are recomputed in the backward pass rather than kept (memory).
public struct ConvolutionGeometry: Equatable, Hashable, Sendable {
    public var inChannels, outChannels: Int
    public var height, width: Int
    public var kernelHeight, kernelWidth: Int
    public var strideHeight, strideWidth: Int
    public var paddingHeight, paddingWidth: Int
    public var dilationHeight, dilationWidth: Int
    public var groups: Int

    public init(inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (paddingHeight, paddingWidth) = padding
        (dilationHeight, dilationWidth) = dilation
        self.groups = groups
    }

    public var outHeight: Int { (height + 2 * paddingHeight - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1 }
    public var outWidth: Int { (width + 2 * paddingWidth - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1 }
    /// Input channels per group.
    public var groupInChannels: Int { inChannels / groups }
    /// Output channels per group.
    public var groupOutChannels: Int { outChannels / groups }
    /// Weights per filter: `C / groups * kh * kw`.
    public var filterSize: Int { groupInChannels * kernelHeight * kernelWidth }
    public var weightShape: [Int] { [outChannels, groupInChannels, kernelHeight, kernelWidth] }
    /// Whether the columns are the image itself (1x1 kernel, stride 1, no padding).
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideHeight == 1 && strideWidth == 1 && paddingHeight == 0 && paddingWidth == 0
    }
}

public enum Convolution {
    /// The output positions `oj` of one kernel column whose input column `oj * stride + offset` lies inside
    /// `0 ..< size` (empty when none does).
    @inlinable @inline(__always)
    static func validRange(count: Int, stride: Int, offset: Int, size: Int) -> Range<Int> {
        // oj >= ceil(-offset / stride) and oj * stride + offset <= size - 1.
        let low = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let highInput = size - 1 - offset
        let high = highInput < 0 ? 0 : Swift.min(count, highInput / stride + 1)
        return low < high ? low..<high : 0..<0
    }

    /// Writes the `[K, Ho*Wo]` columns of channels `channelStart ..< channelStart + C/groups` of one image `x`
    /// (`[C, H, W]`) into `col`, row r starting at `col + r * rowStride` (`rowStride` defaults to Ho*Wo).
    @inlinable
    public static func im2col(_ x: UnsafePointer<Float>, channelStart: Int, _ g: ConvolutionGeometry,
                              into col: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, ld = rowStride ?? ho * wo
        let sw = g.strideWidth
        var row = 0
        for c in channelStart..<(channelStart + g.groupInChannels) {
            let image = x + c * h * w
            for ki in 0..<g.kernelHeight {
                let dy = ki * g.dilationHeight - g.paddingHeight
                let rows = validRange(count: ho, stride: g.strideHeight, offset: dy, size: h)
                for kj in 0..<g.kernelWidth {
                    let out = col + row * ld
                    let dx = kj * g.dilationWidth - g.paddingWidth
                    let cols = validRange(count: wo, stride: sw, offset: dx, size: w)
                    if sw == 1 && g.strideHeight == 1 && wo == w {
                        // Rows of the output map onto consecutive input rows: one contiguous copy of the valid rows
                        // (clipped to the channel plane), then the columns outside the image set to 0.
                        let valid = rows.count * wo
                        out.update(repeating: 0, count: rows.lowerBound * wo)
                        (out + rows.upperBound * wo).update(repeating: 0, count: (ho - rows.upperBound) * wo)
                        if valid > 0 {
                            let from = (rows.lowerBound + dy) * w + dx
                            let lowSkip = Swift.max(0, -from), highSkip = Swift.max(0, from + valid - h * w)
                            if valid > lowSkip + highSkip {
                                (out + rows.lowerBound * wo + lowSkip).update(from: image + from + lowSkip, count: valid - lowSkip - highSkip)
                            }
                            for oi in rows {
                                let o = out + oi * wo
                                for oj in 0..<cols.lowerBound { o[oj] = 0 }
                                for oj in cols.upperBound..<wo { o[oj] = 0 }
                            }
                        }
                        row += 1
                        continue
                    }
                    for oi in 0..<ho {
                        let o = out + oi * wo
                        guard rows.contains(oi) else {
                            for oj in 0..<wo { o[oj] = 0 }
                            continue
                        }
                        let source = image + (oi * g.strideHeight + dy) * w + dx
                        for oj in 0..<cols.lowerBound { o[oj] = 0 }
                        if sw == 1 {
                            for oj in cols { o[oj] = source[oj] }
                        } else {
                            for oj in cols { o[oj] = source[oj * sw] }
                        }
                        for oj in cols.upperBound..<wo { o[oj] = 0 }
                    }
                    row += 1
                }
            }
        }
    }

    /// Adds the `[K, Ho*Wo]` columns `col` (row r at `col + r * rowStride`) back into channels
    /// `channelStart ..< channelStart + C/groups` of one image gradient `dx` (`[C, H, W]`): the adjoint of `im2col`.
    @inlinable
    public static func col2im(_ col: UnsafePointer<Float>, channelStart: Int, _ g: ConvolutionGeometry,
                              into dxImage: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, ld = rowStride ?? ho * wo
        let sw = g.strideWidth
        var row = 0
        for c in channelStart..<(channelStart + g.groupInChannels) {
            let image = dxImage + c * h * w
            for ki in 0..<g.kernelHeight {
                let dy = ki * g.dilationHeight - g.paddingHeight
                let rows = validRange(count: ho, stride: g.strideHeight, offset: dy, size: h)
                for kj in 0..<g.kernelWidth {
                    let source = col + row * ld
                    let dx = kj * g.dilationWidth - g.paddingWidth
                    let cols = validRange(count: wo, stride: sw, offset: dx, size: w)
                    for oi in rows {
                        let target = image + (oi * g.strideHeight + dy) * w + dx, s = source + oi * wo
                        if sw == 1 {
                            for oj in cols { target[oj] += s[oj] }
                        } else {
                            for oj in cols { target[oj * sw] += s[oj] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// The parts a batch of `batch` images is split into (one per compute thread, at most one per image).
    @inlinable
    static func parts(batch: Int) -> Int { Swift.max(1, Swift.min(ComputeThreads.count, batch)) }

    /// Floats of column buffer a chunk of images aims at (`imagesPerChunk`): 256 KiB, inside a core's L2 with
    /// the product's packed panels beside it.
    nonisolated(unsafe) public static var chunkFloats = 1 << 16

    /// Images per chunk for geometry `g` (at most 32): as many as keep the chunk's columns near `chunkFloats`.
    /// Depends only on the geometry, so the chunks (and the bits) are the same in every run at a thread count.
    public static func imagesPerChunk(_ g: ConvolutionGeometry) -> Int {
        let perImage = Swift.max(1, g.filterSize * g.outHeight * g.outWidth)
        return Swift.max(1, Swift.min(32, chunkFloats / perImage))
    }

    /// The forward pass: `[B, O, Ho, Wo]`; with `relu` the output is clamped at 0 in the same pass.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry,
                               relu: Bool = false) -> Tensor {
        let batch = input.shape[0]
        check(input: input, weight: weight, bias: bias, geometry: g)
        if engine == .onednn, let y = oneDNNForward(input, weight: weight, bias: bias, geometry: g, relu: relu) { return y }
        let plane = g.outHeight * g.outWidth, k = g.filterSize, og = g.groupOutChannels
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * plane
        let parts = parts(batch: batch)
        let perChunk = imagesPerChunk(g)
        return Tensor(shape: [batch, g.outChannels, g.outHeight, g.outWidth]) { out in
            guard let o = out.baseAddress else { return }
            input.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let x = xb.baseAddress, let wp = wb.baseAddress else { return }
                    let bp = bias?.storage.pointer
                    ComputeThreads.onWorkers(parts: parts) { p in
                        ComputeThreads.alone {
                            let lo = p * batch / parts, hi = (p + 1) * batch / parts
                            let chunk = Swift.min(perChunk, hi - lo)
                            let needsColumns = !g.isPointwise || chunk > 1
                            let col = needsColumns ? BufferPool.shared.take(count: k * chunk * plane) : nil
                            let product = chunk > 1 ? BufferPool.shared.take(count: og * chunk * plane) : nil
                            defer {
                                if let col { BufferPool.shared.give(col, count: k * chunk * plane) }
                                if let product { BufferPool.shared.give(product, count: og * chunk * plane) }
                            }
                            var b = lo
                            while b < hi {
                                let n = Swift.min(chunk, hi - b), ld = n * plane
                                for group in 0..<g.groups {
                                    let columns: UnsafePointer<Float>
                                    if let col {
                                        for j in 0..<n {
                                            im2col(x + (b + j) * inImage, channelStart: group * g.groupInChannels, g,
                                                   into: col + j * plane, rowStride: ld)
                                        }
                                        columns = UnsafePointer(col)
                                    } else {
                                        columns = x + b * inImage + group * g.groupInChannels * plane
                                    }
                                    let weights = wp + group * og * k
                                    if n == 1 {
                                        // One image: straight into the output, the bias as the product's C.
                                        let y = o + b * outImage + group * og * plane
                                        if let bp {
                                            for c in 0..<og { (y + c * plane).update(repeating: bp[group * og + c], count: plane) }
                                        }
                                        GEMM.sgemm(transposeA: false, transposeB: false, m: og, n: plane, k: k, alpha: 1,
                                                   a: weights, lda: k, b: columns, ldb: plane,
                                                   beta: bp == nil ? 0 : 1, c: y, ldc: plane)
                                        if relu { clampNegatives(y, count: og * plane) }
                                    } else if let product {
                                        GEMM.sgemm(transposeA: false, transposeB: false, m: og, n: ld, k: k, alpha: 1,
                                                   a: weights, lda: k, b: columns, ldb: ld, beta: 0, c: product, ldc: ld)
                                        for j in 0..<n {
                                            let y = o + (b + j) * outImage + group * og * plane
                                            for c in 0..<og {
                                                copyOut(product + c * ld + j * plane, to: y + c * plane, count: plane,
                                                        bias: bp.map { $0[group * og + c] } ?? 0, relu: relu)
                                            }
                                        }
                                    }
                                }
                                b += n
                            }
                        }
                    }
                }
            }
        }
    }

    /// `target[i] = source[i] + bias`, clamped at 0 with `relu`.
    @inline(__always)
    static func copyOut(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, count: Int, bias: Float, relu: Bool) {
        if relu {
            for i in 0..<count { let v = source[i] + bias; target[i] = v < 0 ? 0 : v }
        } else {
            for i in 0..<count { target[i] = source[i] + bias }
        }
    }

    @inline(__always)
    static func clampNegatives(_ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { let v = y[i]; y[i] = v < 0 ? 0 : v }
    }

    /// The backward pass for upstream gradient `upstream` (`[B, O, Ho, Wo]`, already masked for a fused ReLU):
    /// the input gradient (when `needsInput`), the weight gradient (added to `weightGradient` when given, else
    /// returned) and the bias gradient (when `needsBias`).
    public static func backward(_ upstream: Tensor, input: Tensor, weight: Tensor, geometry g: ConvolutionGeometry,
                                needsInput: Bool, needsWeight: Bool, needsBias: Bool,
                                weightGradient: UnsafeMutablePointer<Float>? = nil)
        -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        if engine == .onednn, needsInput || needsWeight,
           let (dx, dw) = oneDNNBackward(upstream, input: input, weight: weight, geometry: g, needsInput: needsInput,
                                         needsWeight: needsWeight, weightGradient: weightGradient) {
            return (dx, dw, needsBias ? biasGradient(upstream, geometry: g) : nil)
        }
        let batch = input.shape[0]
        let plane = g.outHeight * g.outWidth, k = g.filterSize, og = g.groupOutChannels
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * plane
        let weightCount = g.outChannels * k
        let parts = parts(batch: batch)
        let perChunk = imagesPerChunk(g)
        // Per part: a weight-gradient partial sum (part 0 writes into the result directly).
        let partials = needsWeight && parts > 1 ? UnsafeMutablePointer<Float>.allocate(capacity: (parts - 1) * weightCount) : nil
        defer { partials?.deallocate() }
        var dw: Tensor? = nil
        var dx: Tensor? = nil
        let dwStorage: UnsafeMutablePointer<Float>?
        if needsWeight {
            if let weightGradient { dwStorage = weightGradient } else {
                let zeros = Tensor(shape: g.weightShape, repeating: 0)
                dwStorage = zeros.storage.pointer
                dw = zeros
            }
        } else { dwStorage = nil }
        if needsInput { dx = Tensor(shape: input.shape, repeating: 0) }
        let dxp = dx?.storage.pointer
        upstream.withUnsafeBufferPointer { gb in
            input.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let gp = gb.baseAddress, let x = xb.baseAddress, let wp = wb.baseAddress else { return }
                    ComputeThreads.onWorkers(parts: parts) { p in
                        ComputeThreads.alone {
                            let lo = p * batch / parts, hi = (p + 1) * batch / parts
                            let chunk = Swift.min(perChunk, hi - lo)
                            let batched = chunk > 1
                            let needsColumns = dwStorage != nil && (!g.isPointwise || batched)
                            let colCount = k * chunk * plane, gradientCount = og * chunk * plane
                            let col = needsColumns ? BufferPool.shared.take(count: colCount) : nil
                            let dcol = needsInput && (!g.isPointwise || batched) ? BufferPool.shared.take(count: colCount) : nil
                            let gathered = batched ? BufferPool.shared.take(count: gradientCount) : nil
                            defer {
                                if let col { BufferPool.shared.give(col, count: colCount) }
                                if let dcol { BufferPool.shared.give(dcol, count: colCount) }
                                if let gathered { BufferPool.shared.give(gathered, count: gradientCount) }
                            }
                            // Part 0 accumulates into the result (beta 1 onto what is there); the others into their
                            // own zeroed partial.
                            var target = dwStorage
                            if p > 0, let partials {
                                target = partials + (p - 1) * weightCount
                                target?.update(repeating: 0, count: weightCount)
                            }
                            var b = lo
                            while b < hi {
                                let n = Swift.min(chunk, hi - b), ld = n * plane
                                for group in 0..<g.groups {
                                    // The chunk's upstream gradient for this group as one [O/groups, n * Ho*Wo] matrix.
                                    let dyg: UnsafePointer<Float>
                                    if n == 1 {
                                        dyg = gp + b * outImage + group * og * plane
                                    } else if let gathered {
                                        for j in 0..<n {
                                            let source = gp + (b + j) * outImage + group * og * plane
                                            for c in 0..<og {
                                                (gathered + c * ld + j * plane).update(from: source + c * plane, count: plane)
                                            }
                                        }
                                        dyg = UnsafePointer(gathered)
                                    } else { continue }
                                    let weights = wp + group * og * k
                                    if let target {
                                        let columns: UnsafePointer<Float>
                                        if let col {
                                            for j in 0..<n {
                                                im2col(x + (b + j) * inImage, channelStart: group * g.groupInChannels, g,
                                                       into: col + j * plane, rowStride: ld)
                                            }
                                            columns = UnsafePointer(col)
                                        } else {
                                            columns = x + b * inImage + group * g.groupInChannels * plane
                                        }
                                        GEMM.sgemm(transposeA: false, transposeB: true, m: og, n: k, k: ld, alpha: 1,
                                                   a: dyg, lda: ld, b: columns, ldb: ld, beta: 1,
                                                   c: target + group * og * k, ldc: k)
                                    }
                                    if let dxp {
                                        if let dcol {
                                            GEMM.sgemm(transposeA: true, transposeB: false, m: k, n: ld, k: og, alpha: 1,
                                                       a: weights, lda: k, b: dyg, ldb: ld, beta: 0, c: dcol, ldc: ld)
                                            for j in 0..<n {
                                                col2im(dcol + j * plane, channelStart: group * g.groupInChannels, g,
                                                       into: dxp + (b + j) * inImage, rowStride: ld)
                                            }
                                        } else {
                                            GEMM.sgemm(transposeA: true, transposeB: false, m: k, n: plane, k: og, alpha: 1,
                                                       a: weights, lda: k, b: dyg, ldb: plane, beta: 0,
                                                       c: dxp + b * inImage + group * g.groupInChannels * plane, ldc: plane)
                                        }
                                    }
                                }
                                b += n
                            }
                        }
                    }
                }
            }
        }
        if let partials, let dwStorage {
            for p in 1..<parts {
                let s = partials + (p - 1) * weightCount
                for i in 0..<weightCount { dwStorage[i] += s[i] }
            }
        }
        return (dx, dw, needsBias ? biasGradient(upstream, geometry: g) : nil)
    }

    /// The bias gradient: each output channel's upstream gradient summed over the batch and the plane (per image in
    /// float, over images in Double).
    static func biasGradient(_ upstream: Tensor, geometry g: ConvolutionGeometry) -> Tensor {
        let batch = upstream.shape[0], plane = g.outHeight * g.outWidth, outImage = g.outChannels * plane
        return Tensor(shape: [g.outChannels]) { out in
            upstream.withUnsafeBufferPointer { gb in
                guard let base = gb.baseAddress else { return }
                for c in 0..<g.outChannels {
                    var sum: Double = 0
                    for b in 0..<batch {
                        let s = base + b * outImage + c * plane
                        var partial: Float = 0
                        for i in 0..<plane { partial += s[i] }
                        sum += Double(partial)
                    }
                    out[c] = Float(sum)
                }
            }
        }
    }

    static func check(input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry) {
        precondition(input.rank == 4 && input.shape[1] == g.inChannels && input.shape[2] == g.height && input.shape[3] == g.width,
                     "conv2d: input \(input.shape) does not match [batch, \(g.inChannels), \(g.height), \(g.width)]")
        precondition(weight.shape == g.weightShape, "conv2d: weight \(weight.shape) should be \(g.weightShape)")
        if let bias { precondition(bias.shape == [g.outChannels], "conv2d: bias \(bias.shape) should be [\(g.outChannels)]") }
    }

    // MARK: Reference

    /// Direct convolution with Double sums: the reference for `forward`.
    public static func naiveForward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry) -> Tensor {
        check(input: input, weight: weight, bias: bias, geometry: g)
        let batch = input.shape[0], ho = g.outHeight, wo = g.outWidth
        let x = input.scalars, w = weight.scalars, bv = bias?.scalars
        var out = [Float](repeating: 0, count: batch * g.outChannels * ho * wo)
        for b in 0..<batch { for o in 0..<g.outChannels {
            let group = o / g.groupOutChannels
            for oi in 0..<ho { for oj in 0..<wo {
                var sum = Double(bv?[o] ?? 0)
                for ci in 0..<g.groupInChannels {
                    let c = group * g.groupInChannels + ci
                    for ki in 0..<g.kernelHeight { for kj in 0..<g.kernelWidth {
                        let iy = oi * g.strideHeight + ki * g.dilationHeight - g.paddingHeight
                        let ix = oj * g.strideWidth + kj * g.dilationWidth - g.paddingWidth
                        guard iy >= 0, iy < g.height, ix >= 0, ix < g.width else { continue }
                        sum += Double(x[((b * g.inChannels + c) * g.height + iy) * g.width + ix])
                            * Double(w[((o * g.groupInChannels + ci) * g.kernelHeight + ki) * g.kernelWidth + kj])
                    } }
                }
                out[((b * g.outChannels + o) * ho + oi) * wo + oj] = Float(sum)
            } }
        } }
        return Tensor(shape: [batch, g.outChannels, ho, wo], scalars: out)
    }

    /// Direct gradients with Double sums: the reference for `backward` (input, weight, bias).
    public static func naiveBackward(_ upstream: Tensor, input: Tensor, weight: Tensor, geometry g: ConvolutionGeometry)
        -> (input: Tensor, weight: Tensor, bias: Tensor) {
        let batch = input.shape[0], ho = g.outHeight, wo = g.outWidth
        let x = input.scalars, w = weight.scalars, dy = upstream.scalars
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        var db = [Double](repeating: 0, count: g.outChannels)
        for b in 0..<batch { for o in 0..<g.outChannels {
            let group = o / g.groupOutChannels
            for oi in 0..<ho { for oj in 0..<wo {
                let gy = Double(dy[((b * g.outChannels + o) * ho + oi) * wo + oj])
                db[o] += gy
                for ci in 0..<g.groupInChannels {
                    let c = group * g.groupInChannels + ci
                    for ki in 0..<g.kernelHeight { for kj in 0..<g.kernelWidth {
                        let iy = oi * g.strideHeight + ki * g.dilationHeight - g.paddingHeight
                        let ix = oj * g.strideWidth + kj * g.dilationWidth - g.paddingWidth
                        guard iy >= 0, iy < g.height, ix >= 0, ix < g.width else { continue }
                        let xi = ((b * g.inChannels + c) * g.height + iy) * g.width + ix
                        let wi = ((o * g.groupInChannels + ci) * g.kernelHeight + ki) * g.kernelWidth + kj
                        dx[xi] += gy * Double(w[wi])
                        dw[wi] += gy * Double(x[xi])
                    } }
                }
            } }
        } }
        return (Tensor(shape: input.shape, scalars: dx.map { Float($0) }), Tensor(shape: weight.shape, scalars: dw.map { Float($0) }),
                Tensor(shape: [g.outChannels], scalars: db.map { Float($0) }))
    }
}
