import Foundation
import CDNNL

/// Convolutions on Intel's oneDNN (Debian's `libdnnl2`, opened at run time by the `CDNNL` shim) when it is installed.
///
/// Why a second engine: oneDNN's direct convolution kernels, on its blocked layouts, were about 3 times as fast as
/// im2col + OpenBLAS sgemm on the LeNet-5 and ResNet-8 layers of a 128-image batch on one Zen 5 core (forward,
/// input gradient and weight gradient alike: for a 16-to-16-channel 3x3 layer on 28x28 images, 1.7 / 1.7 / 1.7 ms
/// against 5.7 / 6.0 / 7.5 ms), and PyTorch's CPU convolutions run on oneDNN too. Tensors stay NCHW here: each call
/// reorders its inputs into oneDNN's layouts and the result back (about 0.1 ms for such a layer's input).
///
/// The batch is split over the `ComputeThreads` helpers as the im2col engine splits it (oneDNN's own OpenMP pool held
/// at one thread), and the weight gradients of the parts are added in part order, so results are reproducible at a
/// fixed thread count. The two engines differ in the order of their float sums (tested against each other and the
/// Double references). A shape oneDNN has no kernel for runs on im2col.
extension Convolution {
    /// Which kernels run the convolutions.
    public enum Engine: String, CaseIterable, Codable, Sendable {
        /// im2col (or a 1x1 shortcut) + the BLAS library's sgemm: always available.
        case im2col
        /// oneDNN's convolution primitives, when `libdnnl.so.2` loads.
        case onednn
    }

    /// The engine of every later convolution: oneDNN when it loads, unless `DISTILL_CONV=im2col`.
    nonisolated(unsafe) public static var engine: Engine = defaultEngine

    /// `DISTILL_CONV` (`im2col`, `onednn`, or unset for oneDNN when available); oneDNN that does not load is im2col.
    public static let defaultEngine: Engine = {
        let asked = ProcessInfo.processInfo.environment["DISTILL_CONV"]?.lowercased()
        if asked == Engine.im2col.rawValue { return .im2col }
        return loadOneDNN() ? .onednn : .im2col
    }()

    /// Opens oneDNN (once); true when it is usable.
    @discardableResult
    public static func loadOneDNN() -> Bool { distill_dnnl_load(nil) != 0 }

    /// The loaded oneDNN's version, nil when it is not loaded.
    public static var oneDNNVersion: String? {
        let text = String(cString: distill_dnnl_version())
        return text.isEmpty ? nil : text
    }

    /// A one-line description for reports and benchmarks.
    public static var engineSummary: String {
        switch engine {
        case .im2col: return "im2col + sgemm"
        case .onednn: return "oneDNN \(oneDNNVersion ?? "?") (NCHW reordered to blocked layouts)"
        }
    }

    /// Why oneDNN has no convolution for a shape: it did not load, or the step it refused and its status.
    public struct OneDNNUnavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The implementation oneDNN picks for the forward pass of `g` on `batch` images (e.g. `jit:avx512_core`), or why
    /// it has none (those convolutions then run on im2col + BLAS).
    public static func oneDNNImplementation(_ g: ConvolutionGeometry, batch: Int) -> Result<String, OneDNNUnavailable> {
        var s = shape(g)
        var text = [CChar](repeating: 0, count: 160)
        let found = distill_dnnl_forward_implementation(&s, Int32(batch), &text, Int32(text.count))
        let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return found != 0 ? .success(message) : .failure(OneDNNUnavailable(description: message))
    }

    /// The most convolutions oneDNN keeps made at once (one per shape, batch and pass; default 512): past it, the
    /// least recently used one not running is released. Values below 1 are ignored.
    public static var oneDNNCacheLimit: Int {
        get { Int(distill_dnnl_set_cache_limit(0)) }
        set { _ = distill_dnnl_set_cache_limit(Int32(clamping: newValue)) }
    }

    /// How many convolutions oneDNN holds made.
    public static var oneDNNCacheCount: Int { Int(distill_dnnl_cache_count()) }

    /// How many convolution calls (a part of a batch each) oneDNN refused since the process started; they ran on
    /// im2col + BLAS instead.
    public static var oneDNNRefusals: Int { Int(distill_dnnl_refusals()) }

    static func shape(_ g: ConvolutionGeometry) -> distill_conv_shape {
        distill_conv_shape(channels: Int32(g.inChannels), height: Int32(g.height), width: Int32(g.width),
                           out_channels: Int32(g.outChannels), kernel_h: Int32(g.kernelHeight), kernel_w: Int32(g.kernelWidth),
                           stride_h: Int32(g.strideHeight), stride_w: Int32(g.strideWidth), pad_h: Int32(g.paddingHeight),
                           pad_w: Int32(g.paddingWidth), dilation_h: Int32(g.dilationHeight), dilation_w: Int32(g.dilationWidth),
                           groups: Int32(g.groups))
    }

    /// Runs `body(part, lo, hi)` for the batch's parts on the helpers; false when any part failed.
    private static func eachPart(batch: Int, _ body: (Int, Int, Int) -> Int32) -> Bool {
        let parts = parts(batch: batch)
        let statuses = UnsafeMutablePointer<Int32>.allocate(capacity: parts)
        defer { statuses.deallocate() }
        statuses.initialize(repeating: 0, count: parts)
        ComputeThreads.onWorkers(parts: parts) { p in
            ComputeThreads.alone {
                statuses[p] = body(p, p * batch / parts, (p + 1) * batch / parts)
            }
        }
        return (0..<parts).allSatisfy { statuses[$0] == 0 }
    }

    /// The forward pass on oneDNN; nil when oneDNN could not run it.
    static func oneDNNForward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry, relu: Bool) -> Tensor? {
        let batch = input.shape[0]
        var s = shape(g)
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * g.outHeight * g.outWidth
        var ok = true
        let y = Tensor(shape: [batch, g.outChannels, g.outHeight, g.outWidth]) { out in
            guard let o = out.baseAddress else { return }
            input.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let x = xb.baseAddress, let w = wb.baseAddress else { ok = false; return }
                    let b = bias?.storage.pointer
                    ok = eachPart(batch: batch) { _, lo, hi in
                        let status = distill_dnnl_conv_forward(&s, Int32(hi - lo), x + lo * inImage, w, b.map { UnsafePointer($0) },
                                                               o + lo * outImage)
                        if status == 0 && relu { clampNegatives(o + lo * outImage, count: (hi - lo) * outImage) }
                        return status
                    }
                }
            }
        }
        return ok ? y : nil
    }

    /// The input and weight gradients on oneDNN (the weight gradient added to `weightGradient` when given, else
    /// returned); nil when oneDNN could not run them.
    static func oneDNNBackward(_ upstream: Tensor, input: Tensor, weight: Tensor, geometry g: ConvolutionGeometry,
                               needsInput: Bool, needsWeight: Bool, weightGradient: UnsafeMutablePointer<Float>?)
        -> (input: Tensor?, weight: Tensor?)? {
        let batch = input.shape[0]
        var s = shape(g)
        let inImage = g.inChannels * g.height * g.width, outImage = g.outChannels * g.outHeight * g.outWidth
        let weightCount = g.outChannels * g.filterSize
        let parts = parts(batch: batch)
        // oneDNN writes every element of the input gradient and of each part's weight gradient: no zero fill.
        let dx = needsInput ? Tensor(shape: input.shape) { _ in } : nil
        let dxp = dx?.storage.pointer
        let partials = needsWeight ? BufferPool.shared.take(count: parts * weightCount) : nil
        defer { if let partials { BufferPool.shared.give(partials, count: parts * weightCount) } }
        var ok = true
        upstream.withUnsafeBufferPointer { gb in
            input.withUnsafeBufferPointer { xb in
                weight.withUnsafeBufferPointer { wb in
                    guard let dy = gb.baseAddress, let x = xb.baseAddress, let w = wb.baseAddress else { ok = false; return }
                    ok = eachPart(batch: batch) { p, lo, hi in
                        let n = Int32(hi - lo)
                        if let dxp {
                            let status = distill_dnnl_conv_backward_data(&s, n, dy + lo * outImage, w, dxp + lo * inImage)
                            if status != 0 { return status }
                        }
                        if let partials {
                            return distill_dnnl_conv_backward_weights(&s, n, x + lo * inImage, dy + lo * outImage,
                                                                      partials + p * weightCount, nil)
                        }
                        return 0
                    }
                }
            }
        }
        guard ok else { return nil }
        var dw: Tensor? = nil
        if let partials {
            // The parts' sums in part order, onto what `weightGradient` holds.
            let sum: (UnsafeMutablePointer<Float>) -> Void = { target in
                for p in 0..<parts {
                    let source = partials + p * weightCount
                    for i in 0..<weightCount { target[i] += source[i] }
                }
            }
            if let weightGradient {
                sum(weightGradient)
            } else {
                let zeros = Tensor(shape: g.weightShape, repeating: 0)
                sum(zeros.storage.pointer)
                dw = zeros
            }
        }
        return (dx, dw)
    }
}
