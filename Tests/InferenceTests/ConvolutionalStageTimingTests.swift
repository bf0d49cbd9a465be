import Foundation
import XCTest
import NeuralNet
import TensorCore
import Inference

/// Timings of the oneDNN network stage against `Sequential.infer`, skipped unless `DISTILL_TIMING=1`
/// (Scripts/cnn_stage_bench.sh alternates it with ONNX Runtime). Prints one JSON line per model: seconds per 10,000
/// random 1x28x28 images in batches of 1,000 (median of `DISTILL_TIMING_PASSES` passes, default 5) and one-image
/// latency in milliseconds (median of 200 calls after 20 warm-up calls), at `DISTILL_TIMING_THREADS` threads
/// (default 2). `DISTILL_DNNL_CHUNK` sets ``OneDNNNetwork/chunkImages``; `DISTILL_TIMING_SHARED_POOL=1` adds one image on
/// one thread and on oneDNN's OpenMP pool at `threads` threads, each with the linear layers on one thread and split.
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
            // The linear layers after the stage as `Sequential.infer` runs them after feature maps (one pass, the
            // threaded product for large batches). `rest.infer` on a one-image row would split each layer's units over
            // the helper threads: on this shared 2-core machine that added 0.14-0.44 ms whenever the other core was busy.
            let ours: (Tensor) -> Tensor = { rest.infer(stage.run($0, threads: threads), splittingUnits: 1) }
            let old: (Tensor) -> Tensor = { model.infer($0) }
            func throughput(_ f: (Tensor) -> Tensor) -> Double {
                _ = f(batches[0])
                return Self.median((0..<passes).map { _ in Self.seconds { for b in batches { _ = f(b) } } })
            }
            func latency(_ f: (Tensor) -> Tensor) -> Double {
                for _ in 0..<20 { _ = f(one) }
                return Self.median((0..<200).map { _ in Self.seconds { _ = f(one) } }) * 1e3
            }
            // One image where `OneDNNNetwork.forward` runs it (ResNet-8 on oneDNN's OpenMP pool, LeNet-5 on one
            // thread): with the linear layers, and the stage alone.
            let latencyOurs = latency(ours)
            let latencyStage = latency { stage.run($0, threads: threads) }
            var result: [String: Any] = [
                "model": name, "threads": threads, "chunk": OneDNNNetwork.chunkImages,
                "ours_seconds_per_10000": throughput(ours), "old_seconds_per_10000": throughput(old),
                "ours_latency_ms": latencyOurs, "ours_stage_latency_ms": latencyStage, "old_latency_ms": latency(old),
                "implementations": stage.network.implementations(batch: 1, threads: 1),
                "flops_per_image": stage.network.flopsPerImage,
            ]
            if environment["DISTILL_TIMING_SHARED_POOL"] == "1" {
                // One image on one thread and on oneDNN's OpenMP pool, whatever the work: the stage alone, and followed
                // by the linear layers with their units split over the helpers (`Sequential.infer` on rows).
                let saved = (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops)
                defer { (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops) = saved }
                // Small batches, the stage alone: split over the helpers (one thread each; one image: the calling
                // thread) or on the pool, alternated 3 times, the median of each.
                for batch in [1, 2, 4, 8] {
                    let x = Tensor.uniform([batch, 1, 28, 28], low: 0, high: 1, generator: &generator)
                    var split: [Double] = [], pool: [Double] = []
                    for _ in 0..<3 {
                        for maxBatch in [0, batch] {
                            (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops) = (maxBatch, 0)
                            for _ in 0..<20 { _ = stage.run(x, threads: threads) }
                            let t = Self.median((0..<100).map { _ in Self.seconds { _ = stage.run(x, threads: threads) } }) * 1e3
                            if maxBatch == 0 { split.append(t) } else { pool.append(t) }
                        }
                    }
                    result["ours_stage_batch\(batch)_split_ms"] = Self.median(split)
                    result["ours_stage_batch\(batch)_pool_ms"] = Self.median(pool)
                }
                for (label, maxBatch) in [("one_thread", 0), ("shared_pool", 1)] {
                    (OneDNNNetwork.sharedPoolMaxBatch, OneDNNNetwork.sharedPoolMinFlops) = (maxBatch, 0)
                    result["ours_stage_latency_\(label)_ms"] = latency { stage.run($0, threads: threads) }
                    result["ours_latency_\(label)_ms"] = latency(ours)
                    result["ours_latency_\(label)_rest_split_ms"] = latency { rest.infer(stage.run($0, threads: threads)) }
                }
            }
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
