import Foundation
import XCTest
import NeuralNet
import TensorCore
import Inference

/// Timings of the oneDNN network stage against `Sequential.infer`, skipped unless `DISTILL_TIMING=1`
/// (Scripts/cnn_stage_bench.sh alternates it with ONNX Runtime). Prints one JSON line per model: seconds per 10,000
/// random 1x28x28 images in batches of 1,000 (median of `DISTILL_TIMING_PASSES` passes, default 5) and one-image
/// latency in milliseconds (median of 200 calls after 20 warm-up calls), at `DISTILL_TIMING_THREADS` threads
/// (default 2). `DISTILL_DNNL_CHUNK` sets ``OneDNNNetwork/chunkImages``.
final class ConvolutionalStageTimingTests: XCTestCase {
    func testTiming() throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["DISTILL_TIMING"] == "1" else { throw XCTSkip("set DISTILL_TIMING=1 to time") }
        let threads = Int(environment["DISTILL_TIMING_THREADS"] ?? "") ?? 2
        let passes = Int(environment["DISTILL_TIMING_PASSES"] ?? "") ?? 5
        if let chunk = Int(environment["DISTILL_DNNL_CHUNK"] ?? "") { OneDNNNetwork.chunkImages = chunk }
        let models = (environment["DISTILL_TIMING_MODELS"] ?? "lenet5,resnet8").split(separator: ",").map(String.init)
        ComputeThreads.set(threads)
        defer { ComputeThreads.set(1) }
        var generator = RandomGenerator(seed: 11)
        let batches = (0..<10).map { _ in Tensor.uniform([1000, 1, 28, 28], low: 0, high: 1, generator: &generator) }
        let one = Tensor.uniform([1, 1, 28, 28], low: 0, high: 1, generator: &generator)
        for name in models {
            let model = try ConvolutionalStageTests.model(name, seed: 5)
            guard let (stage, consumed) = ConvolutionalStage.make(layers: model.layers[...], inputShape: [1, 28, 28]) else {
                throw XCTSkip("oneDNN does not load")
            }
            let rest = Sequential(Array(model.layers[consumed...]))
            let ours: (Tensor) -> Tensor = { rest.infer(stage.run($0, threads: threads)) }
            let old: (Tensor) -> Tensor = { model.infer($0) }
            func throughput(_ f: (Tensor) -> Tensor) -> Double {
                _ = f(batches[0])
                return Self.median((0..<passes).map { _ in Self.seconds { for b in batches { _ = f(b) } } })
            }
            func latency(_ f: (Tensor) -> Tensor) -> Double {
                for _ in 0..<20 { _ = f(one) }
                return Self.median((0..<200).map { _ in Self.seconds { _ = f(one) } }) * 1e3
            }
            // One image with oneDNN's OpenMP pool at `threads` threads, and at one thread.
            let saved = OneDNNNetwork.sharedPoolMaxBatch
            OneDNNNetwork.sharedPoolMaxBatch = 1
            let latencyShared = latency(ours)
            let oneThread: (Tensor) -> Tensor = { rest.infer(stage.run($0, threads: 1)) }
            let latencyOneThread = latency(oneThread)
            OneDNNNetwork.sharedPoolMaxBatch = saved
            let result: [String: Any] = [
                "model": name, "threads": threads, "chunk": OneDNNNetwork.chunkImages,
                "ours_seconds_per_10000": throughput(ours), "old_seconds_per_10000": throughput(old),
                "ours_latency_ms": latencyShared, "ours_latency_one_thread_ms": latencyOneThread, "old_latency_ms": latency(old),
                "implementations": stage.network.implementations(batch: 1, threads: threads),
            ]
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print("TIMING " + (String(data: data, encoding: .utf8) ?? ""))
        }
    }

    static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
