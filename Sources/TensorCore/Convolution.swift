/// 2-D convolution (PyTorch's `nn.Conv2d`, NCHW, cross-correlation) as im2col and one BLAS product per image and
/// group, with `naiveForward`/`naiveBackward` (seven nested loops, Double sums) beside it as the reference the tests
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
/// A 1x1 convolution with stride 1 and no padding needs no columns (`col` is the image itself).
/// The images of a batch are split over the compute threads (`ComputeThreads.onWorkers`), each calling BLAS on one
/// thread with its own column buffer; weight-gradient partial sums are added in part order, so a run is
/// reproducible at a fixed thread count. Columns are recomputed in the backward pass rather than kept (memory).
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
    /// Writes the `[K, Ho*Wo]` columns of channels `channelStart ..< channelStart + C/groups` of one image `x`
    /// (`[C, H, W]`) into `col`.
    @inlinable
    public static func im2col(_ x: UnsafePointer<Float>, channelStart: Int, _ g: ConvolutionGeometry, into col: UnsafeMutablePointer<Float>) {
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, plane = ho * wo
        var row = 0
        for c in channelStart..<(channelStart + g.groupInChannels) {
            let image = x + c * h * w
            for ki in 0..<g.kernelHeight {
                for kj in 0..<g.kernelWidth {
                    let out = col + row * plane
                    let dy = ki * g.dilationHeight - g.paddingHeight, dx = kj * g.dilationWidth - g.paddingWidth
                    for oi in 0..<ho {
                        let iy = oi * g.strideHeight + dy
                        let o = out + oi * wo
                        if iy < 0 || iy >= h { o.update(repeating: 0, count: wo); continue }
                        let source = image + iy * w
                        if g.strideWidth == 1 {
                            // Contiguous run: zeros left of column 0 and right of column w - 1, one copy between.
                            let first = Swift.max(0, -dx), last = Swift.min(wo, w - dx)
                            if first > 0 { o.update(repeating: 0, count: Swift.min(first, wo)) }
                            if last > first { (o + first).update(from: source + first + dx, count: last - first) }
                            if last < wo { (o + Swift.max(last, 0)).update(repeating: 0, count: wo - Swift.max(last, 0)) }
                        } else {
                            for oj in 0..<wo {
                                let ix = oj * g.strideWidth + dx
                                o[oj] = ix >= 0 && ix < w ? source[ix] : 0
                            }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Adds the `[K, Ho*Wo]` columns `col` back into channels `channelStart ..< channelStart + C/groups` of one image
    /// gradient `dx` (`[C, H, W]`): the adjoint of `im2col`.
    @inlinable
    public static func col2im(_ col: UnsafePointer<Float>, channelStart: Int, _ g: ConvolutionGeometry, into dxImage: UnsafeMutablePointer<Float>) {
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, plane = ho * wo
        var row = 0
        for c in channelStart..<(channelStart + g.groupInChannels) {
            let image = dxImage + c * h * w
            for ki in 0..<g.kernelHeight {
                for kj in 0..<g.kernelWidth {
                    let source = col + row * plane
                    let dy = ki * g.dilationHeight - g.paddingHeight, dx = kj * g.dilationWidth - g.paddingWidth
                    for oi in 0..<ho {
                        let iy = oi * g.strideHeight + dy
                        if iy < 0 || iy >= h { continue }
                        let target = image + iy * w, s = source + oi * wo
                        if g.strideWidth == 1 {
                            let first = Swift.max(0, -dx), last = Swift.min(wo, w - dx)
                            if last > first { for oj in first..<last { target[oj + dx] += s[oj] } }
                        } else {
                            for oj in 0..<wo {
                                let ix = oj * g.strideWidth + dx
                                if ix >= 0 && ix < w { target[ix] += s[oj] }
                            }
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

    /// The forward pass: `[B, O, Ho, Wo]`; with `relu` the output is clamped at 0 in the same pass.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry,
                               relu: Bool = false) -> Tensor {
        let batch = input.shape[0]
        check(input: input, weight: weight, bias: bias, geometry: g)
        let ho = g.outHeight, wo = g.outWidth, plane = ho * wo, k = g.filterSize, og = g.groupOutChannels
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * plane
        let parts = parts(batch: batch)
        return Tensor(shape: [batch, g.outChannels, ho, wo]) { out in
            guard let o = out.baseAddress else { return }
            input.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let x = xb.baseAddress, let wp = wb.baseAddress else { return }
                    let bp = bias?.storage.pointer
                    ComputeThreads.onWorkers(parts: parts) { p in
                        ComputeThreads.alone {
                            let col = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * plane)
                            defer { col?.deallocate() }
                            for b in (p * batch / parts)..<((p + 1) * batch / parts) {
                                let y = o + b * outImage
                                if let bp {
                                    for c in 0..<g.outChannels { (y + c * plane).update(repeating: bp[c], count: plane) }
                                }
                                for group in 0..<g.groups {
                                    let columns: UnsafePointer<Float>
                                    if let col {
                                        im2col(x + b * inImage, channelStart: group * g.groupInChannels, g, into: col)
                                        columns = UnsafePointer(col)
                                    } else {
                                        columns = x + b * inImage + group * g.groupInChannels * plane
                                    }
                                    GEMM.sgemm(transposeA: false, transposeB: false, m: og, n: plane, k: k, alpha: 1,
                                               a: wp + group * og * k, lda: k, b: columns, ldb: plane,
                                               beta: bp == nil ? 0 : 1, c: y + group * og * plane, ldc: plane)
                                }
                                if relu { for i in 0..<outImage where y[i] < 0 { y[i] = 0 } }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The backward pass for upstream gradient `upstream` (`[B, O, Ho, Wo]`, already masked for a fused ReLU):
    /// the input gradient (when `needsInput`), the weight gradient (added to `weightGradient` when given, else
    /// returned) and the bias gradient (when `needsBias`).
    public static func backward(_ upstream: Tensor, input: Tensor, weight: Tensor, geometry g: ConvolutionGeometry,
                                needsInput: Bool, needsWeight: Bool, needsBias: Bool,
                                weightGradient: UnsafeMutablePointer<Float>? = nil)
        -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        let batch = input.shape[0]
        let ho = g.outHeight, wo = g.outWidth, plane = ho * wo, k = g.filterSize, og = g.groupOutChannels
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * plane
        let weightCount = g.outChannels * k
        let parts = parts(batch: batch)
        // Per part: a weight-gradient partial sum (part 0 writes into the result directly).
        let partials = needsWeight && parts > 1 ? UnsafeMutablePointer<Float>.allocate(capacity: (parts - 1) * weightCount) : nil
        defer { partials?.deallocate() }
        var dw: Tensor? = nil
        var dx: Tensor? = nil
        let dwStorage: UnsafeMutablePointer<Float>?
        if needsWeight {
            if let weightGradient { dwStorage = weightGradient } else {
                dw = Tensor(shape: g.weightShape, repeating: 0)
                dwStorage = dw!.storage.pointer
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
                            let needsColumns = !g.isPointwise
                            let col = needsColumns ? UnsafeMutablePointer<Float>.allocate(capacity: k * plane) : nil
                            let dcol = needsInput ? UnsafeMutablePointer<Float>.allocate(capacity: k * plane) : nil
                            defer { col?.deallocate(); dcol?.deallocate() }
                            // Part 0 accumulates into the result (beta 1 onto what is there); the others into their
                            // own zeroed partial.
                            var target = dwStorage
                            if p > 0, let partials {
                                target = partials + (p - 1) * weightCount
                                target?.update(repeating: 0, count: weightCount)
                            }
                            for b in (p * batch / parts)..<((p + 1) * batch / parts) {
                                let dy = gp + b * outImage
                                for group in 0..<g.groups {
                                    let dyg = dy + group * og * plane
                                    if let target {
                                        let columns: UnsafePointer<Float>
                                        if let col {
                                            im2col(x + b * inImage, channelStart: group * g.groupInChannels, g, into: col)
                                            columns = UnsafePointer(col)
                                        } else {
                                            columns = x + b * inImage + group * g.groupInChannels * plane
                                        }
                                        GEMM.sgemm(transposeA: false, transposeB: true, m: og, n: k, k: plane, alpha: 1,
                                                   a: dyg, lda: plane, b: columns, ldb: plane, beta: 1,
                                                   c: target + group * og * k, ldc: k)
                                    }
                                    if let dxp {
                                        let image = dxp + b * inImage
                                        if let dcol, needsColumns {
                                            GEMM.sgemm(transposeA: true, transposeB: false, m: k, n: plane, k: og, alpha: 1,
                                                       a: wp + group * og * k, lda: k, b: dyg, ldb: plane, beta: 0,
                                                       c: dcol, ldc: plane)
                                            col2im(dcol, channelStart: group * g.groupInChannels, g, into: image)
                                        } else {
                                            GEMM.sgemm(transposeA: true, transposeB: false, m: k, n: plane, k: og, alpha: 1,
                                                       a: wp + group * og * k, lda: k, b: dyg, ldb: plane, beta: 0,
                                                       c: image + group * g.groupInChannels * plane, ldc: plane)
                                        }
                                    }
                                }
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
        var db: Tensor? = nil
        if needsBias {
            db = Tensor(shape: [g.outChannels]) { out in
                upstream.withUnsafeBufferPointer { gb in
                    for c in 0..<g.outChannels {
                        var sum: Double = 0
                        for b in 0..<batch {
                            let s = gb.baseAddress! + b * outImage + c * plane
                            var partial: Float = 0
                            for i in 0..<plane { partial += s[i] }
                            sum += Double(partial)
                        }
                        out[c] = Float(sum)
                    }
                }
            }
        }
        return (dx, dw, db)
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
