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
/// ``sharedPoolMaxBatch`` images with enough work (``sharedPoolMinFlops``) runs on the calling thread with oneDNN's
/// pool at `threads` threads, the helpers sleeping meanwhile (`ComputeThreads.lendCore`); other single images run on
/// the calling thread alone.
///
/// oneDNN's OpenMP threads spin for a while after each op: compute threads started right after a call on the pool
/// (the helpers of a following linear stage) compete with them for the cores. ResNet-8 on one image, the stage and
/// its linear layer on a Zen 5 at 2 threads: 0.052 ms with the linear layer on the calling thread, 0.070 ms with its
/// units split over the helpers (0.080 ms with the stage on one thread).
public final class OneDNNNetwork: @unchecked Sendable {
    private let handle: OpaquePointer
    /// Per-example input shape `[C, H, W]`.
    public let inputShape: [Int]
    /// The number of the last op's output (0 before any op).
    public private(set) var outputValue = 0

    /// Images per pass of the chain on one thread: small chunks keep each layer's input and output in the core's L2
    /// cache. ResNet-8 / LeNet-5 on 28x28 images, 10,000 in batches of 1,000 on 2 threads of a Zen 5
    /// (the stage alone, alternated runs): chunks of 4 to 32 images within noise of each other (0.37 s / 0.045 s),
    /// 64 images slower.
    nonisolated(unsafe) public static var chunkImages = 16
    /// The largest batch that may run as one call on the calling thread with oneDNN's OpenMP pool at `threads`
    /// threads (each op split over the threads) instead of split over the helper threads, when it has at least
    /// ``sharedPoolMinFlops`` of work. One image on a Zen 5 at 2 threads, the stage alone (median of 200 calls):
    /// ResNet-8 0.051 ms on the pool against 0.080 ms on one thread; LeNet-5 0.0098 against 0.0096 ms. From 2 images
    /// on, the split over the helpers was faster: ResNet-8 2 / 4 / 8 images 0.083 / 0.161 / 0.32 ms split against
    /// 0.091 / 0.170 / 0.33 ms on the pool (LeNet-5 0.011 / 0.019 / 0.035 against 0.015 / 0.023 / 0.039 ms).
    nonisolated(unsafe) public static var sharedPoolMaxBatch = 1
    /// The least work (floating-point operations of the convolutions, 2 per multiply-add, for the whole batch) that
    /// runs on oneDNN's OpenMP pool: ResNet-8 has 18.7 million per 28x28 image, LeNet-5 0.7 million.
    nonisolated(unsafe) public static var sharedPoolMinFlops = 4_000_000

    /// Floating-point operations of the convolutions per image (2 per multiply-add).
    public private(set) var flopsPerImage = 0

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
        guard let v = record(value) else { return nil }
        flopsPerImage += 2 * g.outChannels * g.outHeight * g.outWidth * g.filterSize
        return v
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
                if batch <= OneDNNNetwork.sharedPoolMaxBatch, threads > 1, batch * flopsPerImage >= OneDNNNetwork.sharedPoolMinFlops {
                    // The helpers sleep meanwhile instead of spinning beside oneDNN's OpenMP threads.
                    ComputeThreads.lendCore()
                    defer { ComputeThreads.returnLentCore() }
                    ok = run(x, batch: batch, threads: threads, chunk: OneDNNNetwork.chunkImages, into: o)
                    return
                }
                if threads == 1 || batch == 1 {
                    ok = run(x, batch: batch, threads: 1, chunk: OneDNNNetwork.chunkImages, into: o)
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
