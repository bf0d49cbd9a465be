import Foundation
import TensorCore

// Every differentiable operation and its backward rule, in one place (tinygrad's single gradient table).
// Each op computes its value on tensors; when any input requires a gradient it records a closure that maps the
// upstream gradient dL/d(out) to dL/d(input) for each input.

@inline(__always) func record(_ value: Tensor, _ parents: [Variable], _ rule: @escaping (Tensor) -> [Tensor?]) -> Variable {
    if parents.contains(where: { $0.requiresGrad }) {
        return Variable(value: value, parents: parents, backward: rule)
    }
    return Variable(value)
}

// MARK: Arithmetic (broadcasting)

/// a + b with broadcasting. d/da = upstream summed to a's shape.
public func + (a: Variable, b: Variable) -> Variable {
    record(a.value + b.value, [a, b]) { g in [g.sumToShape(a.shape), g.sumToShape(b.shape)] }
}

/// a - b with broadcasting.
public func - (a: Variable, b: Variable) -> Variable {
    record(a.value - b.value, [a, b]) { g in [g.sumToShape(a.shape), (-g).sumToShape(b.shape)] }
}

/// a * b elementwise with broadcasting. d/da = g * b, d/db = g * a.
public func * (a: Variable, b: Variable) -> Variable {
    let av = a.value, bv = b.value
    return record(av * bv, [a, b]) { g in
        [a.requiresGrad ? (g * bv).sumToShape(av.shape) : nil, b.requiresGrad ? (g * av).sumToShape(bv.shape) : nil]
    }
}

/// a / b elementwise with broadcasting. d/da = g / b, d/db = -g * a / b^2.
public func / (a: Variable, b: Variable) -> Variable {
    let av = a.value, bv = b.value
    return record(av / bv, [a, b]) { g in
        [a.requiresGrad ? (g / bv).sumToShape(av.shape) : nil,
         b.requiresGrad ? (-(g * av) / (bv * bv)).sumToShape(bv.shape) : nil]
    }
}

/// s * a.
public func * (s: Float, a: Variable) -> Variable {
    record(a.value * s, [a]) { g in [g * s] }
}

/// a + s.
public func + (a: Variable, s: Float) -> Variable {
    record(a.value + s, [a]) { g in [g] }
}

/// -a.
public prefix func - (a: Variable) -> Variable {
    record(-a.value, [a]) { g in [-g] }
}

// MARK: Matrix products

/// op(a) x op(b) for matrices. d/da = g x b^T (transposes swapped as needed), d/db = a^T x g.
public func matmul(_ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false) -> Variable {
    let av = a.value, bv = b.value
    let out = av.matmul(bv, transposeSelf: transposeA, transposeOther: transposeB)
    return record(out, [a, b]) { g in
        var ga: Tensor? = nil, gb: Tensor? = nil
        if a.requiresGrad {
            // C = A B: dA = G B^T; C = A^T B: dA = B G^T; with B transposed, swap accordingly.
            ga = transposeA ? bv.matmul(g, transposeSelf: transposeB, transposeOther: true)
                            : g.matmul(bv, transposeSelf: false, transposeOther: !transposeB)
        }
        if b.requiresGrad {
            gb = transposeB ? g.matmul(av, transposeSelf: true, transposeOther: transposeA)
                            : av.matmul(g, transposeSelf: !transposeA, transposeOther: false)
        }
        return [ga, gb]
    }
}

/// Activation fused into `linear`.
public enum Activation: String, Codable, Sendable { case identity, relu }

/// The affine map of `nn.Linear`: `y = x W^T + b`, optionally followed by ReLU in the same pass.
/// - x: `[batch, in]`; weight: `[out, in]` (PyTorch's layout); bias: `[out]`; y: `[batch, out]`.
/// Backward: with `G` the upstream gradient (masked by y > 0 for ReLU), dW = G^T x, db = column sums of G,
/// dx = G W (skipped when x needs no gradient, e.g. the network input). When x is mostly zeros (`SparseKernels`:
/// images, hidden units under dropout) the forward product and dW multiply only its nonzeros.
public func linear(_ x: Variable, weight: Variable, bias: Variable?, activation: Activation = .identity) -> Variable {
    // Whether x is mostly zeros, counted once for the forward product and the weight gradient.
    let inputIsSparse = SparseKernels.appliesTo(x.value)
    let y = linearForward(x.value, weight: weight.value, bias: bias?.value, activation: activation,
                          inputIsSparse: inputIsSparse)
    let xv = x.value, wv = weight.value
    var parents = [x, weight]
    if let bias { parents.append(bias) }
    return record(y, parents) { upstream in
        if activation == .relu, weight.requiresGrad,
           let fused = reluLinearBackward(upstream, output: y, input: xv, weightValue: wv, weight: weight,
                                          needsInputGradient: x.requiresGrad, inputIsSparse: inputIsSparse) {
            return bias != nil ? [fused.gx, fused.gw, fused.gb] : [fused.gx, fused.gw]
        }
        var g = upstream
        if activation == .relu {
            // A new buffer in one pass: `upstream` is still referenced by the caller, so masking it in place would
            // first copy it (copy-on-write).
            g = Tensor(shape: upstream.shape) { out in
                upstream.withUnsafeBufferPointer { gb in
                    y.withUnsafeBufferPointer { yb in Kernels.reluBackward(gb, output: yb, into: out) }
                }
            }
        }
        let gx: Tensor? = x.requiresGrad ? g.matmul(wv) : nil
        var gw: Tensor? = nil
        if weight.requiresGrad {
            let sparseInput = SparseKernels.gradientAppliesTo(xv, units: g.shape[1], inputIsSparse: inputIsSparse)
            if weight.grad != nil, weight.isLeaf {
                // Accumulate straight into the existing gradient buffer (sgemm with beta = 1), no temporary.
                if sparseInput {
                    SparseKernels.addWeightGradient(g, x: xv, to: &weight.grad!, threads: ComputeThreads.count)
                } else {
                    weight.grad!.addMatmul(g, xv, transposeA: true, transposeB: false, alpha: 1, beta: 1)
                }
            } else {
                gw = sparseInput ? SparseKernels.weightGradient(g, x: xv, threads: ComputeThreads.count)
                                 : g.matmul(xv, transposeSelf: true)
            }
        }
        var result: [Tensor?] = [gx, gw]
        if bias != nil { result.append(g.sumRows()) }
        return result
    }
}

/// The backward of `linear` with ReLU when its weight-gradient product splits by output units
/// (`GEMM.splitsByRows`, i.e. at least as many outputs as inputs; nil otherwise): each thread masks the upstream
/// gradient for the units whose weight rows it computes, sums them for the bias gradient and then runs its part of
/// dW = G^T x, all in the product's `before` callback while that slice of G is in its cache
/// (`Kernels.reluBackwardColumns`). dx = G W follows on the whole masked G. The same arithmetic, bit for bit, as the
/// separate passes (`reluBackward`, `columnSums`, then the two products). `wv` is the weight as the forward pass
/// used it; `gw` is nil when the gradient was accumulated into the weight's existing `grad` (sgemm with beta 1).
func reluLinearBackward(_ upstream: Tensor, output y: Tensor, input xv: Tensor, weightValue wv: Tensor, weight: Variable,
                        needsInputGradient: Bool, inputIsSparse: Bool? = nil) -> (gx: Tensor?, gw: Tensor?, gb: Tensor)? {
    let batch = upstream.shape[0], outCount = wv.shape[0], inCount = wv.shape[1]
    guard upstream.shape == [batch, outCount], xv.shape == [batch, inCount],
          GEMM.splitsByRows(m: outCount, n: inCount) else { return nil }
    var gw: Tensor? = nil
    var gb: Tensor? = nil
    // A mostly-zero input (image pixels, hidden units under dropout) takes the sparse weight gradient.
    let sparseInput = SparseKernels.gradientAppliesTo(xv, units: outCount, inputIsSparse: inputIsSparse)
    let g = Tensor(shape: [batch, outCount]) { gOut in
        gb = Tensor(shape: [outCount]) { sums in
            upstream.withUnsafeBufferPointer { ub in
                y.withUnsafeBufferPointer { yb in
                    xv.withUnsafeBufferPointer { xb in
                        guard let u = ub.baseAddress, let yp = yb.baseAddress, let xp = xb.baseAddress,
                              let gp = gOut.baseAddress, let sp = sums.baseAddress else { return }
                        // The parts split dW by rows (output units) = columns of G: each masks its own columns.
                        let mask: (GEMM.Block) -> Void = { block in
                            Kernels.reluBackwardColumns(u, output: yp, into: gp, rows: batch, stride: outCount,
                                                        columns: block.rows, sums: sp)
                        }
                        func product(into c: UnsafeMutablePointer<Float>, beta: Float) {
                            if sparseInput {
                                SparseKernels.weightGradient(g: gp, ldg: outCount, x: xv, units: outCount, into: c,
                                                             accumulate: beta != 0, threads: ComputeThreads.count,
                                                             before: { mask(GEMM.Block(rows: $0, columns: 0..<inCount)) })
                                return
                            }
                            GEMM.sgemm(transposeA: true, transposeB: false, m: outCount, n: inCount, k: batch, alpha: 1,
                                       a: gp, lda: outCount, b: xp, ldb: inCount, beta: beta, c: c, ldc: inCount,
                                       before: mask)
                        }
                        if weight.grad != nil, weight.isLeaf {
                            // Accumulate straight into the existing gradient buffer (beta 1), no temporary.
                            weight.grad!.withUnsafeMutableBufferPointer { product(into: $0.baseAddress!, beta: 1) }
                        } else {
                            gw = Tensor(shape: [outCount, inCount]) { product(into: $0.baseAddress!, beta: 0) }
                        }
                    }
                }
            }
        }
    }
    return (needsInputGradient ? g.matmul(wv) : nil, gw, gb ?? Tensor.zeros([outCount]))
}

/// Forward of `linear` on plain tensors (inference path, no graph).
public func linearForward(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .identity) -> Tensor {
    linearForward(x, weight: weight, bias: bias, activation: activation, inputIsSparse: nil)
}

/// `linearForward` with `SparseKernels.appliesTo(x)` known (nil: count it).
func linearForward(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation, inputIsSparse: Bool?) -> Tensor {
    precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                 "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
    let batch = x.shape[0], outCount = weight.shape[0], inCount = weight.shape[1]
    if let bias { precondition(bias.shape == [outCount], "linear: bias \(bias.shape) should be [\(outCount)]") }
    let relu = activation == .relu
    // A mostly-zero input (image pixels) takes the sparse product when the CPU has its vector path.
    if let y = SparseKernels.linearForward(x, weight: weight, bias: bias, relu: relu, inputIsSparse: inputIsSparse) {
        return y
    }
    return Tensor(shape: [batch, outCount]) { out in
        let o = out.baseAddress!
        // The bias is copied into each block of the output before its product (beta 1 adds the product to it) and
        // ReLU applied after, both by the thread that computes the block (`GEMM.Block`), while it is in its cache.
        func product(bias b: UnsafePointer<Float>?) {
            x.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    GEMM.sgemm(transposeA: false, transposeB: true, m: batch, n: outCount, k: inCount, alpha: 1,
                               a: xb.baseAddress!, lda: inCount, b: wb.baseAddress!, ldb: inCount,
                               beta: b == nil ? 0 : 1, c: o, ldc: outCount,
                               before: b.map { b in { Kernels.fillRows(o, stride: outCount, block: $0, from: b) } },
                               after: relu ? { Kernels.relu(o, stride: outCount, block: $0) } : nil)
                }
            }
        }
        if let bias { bias.withUnsafeBufferPointer { product(bias: $0.baseAddress!) } } else { product(bias: nil) }
    }
}

/// `linearForward` for a few rows with the output units split over `parts` threads (`ComputeThreads.onWorkers`):
/// part p computes units `p*out/parts ..< (p+1)*out/parts` of every row with one GEMV per row. For a single image
/// reading the weights is the whole cost; split this way each core reads only its share, and keeps it in its own
/// cache from one call to the next. Call it with `count` at 1 (`ComputeThreads.withOneThread`), so nothing
/// inside splits again.
/// Same arithmetic as `linearForward` per element up to the BLAS kernel's summation order.
public func linearForwardSplittingUnits(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .identity,
                                        parts: Int) -> Tensor {
    precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                 "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
    let rows = x.shape[0], outCount = weight.shape[0], inCount = weight.shape[1]
    if let bias { precondition(bias.shape == [outCount], "linear: bias \(bias.shape) should be [\(outCount)]") }
    let parts = Swift.max(1, Swift.min(parts, outCount))
    let biasValues = bias ?? Tensor.zeros([outCount])
    let relu = activation == .relu
    return Tensor(shape: [rows, outCount]) { out in
        guard let o = out.baseAddress else { return }
        x.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                biasValues.withUnsafeBufferPointer { bb in
                    guard let xp = xb.baseAddress, let wp = wb.baseAddress, let bp = bb.baseAddress else { return }
                    ComputeThreads.onWorkers(parts: parts) { p in
                        let lo = p * outCount / parts, hi = (p + 1) * outCount / parts
                        guard hi > lo else { return }
                        for r in 0..<rows {
                            let y = o + r * outCount
                            GEMM.sgemv(m: hi - lo, n: inCount, a: wp + lo * inCount, lda: inCount, x: xp + r * inCount, y: y + lo)
                            for j in lo..<hi { let v = y[j] + bp[j]; y[j] = relu && v < 0 ? 0 : v }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Elementwise functions

/// max(x, 0). d/dx = g where x > 0 (0 at the kink, as PyTorch).
public func relu(_ x: Variable) -> Variable {
    let y = x.value.relu()
    return record(y, [x]) { g in [g.zipMap(y) { $1 > 0 ? $0 : 0 }] }
}

/// e^x. d/dx = g * e^x.
public func exp(_ x: Variable) -> Variable {
    let y = x.value.exp()
    return record(y, [x]) { g in [g * y] }
}

/// ln x. d/dx = g / x.
public func log(_ x: Variable) -> Variable {
    let xv = x.value
    return record(xv.log(), [x]) { g in [g / xv] }
}

/// Multiplies by a fixed mask (dropout): y = x * mask. d/dx = g * mask.
public func multiply(_ x: Variable, mask: Tensor) -> Variable {
    record(x.value * mask, [x]) { g in [g * mask] }
}

// MARK: Shape

/// The same elements with another shape. d/dx = g reshaped back.
public func reshape(_ x: Variable, _ shape: [Int]) -> Variable {
    let original = x.shape
    return record(x.value.reshaped(shape), [x]) { g in [g.reshaped(original)] }
}

// MARK: Reductions

/// Sum along `axis` (removed). d/dx = g broadcast back along the axis.
public func sum(_ x: Variable, axis: Int) -> Variable {
    let shape = x.shape
    let axis = axis < 0 ? axis + shape.count : axis
    return record(x.value.sum(axis: axis), [x]) { g in
        var kept = shape
        kept[axis] = 1
        return [g.reshaped(kept) + Tensor(shape: shape, repeating: 0)]
    }
}

/// Sum of all elements (rank 0). d/dx = g everywhere.
public func sum(_ x: Variable) -> Variable {
    let shape = x.shape
    return record(Tensor(scalar: x.value.sum()), [x]) { g in [Tensor(shape: shape, repeating: g.scalar)] }
}

/// Mean of all elements (rank 0). d/dx = g / n everywhere.
public func mean(_ x: Variable) -> Variable {
    let shape = x.shape, n = Float(x.value.count)
    return record(Tensor(scalar: x.value.mean()), [x]) { g in [Tensor(shape: shape, repeating: g.scalar / n)] }
}

/// Maximum along `axis`. The gradient goes to the first maximal element of each slice (PyTorch's `max(dim)`).
public func max(_ x: Variable, axis: Int) -> Variable {
    let xv = x.value
    let indices = xv.argmax(axis: axis)
    let (outer, length, inner) = xv.axisLayoutPublic(axis)
    return record(xv.max(axis: axis), [x]) { g in
        var result = Tensor(shape: xv.shape, repeating: 0)
        result.withUnsafeMutableBufferPointer { r in
            g.withUnsafeBufferPointer { gb in
                for o in 0..<outer { for i in 0..<inner {
                    r[(o * length + indices[o * inner + i]) * inner + i] = gb[o * inner + i]
                } }
            }
        }
        return [result]
    }
}

/// A differentiable op defined outside this module: `value` computed by the caller, `backward` maps the upstream
/// gradient to one gradient per input. Records nothing when no input requires a gradient.
public func customOperation(value: Tensor, inputs: [Variable], backward: @escaping (Tensor) -> [Tensor?]) -> Variable { record(value, inputs, backward) }
