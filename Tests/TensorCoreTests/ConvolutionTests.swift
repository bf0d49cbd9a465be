import Foundation
import XCTest
import TensorCore

/// Runs `body` once per convolution engine this machine has (im2col always, oneDNN when libdnnl loads) with
/// `Convolution.engine` set to it.
func forEachConvolutionEngine(_ body: (Convolution.Engine) throws -> Void) rethrows {
    let saved = Convolution.engine
    defer { Convolution.engine = saved }
    for engine in Convolution.Engine.allCases where engine == .im2col || Convolution.loadOneDNN() {
        Convolution.engine = engine
        try body(engine)
    }
}

/// Both convolution engines (chunked im2col products, oneDNN) against the direct Double references, at one and two
/// threads, and their reproducibility at a fixed thread count.
final class ConvolutionTests: XCTestCase {
    /// Where Debian's libdnnl2 is installed (CI installs it), oneDNN loads and runs its direct kernels, not a GEMM
    /// fallback.
    func testOneDNNLoadsWhereInstalled() throws {
        let paths = ["/usr/lib/x86_64-linux-gnu/libdnnl.so.2", "/usr/lib/aarch64-linux-gnu/libdnnl.so.2"]
        guard paths.contains(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw XCTSkip("libdnnl2 is not installed")
        }
        // The shim is built against libdnnl-dev's header; without it at build time it reports oneDNN unavailable.
        guard FileManager.default.fileExists(atPath: "/usr/include/oneapi/dnnl/dnnl.h") else {
            throw XCTSkip("libdnnl-dev (the header) is not installed")
        }
        XCTAssertTrue(Convolution.loadOneDNN())
        XCTAssertEqual(Convolution.defaultEngine, ProcessInfo.processInfo.environment["DISTILL_CONV"] == "im2col" ? .im2col : .onednn)
        XCTAssertNotNil(Convolution.oneDNNVersion)
        let g = ConvolutionGeometry(inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: (3, 3), padding: (1, 1))
        let implementation = try Convolution.oneDNNImplementation(g, batch: 64).get()
        XCTAssertTrue(implementation.hasPrefix("jit") || implementation.hasPrefix("brg"), implementation)
    }

    /// oneDNN's cache of made convolutions is bounded; past the bound, new shapes evict the least recently used idle
    /// ones and still run on oneDNN (not on the fallback), also while other threads use the cache.
    func testOneDNNCacheEvictsPastItsLimit() throws {
        guard Convolution.loadOneDNN() else { throw XCTSkip("oneDNN does not load here") }
        let saved = (Convolution.engine, Convolution.oneDNNCacheLimit, ComputeThreads.count)
        defer { Convolution.engine = saved.0; Convolution.oneDNNCacheLimit = saved.1; ComputeThreads.set(saved.2) }
        Convolution.engine = .onednn
        ComputeThreads.set(1)
        Convolution.oneDNNCacheLimit = 3
        XCTAssertEqual(Convolution.oneDNNCacheLimit, 3)
        let refusals = Convolution.oneDNNRefusals
        let g = ConvolutionGeometry(inChannels: 3, outChannels: 8, height: 9, width: 9, kernel: (3, 3), padding: (1, 1))
        var generator = RandomGenerator(seed: 21)
        let w = Tensor.uniform(g.weightShape, low: -1, high: 1, generator: &generator)
        let bias = Tensor.uniform([g.outChannels], low: -1, high: 1, generator: &generator)
        // Ten batch sizes (thirty convolutions: forward, backward data, backward weights), twice over.
        for round in 0..<2 {
            for batch in 1...10 {
                let x = Tensor.uniform([batch, 3, 9, 9], low: -1, high: 1, generator: &generator)
                let dy = Tensor.uniform([batch, 8, 9, 9], low: -1, high: 1, generator: &generator)
                let what = "round \(round), batch \(batch)"
                assertClose(Convolution.forward(x, weight: w, bias: bias, geometry: g),
                            Convolution.naiveForward(x, weight: w, bias: bias, geometry: g), "forward, " + what)
                let r = Convolution.backward(dy, input: x, weight: w, geometry: g, needsInput: true, needsWeight: true, needsBias: true)
                let reference = Convolution.naiveBackward(dy, input: x, weight: w, geometry: g)
                if let dx = r.input { assertClose(dx, reference.input, "input gradient, " + what) } else { XCTFail(what) }
                if let dw = r.weight { assertClose(dw, reference.weight, "weight gradient, " + what, tolerance: 1e-4) } else { XCTFail(what) }
                XCTAssertLessThanOrEqual(Convolution.oneDNNCacheCount, 3, what)
                XCTAssertNoThrow(try Convolution.oneDNNImplementation(g, batch: batch).get(), what)
            }
        }
        // Two threads, each through its own batch sizes, evicting each other's convolutions: every result right.
        Convolution.oneDNNCacheLimit = 2
        let failures = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        failures.initialize(repeating: 0, count: 2)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            var generator = RandomGenerator(seed: UInt64(30 + thread))
            for step in 0..<24 {
                let batch = 1 + (step * 7 + thread * 3) % 11
                let x = Tensor.uniform([batch, 3, 9, 9], low: -1, high: 1, generator: &generator)
                let y = Convolution.forward(x, weight: w, bias: bias, geometry: g)
                let reference = Convolution.naiveForward(x, weight: w, bias: bias, geometry: g)
                let worst = zip(y.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
                if !(worst <= 1e-4) { failures[thread] += 1 }
            }
        }
        XCTAssertEqual(failures[0] + failures[1], 0, "convolutions that differed while the cache evicted")
        XCTAssertLessThanOrEqual(Convolution.oneDNNCacheCount, 2)
        XCTAssertEqual(Convolution.oneDNNRefusals, refusals, "convolutions oneDNN refused (run on im2col instead)")
    }

    struct Case {
        var batch: Int
        var geometry: ConvolutionGeometry
        var bias: Bool
    }

    static let cases: [Case] = [
        Case(batch: 5, geometry: ConvolutionGeometry(inChannels: 1, outChannels: 6, height: 12, width: 12, kernel: (5, 5), padding: (2, 2)), bias: true),
        Case(batch: 7, geometry: ConvolutionGeometry(inChannels: 4, outChannels: 8, height: 9, width: 9, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), bias: false),
        Case(batch: 3, geometry: ConvolutionGeometry(inChannels: 4, outChannels: 6, height: 10, width: 7, kernel: (3, 2), stride: (1, 2), padding: (1, 0), dilation: (2, 1), groups: 2), bias: true),
        Case(batch: 40, geometry: ConvolutionGeometry(inChannels: 3, outChannels: 5, height: 6, width: 6, kernel: (1, 1)), bias: true),
        Case(batch: 9, geometry: ConvolutionGeometry(inChannels: 4, outChannels: 4, height: 7, width: 7, kernel: (1, 1), stride: (2, 2)), bias: false),
        Case(batch: 1, geometry: ConvolutionGeometry(inChannels: 2, outChannels: 3, height: 5, width: 5, kernel: (3, 3), padding: (1, 1)), bias: true),
        Case(batch: 33, geometry: ConvolutionGeometry(inChannels: 2, outChannels: 4, height: 8, width: 8, kernel: (3, 3), padding: (1, 1)), bias: true),
    ]

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, tolerance: Float = 2e-5) {
        XCTAssertEqual(a.shape, b.shape, what)
        let x = a.scalars, y = b.scalars
        var worst: Float = 0
        for i in 0..<x.count { worst = max(worst, abs(x[i] - y[i]) / max(1, abs(y[i]))) }
        XCTAssertLessThanOrEqual(worst, tolerance, what)
    }

    func testAgainstReference() {
        forEachConvolutionEngine { engine in againstReference(engine) }
    }

    func againstReference(_ engine: Convolution.Engine) {
        let saved = (ComputeThreads.count, Convolution.chunkFloats)
        defer { ComputeThreads.set(saved.0); Convolution.chunkFloats = saved.1 }
        var generator = RandomGenerator(seed: 11)
        for (index, c) in Self.cases.enumerated() {
            let g = c.geometry
            let x = Tensor.uniform([c.batch, g.inChannels, g.height, g.width], low: -1, high: 1, generator: &generator)
            let w = Tensor.uniform(g.weightShape, low: -1, high: 1, generator: &generator)
            let bias = c.bias ? Tensor.uniform([g.outChannels], low: -1, high: 1, generator: &generator) : nil
            let dy = Tensor.uniform([c.batch, g.outChannels, g.outHeight, g.outWidth], low: -1, high: 1, generator: &generator)
            let reference = Convolution.naiveForward(x, weight: w, bias: bias, geometry: g)
            let gradients = Convolution.naiveBackward(dy, input: x, weight: w, geometry: g)
            // Chunks of one image, of a few, and of up to 32.
            for chunkFloats in [1, 600, 1 << 16] {
                Convolution.chunkFloats = chunkFloats
                for threads in [1, 2] {
                    ComputeThreads.set(threads)
                    let what = "\(engine), case \(index), chunk floats \(chunkFloats), \(threads) threads"
                    let y = Convolution.forward(x, weight: w, bias: bias, geometry: g)
                    assertClose(y, reference, "forward, " + what)
                    let relu = Convolution.forward(x, weight: w, bias: bias, geometry: g, relu: true)
                    XCTAssertEqual(relu.scalars, y.scalars.map { max($0, 0) }, "fused ReLU, " + what)
                    let r = Convolution.backward(dy, input: x, weight: w, geometry: g, needsInput: true, needsWeight: true, needsBias: true)
                    if let dx = r.input { assertClose(dx, gradients.input, "input gradient, " + what) } else { XCTFail(what) }
                    if let dw = r.weight { assertClose(dw, gradients.weight, "weight gradient, " + what, tolerance: 1e-4) } else { XCTFail(what) }
                    if let db = r.bias { assertClose(db, gradients.bias, "bias gradient, " + what, tolerance: 1e-4) } else { XCTFail(what) }
                    // Accumulating into an existing gradient adds to it.
                    var existing = [Float](repeating: 1, count: w.count)
                    _ = existing.withUnsafeMutableBufferPointer { p in
                        Convolution.backward(dy, input: x, weight: w, geometry: g, needsInput: false, needsWeight: true,
                                             needsBias: false, weightGradient: p.baseAddress)
                    }
                    assertClose(Tensor(shape: g.weightShape, scalars: existing.map { $0 - 1 }), gradients.weight,
                                "accumulated weight gradient, " + what, tolerance: 1e-4)
                }
            }
        }
    }

    func testReproducibleAtFixedThreadCount() {
        forEachConvolutionEngine { _ in reproducibleAtFixedThreadCount() }
    }

    func reproducibleAtFixedThreadCount() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        ComputeThreads.set(2)
        var generator = RandomGenerator(seed: 12)
        let g = ConvolutionGeometry(inChannels: 16, outChannels: 32, height: 14, width: 14, kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        let x = Tensor.uniform([37, 16, 14, 14], low: -1, high: 1, generator: &generator)
        let w = Tensor.uniform(g.weightShape, low: -1, high: 1, generator: &generator)
        let dy = Tensor.uniform([37, 32, 7, 7], low: -1, high: 1, generator: &generator)
        let first = Convolution.backward(dy, input: x, weight: w, geometry: g, needsInput: true, needsWeight: true, needsBias: false)
        let y1 = Convolution.forward(x, weight: w, bias: nil, geometry: g)
        for _ in 0..<3 {
            let again = Convolution.backward(dy, input: x, weight: w, geometry: g, needsInput: true, needsWeight: true, needsBias: false)
            XCTAssertEqual(again.input?.scalars, first.input?.scalars)
            XCTAssertEqual(again.weight?.scalars, first.weight?.scalars)
            XCTAssertEqual(Convolution.forward(x, weight: w, bias: nil, geometry: g).scalars, y1.scalars)
        }
    }

    /// The unrolled 2x2 stride-2 max pooling against the definition (first maximum in window order, NaN wins).
    func testMaxPool2x2AgainstDefinition() {
        var generator = RandomGenerator(seed: 13)
        var x = Tensor.uniform([3, 2, 9, 8], low: -1, high: 1, generator: &generator)
        var values = x.scalars
        values[5] = values[4]          // a tie: the first index wins
        values[20] = .nan
        x = Tensor(shape: x.shape, scalars: values)
        let g = PoolingGeometry(height: 9, width: 8, kernel: (2, 2), stride: (2, 2))
        let (y, indices) = Pooling.maxForward(x, g)
        XCTAssertEqual(y.shape, [3, 2, 4, 4])
        let ys = y.scalars
        for plane in 0..<6 { for oi in 0..<4 { for oj in 0..<4 {
            var best = -Float.infinity, bestIndex = -1
            for ki in 0..<2 { for kj in 0..<2 {
                let i = (2 * oi + ki) * 8 + 2 * oj + kj, v = values[plane * 72 + i]
                if bestIndex < 0 || v > best || (v.isNaN && !best.isNaN) { best = v; bestIndex = i }
            } }
            let k = plane * 16 + oi * 4 + oj
            XCTAssertEqual(Int(indices[k]), bestIndex)
            XCTAssertTrue(ys[k] == best || (ys[k].isNaN && best.isNaN))
        } } }
    }
}
