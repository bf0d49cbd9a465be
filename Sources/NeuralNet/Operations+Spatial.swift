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
/// and shifted by `bias` (`[C]` each). Returns the result and the batch statistics per channel (mean and the
/// *unbiased* variance, which the running estimate uses, as PyTorch).
///
/// With N values per channel, x̂ = (x - mean) / sqrt(var + eps), the backward is
/// dx = (gamma / sqrt(var + eps)) * (dy - mean(dy) - x̂ * mean(dy * x̂)), dgamma = sum(dy * x̂), dbeta = sum(dy).
/// Sums accumulate in Double.
public func batchNormTraining(_ x: Variable, weight: Variable?, bias: Variable?, epsilon: Float)
    -> (output: Variable, mean: [Double], unbiasedVariance: [Double]) {
    let shape = x.shape
    let batch = shape[0], channels = shape[1], size = shape.dropFirst(2).reduce(1, *)
    let n = batch * size
    precondition(n > 1, "batch norm in training mode needs more than one value per channel, got input \(shape)")
    var mean = [Double](repeating: 0, count: channels), variance = [Double](repeating: 0, count: channels)
    var invStd = [Float](repeating: 0, count: channels)
    let xv = x.value
    let gamma = weight?.value.scalars, beta = bias?.value.scalars
    xv.withUnsafeBufferPointer { xb in
        for c in 0..<channels {
            var sum: Double = 0
            for b in 0..<batch {
                let p = xb.baseAddress! + (b * channels + c) * size
                for i in 0..<size { sum += Double(p[i]) }
            }
            let m = sum / Double(n)
            var squares: Double = 0
            for b in 0..<batch {
                let p = xb.baseAddress! + (b * channels + c) * size
                for i in 0..<size { let d = Double(p[i]) - m; squares += d * d }
            }
            mean[c] = m
            variance[c] = squares / Double(n)
            invStd[c] = Float(1 / (variance[c] + Double(epsilon)).squareRoot())
        }
    }
    let normalized = Tensor(shape: shape) { out in
        xv.withUnsafeBufferPointer { xb in
            for b in 0..<batch { for c in 0..<channels {
                let offset = (b * channels + c) * size
                let m = Float(mean[c]), s = invStd[c]
                for i in 0..<size { out[offset + i] = (xb[offset + i] - m) * s }
            } }
        }
    }
    let y = Tensor(shape: shape) { out in
        normalized.withUnsafeBufferPointer { nb in
            for b in 0..<batch { for c in 0..<channels {
                let offset = (b * channels + c) * size
                let scale = gamma?[c] ?? 1, shift = beta?[c] ?? 0
                for i in 0..<size { out[offset + i] = nb[offset + i] * scale + shift }
            } }
        }
    }
    var parents = [x]
    if let weight { parents.append(weight) }
    if let bias { parents.append(bias) }
    let output = record(y, parents) { g in
        var sumG = [Double](repeating: 0, count: channels), sumGX = [Double](repeating: 0, count: channels)
        g.withUnsafeBufferPointer { gb in
            normalized.withUnsafeBufferPointer { nb in
                for b in 0..<batch { for c in 0..<channels {
                    let offset = (b * channels + c) * size
                    var s: Double = 0, sx: Double = 0
                    for i in 0..<size { s += Double(gb[offset + i]); sx += Double(gb[offset + i]) * Double(nb[offset + i]) }
                    sumG[c] += s
                    sumGX[c] += sx
                } }
            }
        }
        var dx: Tensor? = nil
        if x.requiresGrad {
            dx = Tensor(shape: shape) { out in
                g.withUnsafeBufferPointer { gb in
                    normalized.withUnsafeBufferPointer { nb in
                        for b in 0..<batch { for c in 0..<channels {
                            let offset = (b * channels + c) * size
                            let k = (gamma?[c] ?? 1) * invStd[c]
                            let meanG = Float(sumG[c] / Double(n)), meanGX = Float(sumGX[c] / Double(n))
                            for i in 0..<size { out[offset + i] = k * (gb[offset + i] - meanG - nb[offset + i] * meanGX) }
                        } }
                    }
                }
            }
        }
        var grads: [Tensor?] = [dx]
        if weight != nil { grads.append(Tensor(shape: [channels], scalars: sumGX.map { Float($0) })) }
        if bias != nil { grads.append(Tensor(shape: [channels], scalars: sumG.map { Float($0) })) }
        return grads
    }
    let unbiased = variance.map { $0 * Double(n) / Double(n - 1) }
    return (output, mean, unbiased)
}

/// Batch normalisation with fixed statistics (evaluation mode): y = (x - mean) / sqrt(var + eps) * gamma + beta,
/// per channel of `[B, C, ...]`.
public func batchNormInference(_ x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float) -> Tensor {
    let shape = x.shape
    let batch = shape[0], channels = shape[1], size = shape.dropFirst(2).reduce(1, *)
    let m = mean.scalars, v = variance.scalars, gamma = weight?.scalars, beta = bias?.scalars
    var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
    for c in 0..<channels {
        let s = Float(1 / (Double(v[c]) + Double(epsilon)).squareRoot()) * (gamma?[c] ?? 1)
        scale[c] = s
        shift[c] = (beta?[c] ?? 0) - m[c] * s
    }
    return Tensor(shape: shape) { out in
        x.withUnsafeBufferPointer { xb in
            for b in 0..<batch { for c in 0..<channels {
                let offset = (b * channels + c) * size
                let s = scale[c], t = shift[c]
                for i in 0..<size { out[offset + i] = xb[offset + i] * s + t }
            } }
        }
    }
}
