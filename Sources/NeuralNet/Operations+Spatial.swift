import TensorCore

// The differentiable operations on image batches `[B, C, H, W]` (convolution, pooling, batch normalisation), with
// their backward rules; the kernels are in TensorCore (`Convolution`, `Pooling`).

/// PyTorch's `F.conv2d` (cross-correlation), optionally followed by ReLU in the same pass.
/// - x: `[B, C, H, W]`; weight: `[O, C / groups, kh, kw]`; bias: `[O]`; result `[B, O, Ho, Wo]`.
/// Backward (`Convolution.backward`): dW = sum_b dy_b x col_b^T, db = sums of dy over batch and positions,
/// dx = col2im(W^T dy_b); with ReLU, dy is first masked by y > 0.
public func conv2d(_ x: Variable, weight: Variable, bias: Variable?, geometry: ConvolutionGeometry,
                   activation: Activation = .identity) -> Variable {
    let xv = x.value, wv = weight.value
    let y = Convolution.forward(xv, weight: wv, bias: bias?.value, geometry: geometry, relu: activation == .relu)
    var parents = [x, weight]
    if let bias { parents.append(bias) }
    return record(y, parents) { upstream in
        var g = upstream
        if activation == .relu {
            g = Tensor(shape: upstream.shape) { out in
                upstream.withUnsafeBufferPointer { gb in
                    y.withUnsafeBufferPointer { yb in Kernels.reluBackward(gb, output: yb, into: out) }
                }
            }
        }
        // Accumulate straight into an existing weight gradient (beta 1), no temporary.
        let accumulate = weight.requiresGrad && weight.isLeaf && weight.grad != nil
        let result: (input: Tensor?, weight: Tensor?, bias: Tensor?)
        if accumulate {
            result = weight.grad!.withUnsafeMutableBufferPointer { dw in
                Convolution.backward(g, input: xv, weight: wv, geometry: geometry, needsInput: x.requiresGrad,
                                     needsWeight: true, needsBias: bias != nil, weightGradient: dw.baseAddress)
            }
        } else {
            result = Convolution.backward(g, input: xv, weight: wv, geometry: geometry, needsInput: x.requiresGrad,
                                          needsWeight: weight.requiresGrad, needsBias: bias != nil)
        }
        var grads: [Tensor?] = [result.input, result.weight]
        if bias != nil { grads.append(result.bias) }
        return grads
    }
}

/// PyTorch's `F.max_pool2d` (`ceil_mode=False`): the gradient goes to the first maximum of each window.
public func maxPool2d(_ x: Variable, geometry: PoolingGeometry) -> Variable {
    let (y, indices) = Pooling.maxForward(x.value, geometry)
    let shape = x.shape
    return record(y, [x]) { g in [Pooling.maxBackward(g, indices: indices, inputShape: shape, geometry)] }
}

/// PyTorch's `F.avg_pool2d` (`ceil_mode=False`).
public func avgPool2d(_ x: Variable, geometry: PoolingGeometry, countIncludePad: Bool = true) -> Variable {
    let y = Pooling.averageForward(x.value, geometry, countIncludePad: countIncludePad)
    let shape = x.shape
    return record(y, [x]) { g in [Pooling.averageBackward(g, inputShape: shape, geometry, countIncludePad: countIncludePad)] }
}

/// The mean over every axis after the channel axis: `[B, C, ...]` -> `[B, C]` (global average pooling,
/// PyTorch's `x.mean((2, 3))`). d/dx = g / positions at every position.
public func globalAveragePool(_ x: Variable) -> Variable {
    let shape = x.shape
    let planes = shape[0] * shape[1], size = shape.dropFirst(2).reduce(1, *)
    let y = Tensor(shape: [shape[0], shape[1]]) { out in
        x.value.withUnsafeBufferPointer { xb in
            for p in 0..<planes {
                var sum: Float = 0
                for i in 0..<size { sum += xb[p * size + i] }
                out[p] = sum / Float(size)
            }
        }
    }
    return record(y, [x]) { g in
        [Tensor(shape: shape) { out in
            g.withUnsafeBufferPointer { gb in
                for p in 0..<planes {
                    let v = gb[p] / Float(size)
                    for i in 0..<size { out[p * size + i] = v }
                }
            }
        }]
    }
}

/// Batch normalisation in training mode (PyTorch's `F.batch_norm(training=True)`) over `[B, C, ...]`: each channel
/// normalised by the batch's mean and biased variance over the batch and every position, then scaled by `weight`
/// and shifted by `bias` (`[C]` each), and with `relu` clamped at 0 in the same pass. Returns the result and the
/// batch statistics per channel (mean and the *unbiased* variance, which the running estimate uses, as PyTorch).
///
/// With N values per channel, x̂ = (x - mean) / sqrt(var + eps), the backward is
/// dx = (gamma / sqrt(var + eps)) * (dy - mean(dy) - x̂ * mean(dy * x̂)), dgamma = sum(dy * x̂), dbeta = sum(dy)
/// (dy first masked by y > 0 with `relu`). Sums accumulate in Double. x̂ is recomputed from x in the backward
/// pass (the same float operations as the forward), so only the input and the output are kept. Channels are spread
/// over the compute threads; each channel's sums run in one fixed order, so the bits do not depend on the thread
/// count.
public func batchNormTraining(_ x: Variable, weight: Variable?, bias: Variable?, epsilon: Float, relu: Bool = false)
    -> (output: Variable, mean: [Double], unbiasedVariance: [Double]) {
    let shape = x.shape
    let batch = shape[0], channels = shape[1], size = shape.dropFirst(2).reduce(1, *)
    let n = batch * size
    precondition(n > 1, "batch norm in training mode needs more than one value per channel, got input \(shape)")
    var mean = [Double](repeating: 0, count: channels), variance = [Double](repeating: 0, count: channels)
    var meanF = [Float](repeating: 0, count: channels), invStd = [Float](repeating: 0, count: channels)
    let xv = x.value
    let gamma = weight?.value.scalars ?? [Float](repeating: 1, count: channels)
    let beta = bias?.value.scalars ?? [Float](repeating: 0, count: channels)
    let chunks = SpatialKernels.channelChunks(channels: channels, elements: batch * channels * size)
    let y = Tensor(shape: shape) { out in
        xv.withUnsafeBufferPointer { xb in
            mean.withUnsafeMutableBufferPointer { meanB in
            variance.withUnsafeMutableBufferPointer { varB in
            meanF.withUnsafeMutableBufferPointer { meanFB in
            invStd.withUnsafeMutableBufferPointer { invB in
                guard let xp = xb.baseAddress, let o = out.baseAddress else { return }
                ComputeThreads.parallelFor(chunks: chunks) { chunk in
                    for c in (chunk * channels / chunks)..<((chunk + 1) * channels / chunks) {
                        var sum: Double = 0
                        for b in 0..<batch { sum += SpatialKernels.sum(xp + (b * channels + c) * size, count: size) }
                        let m = sum / Double(n)
                        var squares: Double = 0
                        for b in 0..<batch {
                            squares += SpatialKernels.squaredDeviations(xp + (b * channels + c) * size, count: size, mean: m)
                        }
                        meanB[c] = m
                        varB[c] = squares / Double(n)
                        let mf = Float(m), s = Float(1 / (varB[c] + Double(epsilon)).squareRoot())
                        meanFB[c] = mf
                        invB[c] = s
                        for b in 0..<batch {
                            let offset = (b * channels + c) * size
                            SpatialKernels.normalize(xp + offset, into: o + offset, count: size, mean: mf, invStd: s,
                                                     scale: gamma[c], shift: beta[c], relu: relu)
                        }
                    }
                }
            } } } }
        }
    }
    var parents = [x]
    if let weight { parents.append(weight) }
    if let bias { parents.append(bias) }
    let output = record(y, parents) { g in
        var sumG = [Double](repeating: 0, count: channels), sumGX = [Double](repeating: 0, count: channels)
        let needsInput = x.requiresGrad
        var dx: Tensor? = nil
        let dxTensor = needsInput ? Tensor(shape: shape, repeating: 0) : nil
        let dxp = dxTensor?.storage.pointer
        g.withUnsafeBufferPointer { gb in
            xv.withUnsafeBufferPointer { xb in
                y.withUnsafeBufferPointer { yb in
                    sumG.withUnsafeMutableBufferPointer { sg in
                    sumGX.withUnsafeMutableBufferPointer { sgx in
                        guard let gp = gb.baseAddress, let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                        ComputeThreads.parallelFor(chunks: chunks) { chunk in
                            for c in (chunk * channels / chunks)..<((chunk + 1) * channels / chunks) {
                                let m = meanF[c], s = invStd[c]
                                var total: Double = 0, totalX: Double = 0
                                for b in 0..<batch {
                                    let offset = (b * channels + c) * size
                                    let r = SpatialKernels.gradientSums(gp + offset, x: xp + offset, output: relu ? yp + offset : nil,
                                                                        count: size, mean: m, invStd: s)
                                    total += r.sum
                                    totalX += r.sumX
                                }
                                sg[c] = total
                                sgx[c] = totalX
                                guard let dxp else { continue }
                                let k = gamma[c] * s
                                let meanG = Float(total / Double(n)), meanGX = Float(totalX / Double(n))
                                for b in 0..<batch {
                                    let offset = (b * channels + c) * size
                                    SpatialKernels.inputGradient(gp + offset, x: xp + offset, output: relu ? yp + offset : nil,
                                                                 into: dxp + offset, count: size, mean: m, invStd: s, k: k,
                                                                 meanG: meanG, meanGX: meanGX)
                                }
                            }
                        }
                    } }
                }
            }
        }
        dx = dxTensor
        var grads: [Tensor?] = [dx]
        if weight != nil { grads.append(Tensor(shape: [channels], scalars: sumGX.map { Float($0) })) }
        if bias != nil { grads.append(Tensor(shape: [channels], scalars: sumG.map { Float($0) })) }
        return grads
    }
    let unbiased = variance.map { $0 * Double(n) / Double(n - 1) }
    return (output, mean, unbiased)
}

/// relu(a + b) for two tensors of one shape, in one pass; d/da = d/db = g where the result is positive.
public func addReLU(_ a: Variable, _ b: Variable) -> Variable {
    precondition(a.shape == b.shape, "addReLU: shapes \(a.shape) and \(b.shape) differ")
    let av = a.value, bv = b.value
    let y = Tensor(shape: a.shape) { out in
        av.withUnsafeBufferPointer { ab in
            bv.withUnsafeBufferPointer { bb in
                guard let ap = ab.baseAddress, let bp = bb.baseAddress, let o = out.baseAddress else { return }
                ComputeThreads.parallelRanges(count: out.count) { r in
                    SpatialKernels.addReLU(ap + r.lowerBound, bp + r.lowerBound, into: o + r.lowerBound, count: r.count)
                }
            }
        }
    }
    return record(y, [a, b]) { g in
        let masked = Tensor(shape: g.shape) { out in
            g.withUnsafeBufferPointer { gb in
                y.withUnsafeBufferPointer { yb in
                    guard let gp = gb.baseAddress, let yp = yb.baseAddress, let o = out.baseAddress else { return }
                    ComputeThreads.parallelRanges(count: out.count) { r in
                        SpatialKernels.mask(gp + r.lowerBound, by: yp + r.lowerBound, into: o + r.lowerBound, count: r.count)
                    }
                }
            }
        }
        return [masked, masked]
    }
}

/// Vectorised loops of the spatial operations (SIMD16 where the compiler cannot prove the pointers apart).
enum SpatialKernels {
    /// Channel chunks for `parallelFor`: one per channel up to 4 per thread, a single one for small tensors.
    static func channelChunks(channels: Int, elements: Int) -> Int {
        elements < 1 << 15 ? 1 : Swift.min(channels, 4 * ComputeThreads.count)
    }

    typealias V = SIMD16<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// The sum of `count` floats in Double (eight lanes, then the lanes and the tail in order).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>(), i = 0
        while i + 8 <= count {
            acc += SIMD8<Double>(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self))
            i += 8
        }
        var total = acc.sum()
        while i < count { total += Double(p[i]); i += 1 }
        return total
    }

    /// The sum of (x - mean)^2 in Double.
    @inline(__always)
    static func squaredDeviations(_ p: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        var acc = SIMD8<Double>(), i = 0
        let m = SIMD8<Double>(repeating: mean)
        while i + 8 <= count {
            let d = SIMD8<Double>(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)) - m
            acc += d * d
            i += 8
        }
        var total = acc.sum()
        while i < count { let d = Double(p[i]) - mean; total += d * d; i += 1 }
        return total
    }

    /// out = ((x - mean) * invStd) * scale + shift, clamped at 0 with `relu`.
    @inline(__always)
    static func normalize(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, mean: Float, invStd: Float,
                          scale: Float, shift: Float, relu: Bool) {
        var i = 0
        let m = V(repeating: mean), s = V(repeating: invStd), a = V(repeating: scale), t = V(repeating: shift), zero = V()
        while i + 16 <= count {
            var v = ((load(x + i) - m) * s) * a + t
            if relu { v = v.replacing(with: zero, where: v .< zero) }
            store(v, out + i)
            i += 16
        }
        while i < count {
            let v = ((x[i] - mean) * invStd) * scale + shift
            out[i] = relu && v < 0 ? 0 : v
            i += 1
        }
    }

    /// The sums of g and of g * x̂ (x̂ = (x - mean) * invStd) in Double, g taken as 0 where `output` is not positive.
    @inline(__always)
    static func gradientSums(_ g: UnsafePointer<Float>, x: UnsafePointer<Float>, output: UnsafePointer<Float>?, count: Int,
                             mean: Float, invStd: Float) -> (sum: Double, sumX: Double) {
        var accG = SIMD8<Double>(), accGX = SIMD8<Double>(), i = 0
        let m = SIMD8<Float>(repeating: mean), s = SIMD8<Float>(repeating: invStd), zero = SIMD8<Float>()
        while i + 8 <= count {
            var gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            if let output { gv = gv.replacing(with: zero, where: UnsafeRawPointer(output + i).loadUnaligned(as: SIMD8<Float>.self) .<= zero) }
            let xhat = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - m) * s
            let gd = SIMD8<Double>(gv)
            accG += gd
            accGX += gd * SIMD8<Double>(xhat)
            i += 8
        }
        var total = accG.sum(), totalX = accGX.sum()
        while i < count {
            let gi: Float = output.map { $0[i] > 0 ? g[i] : 0 } ?? g[i]
            total += Double(gi)
            totalX += Double(gi) * Double((x[i] - mean) * invStd)
            i += 1
        }
        return (total, totalX)
    }

    /// dx = k * (g - meanG - x̂ * meanGX), g masked by `output` > 0 when given.
    @inline(__always)
    static func inputGradient(_ g: UnsafePointer<Float>, x: UnsafePointer<Float>, output: UnsafePointer<Float>?,
                              into dx: UnsafeMutablePointer<Float>, count: Int, mean: Float, invStd: Float, k: Float,
                              meanG: Float, meanGX: Float) {
        var i = 0
        let m = V(repeating: mean), s = V(repeating: invStd), kv = V(repeating: k), mg = V(repeating: meanG)
        let mgx = V(repeating: meanGX), zero = V()
        while i + 16 <= count {
            var gv = load(g + i)
            if let output { gv = gv.replacing(with: zero, where: load(output + i) .<= zero) }
            let xhat = (load(x + i) - m) * s
            store(kv * (gv - mg - xhat * mgx), dx + i)
            i += 16
        }
        while i < count {
            let gi: Float = output.map { $0[i] > 0 ? g[i] : 0 } ?? g[i]
            dx[i] = k * (gi - meanG - ((x[i] - mean) * invStd) * meanGX)
            i += 1
        }
    }

    @inline(__always)
    static func addReLU(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let zero = V()
        while i + 16 <= count {
            let v = load(a + i) + load(b + i)
            store(v.replacing(with: zero, where: v .< zero), out + i)
            i += 16
        }
        while i < count { let v = a[i] + b[i]; out[i] = v < 0 ? 0 : v; i += 1 }
    }

    /// out = g where y > 0, else 0.
    @inline(__always)
    static func mask(_ g: UnsafePointer<Float>, by y: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let zero = V()
        while i + 16 <= count {
            store(load(g + i).replacing(with: zero, where: load(y + i) .<= zero), out + i)
            i += 16
        }
        while i < count { out[i] = y[i] > 0 ? g[i] : 0; i += 1 }
    }
}

/// Batch normalisation with fixed statistics (evaluation mode): y = (x - mean) / sqrt(var + eps) * gamma + beta,
/// per channel of `[B, C, ...]`, clamped at 0 when `relu`. Planes are spread over the compute threads.
public func batchNormInference(_ x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float,
                               relu: Bool = false) -> Tensor {
    let shape = x.shape
    let batch = shape[0], channels = shape[1], size = shape.dropFirst(2).reduce(1, *)
    let m = mean.scalars, v = variance.scalars, gamma = weight?.scalars, beta = bias?.scalars
    var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
    for c in 0..<channels {
        let s = Float(1 / (Double(v[c]) + Double(epsilon)).squareRoot()) * (gamma?[c] ?? 1)
        scale[c] = s
        shift[c] = (beta?[c] ?? 0) - m[c] * s
    }
    let planes = batch * channels
    let chunks = x.count < 1 << 15 ? 1 : Swift.min(planes, 4 * ComputeThreads.count)
    return Tensor(shape: shape) { out in
        x.withUnsafeBufferPointer { xb in
            guard let xp = xb.baseAddress, let o = out.baseAddress else { return }
            ComputeThreads.parallelFor(chunks: chunks) { chunk in
                for plane in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) {
                    let c = plane % channels, offset = plane * size
                    // x * s + t (mean 0, inverse deviation 1 in `normalize`'s terms).
                    SpatialKernels.normalize(xp + offset, into: o + offset, count: size, mean: 0, invStd: 1,
                                             scale: scale[c], shift: shift[c], relu: relu)
                }
            }
        }
    }
}
