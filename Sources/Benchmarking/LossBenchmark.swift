import Foundation
import TensorCore
import NeuralNet
import Distillation

/// The distillation loss at many classes, forward and backward, against PyTorch (`Scripts/loss_bench.py`):
/// `kl_div(log_softmax(zs / T), softmax(zt / T)) * T^2 + cross_entropy(zs, y)` on the same shapes and threads.
public enum LossBenchmark {
    public static let classCounts = [1000, 32_000, 128_000]
    public static let rows = 512
    public static let temperature: Float = 4

    /// Median seconds of `repeats` calls of our loss from teacher logits (value, parts and gradient), after two
    /// untimed calls; inputs seeded like the PyTorch script's (other numbers, same distribution).
    public static func ours(classes: Int, rows: Int = rows, threads: Int, repeats: Int = 5) -> Double {
        ComputeThreads.set(threads)
        var g = RandomGenerator(seed: 0)
        let zs = Tensor.normal([rows, classes], standardDeviation: 3, generator: &g)
        let zt = Tensor.normal([rows, classes], standardDeviation: 4, generator: &g)
        let labels = (0..<rows).map { _ in g.next(below: classes) }
        let configuration = DistillationLossConfiguration(temperature: temperature, hardWeight: 1, softWeight: 1)
        func step() {
            let v = Variable(zs, requiresGrad: true)
            let (loss, _) = distillationLoss(studentLogits: v, teacherLogits: zt, labels: labels, configuration: configuration)
            loss.backward()
            _ = v.grad
        }
        return medianSeconds(repeats: repeats, of: step)
    }

    /// The top-k case: k kept teacher logits per row (the k largest of the same teacher rows), as a top-k store
    /// gives them. Timed: building the sparse soft targets from the kept logits (``MissingMass/renormalize``, the
    /// mode PyTorch's side computes, DistillKit's `zero`) and the loss with its gradient; no `[B, C]` teacher.
    public static func oursSparse(classes: Int, keep k: Int, rows: Int = rows, threads: Int, repeats: Int = 5) -> Double {
        ComputeThreads.set(threads)
        var g = RandomGenerator(seed: 0)
        let zs = Tensor.normal([rows, classes], standardDeviation: 3, generator: &g)
        let zt = Tensor.normal([rows, classes], standardDeviation: 4, generator: &g)
        let labels = (0..<rows).map { _ in g.next(below: classes) }
        var kept = [Float](), ids = [Int32]()
        zt.withUnsafeBufferPointer { t in
            for r in 0..<rows {
                let top = (0..<classes).sorted { t[r * classes + $0] > t[r * classes + $1] }.prefix(k)
                for j in top { kept.append(t[r * classes + j]); ids.append(Int32(j)) }
            }
        }
        let configuration = DistillationLossConfiguration(temperature: temperature, hardWeight: 1, softWeight: 1)
        func step() {
            let targets = SparseSoftTargets(logits: kept, classes: ids, logSumExp: nil, rowCount: rows, classCount: classes,
                                            temperature: temperature, missingMass: .renormalize)
            let v = Variable(zs, requiresGrad: true)
            let (loss, _) = distillationLoss(studentLogits: v, sparseTargets: targets, labels: labels, configuration: configuration)
            loss.backward()
            _ = v.grad
        }
        return medianSeconds(repeats: repeats, of: step)
    }

    /// The median of `repeats` timed calls of `step`, after two untimed ones.
    static func medianSeconds(repeats: Int, of step: () -> Void) -> Double {
        step(); step()
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            step()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return BenchmarkPhases.median(times)
    }

    /// k for the top-k rows of the table.
    public static let keptClasses = 64
}
