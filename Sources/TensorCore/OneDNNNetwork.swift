import CDNNL

/// A chain of convolutions and poolings run by oneDNN with the tensors kept in oneDNN's blocked layouts between the
/// ops (the `CDNNL` network executor, `dnnl_network.h`): the input is reordered from NCHW once, each convolution has
/// its bias, ReLU and residual sum fused in, and only the result is reordered back to NCHW. Evaluation only.
///
/// Values are numbered: 0 is the input, each appended op returns its output's number; the last op's output is the
/// network's. The network copies the weights it is given (later changes to the source tensors do not reach it).
///
/// Threading (``forward(_:threads:)``): a batch larger than ``sharedPoolMaxBatch`` is split over the
/// `ComputeThreads` helpers, each running the whole chain on its slice with oneDNN's OpenMP pool at one thread,
/// ``chunkImages`` images at a time (so a layer's activations stay in the core's cache); a batch of at most
/// ``sharedPoolMaxBatch`` images runs on the calling thread with oneDNN's pool at `threads` threads.
public final class OneDNNNetwork: @unchecked Sendable {
    private let handle: OpaquePointer
    /// Per-example input shape `[C, H, W]`.
    public let inputShape: [Int]
    /// The number of the last op's output (0 before any op).
    public private(set) var outputValue = 0

    /// Images per pass of the chain on one thread: small chunks keep each layer's input and output in the core's L2
    /// cache. ResNet-8 / LeNet-5 on 28x28 images, 10,000 in batches of 1,000 on 2 threads of a Zen 5
    /// (ConvolutionalStageTimingTests): chunks of 4 to 32 images within noise of each other (0.37 s / 0.045 s),
    /// 64 images slower.
    nonisolated(unsafe) public static var chunkImages = 16
    /// The largest batch that runs as one call with oneDNN's OpenMP pool at `threads` threads instead of split over
    /// the helper threads (a smaller batch than `threads` images runs on fewer threads). 0 by default: one image
    /// on oneDNN's pool at 2 threads took 0.20 ms (ResNet-8) and 0.46 ms (LeNet-5) on a Zen 5 against 0.077 ms and
    /// 0.013 ms on one thread (the pool's threads sleep between ops, and each op ends on a barrier).
    nonisolated(unsafe) public static var sharedPoolMaxBatch = 0

    /// An empty network on images `inputShape` (`[C, H, W]`); nil when oneDNN is not loaded or the shape is not 3-D.
    public init?(inputShape: [Int]) {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 && $0 <= Int(Int32.max) }), Convolution.loadOneDNN(),
              let handle = distill_dnnl_network_create(Int32(inputShape[0]), Int32(inputShape[1]), Int32(inputShape[2]))
        else { return nil }
        self.handle = handle
        self.inputShape = inputShape
    }

    deinit { distill_dnnl_network_destroy(handle) }

    /// The per-example shape `[C, H, W]` of value `value`.
    public func shape(of value: Int) -> [Int]? {
        var c: Int32 = 0, h: Int32 = 0, w: Int32 = 0
        guard distill_dnnl_network_value_shape(handle, Int32(value), &c, &h, &w) == 0 else { return nil }
        return [Int(c), Int(h), Int(w)]
    }

    /// The per-example output shape `[C, H, W]`.
    public var outputShape: [Int] { shape(of: outputValue) ?? inputShape }

    /// Appends a convolution of value `input` (weight `[O, C/groups, kh, kw]`, bias `[O]` or nil), adding value
    /// `residual` when given, then ReLU when `relu`; its output's number, nil when the shapes do not fit.
    public func convolution(input: Int, geometry g: ConvolutionGeometry, weight: Tensor, bias: Tensor?, residual: Int? = nil,
                            relu: Bool) -> Int? {
        guard weight.shape == g.weightShape, bias.map({ $0.shape == [g.outChannels] }) ?? true else { return nil }
        var s = Convolution.shape(g)
        let value = weight.withUnsafeBufferPointer { w in
            bias.map { b in b.withUnsafeBufferPointer { bb in
                distill_dnnl_network_conv(handle, Int32(input), &s, w.baseAddress, bb.baseAddress, Int32(residual ?? -1), relu ? 1 : 0)
            } } ?? distill_dnnl_network_conv(handle, Int32(input), &s, w.baseAddress, nil, Int32(residual ?? -1), relu ? 1 : 0)
        }
        return record(value)
    }

    /// How a pooling op combines its window.
    public enum PoolingKind: Int32 {
        case max = 0
        /// Divided by the whole window, padding included (PyTorch's `count_include_pad=True`).
        case averageIncludingPadding = 1
        /// Divided by the window's part inside the image.
        case averageExcludingPadding = 2
    }

    /// Appends pooling of value `input` with `g`'s kernel, stride, padding and dilation (its size is the value's);
    /// its output's number, nil when it does not fit.
    public func pooling(input: Int, kind: PoolingKind, geometry g: PoolingGeometry) -> Int? {
        record(distill_dnnl_network_pool(handle, Int32(input), kind.rawValue, Int32(g.kernelHeight), Int32(g.kernelWidth),
                                         Int32(g.strideHeight), Int32(g.strideWidth), Int32(g.paddingHeight),
                                         Int32(g.paddingWidth), Int32(g.dilationHeight), Int32(g.dilationWidth)))
    }

    private func record(_ value: Int32) -> Int? {
        guard value >= 0 else { return nil }
        outputValue = Int(value)
        return Int(value)
    }

    /// Runs the network on `batch` NCHW images at `input` into `output` on the calling thread, oneDNN's OpenMP pool
    /// at `threads` threads, `chunk` images at a time; false when oneDNN failed.
    public func run(_ input: UnsafePointer<Float>, batch: Int, threads: Int, chunk: Int, into output: UnsafeMutablePointer<Float>) -> Bool {
        distill_dnnl_network_run(handle, Int32(batch), Int32(threads), Int32(chunk), input, output) == 0
    }

    /// The network on `input` `[n, C, H, W]` (or `[n, C*H*W]`), `[n] + outputShape`, using up to `threads` threads;
    /// nil when the input's shape does not fit or oneDNN failed.
    public func forward(_ input: Tensor, threads: Int) -> Tensor? {
        guard outputValue > 0, input.rank >= 1, input.shape.dropFirst().reduce(1, *) == inputShape.reduce(1, *) else { return nil }
        let batch = input.shape[0], outShape = outputShape
        let inImage = inputShape.reduce(1, *), outImage = outShape.reduce(1, *)
        var ok = true
        let y = Tensor(shape: [batch] + outShape) { out in
            guard batch > 0 else { return }
            input.withUnsafeBufferPointer { xb in
                guard let x = xb.baseAddress, let o = out.baseAddress else { ok = false; return }
                let threads = Swift.max(1, threads)
                if threads == 1 || batch <= OneDNNNetwork.sharedPoolMaxBatch {
                    ok = run(x, batch: batch, threads: threads, chunk: OneDNNNetwork.chunkImages, into: o)
                    return
                }
                let parts = Swift.min(threads, batch)
                var statuses = [Bool](repeating: false, count: parts)
                statuses.withUnsafeMutableBufferPointer { status in
                    ComputeThreads.onWorkers(parts: parts) { p in
                        let lo = p * batch / parts, hi = (p + 1) * batch / parts
                        status[p] = run(x + lo * inImage, batch: hi - lo, threads: 1, chunk: OneDNNNetwork.chunkImages,
                                        into: o + lo * outImage)
                    }
                }
                ok = statuses.allSatisfy { $0 }
            }
        }
        return ok ? y : nil
    }

    /// The implementations oneDNN chose for the ops at (batch, threads), for reports (made on first use).
    public func implementations(batch: Int, threads: Int) -> String {
        String(cString: distill_dnnl_network_implementations(handle, Int32(batch), Int32(threads)))
    }
}
