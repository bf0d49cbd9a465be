import TensorCore
import NeuralNet

/// A model prepared for inference: its top-level layers grouped into stages that each run on the fastest kernels
/// this machine has, with the weights copied (and repacked) once, when the model is compiled.
///
/// - runs of convolutions (batch norms folded in, ReLU, residual sums), pooling and flatten layers:
///   ``ConvolutionalStage`` (one oneDNN network in its blocked layouts) where oneDNN loads;
/// - runs of linear layers (with ReLU): ``DenseStage`` (grouped or sparse products on packed weights; oneDNN's or
///   the BLAS library's sgemm for dense batches on CPUs without AVX-512);
/// - any other layer runs its own evaluation-mode pass (`Sequential.infer`, batch norms folded into convolutions).
///
/// The logits equal `Sequential.infer`'s up to the order of float sums (tested to 1e-5 of the largest value).
///
///     let compiled = CompiledModel(model)
///     let logits = compiled.infer(images)     // [n, classes]
public final class CompiledModel: @unchecked Sendable {
    let stages: [InferenceStage]
    /// Values per example the model takes, and the per-example shape it gives its first layer.
    public let inputShape: [Int]?

    public init(_ model: Sequential) {
        inputShape = model.requiredInputShape
        var stages: [InferenceStage] = []
        var pending: [Layer] = []
        func flush() {
            if !pending.isEmpty { stages.append(LayerStage(Sequential(pending))) }
            pending = []
        }
        let layers = model.layers[...]
        let shapes = model.layerOutputShapes
        var i = layers.startIndex
        while i < layers.endIndex {
            // The per-example shape layer i receives (when known: a convolutional stage needs it).
            let shape = i == 0 ? model.requiredInputShape : shapes.flatMap { i - 1 < $0.count ? $0[i - 1] : nil }
            if let shape, shape.count == 3, let (stage, consumed) = ConvolutionalStage.make(layers: layers[i...], inputShape: shape) {
                flush()
                stages.append(stage)
                i += consumed
            } else if let (stage, consumed) = DenseStage.make(layers[i...]) {
                flush()
                stages.append(stage)
                i += consumed
            } else {
                pending.append(layers[i])
                i += 1
            }
        }
        flush()
        self.stages = stages
    }

    /// One line per stage, in order (for reports and benchmarks).
    public var summary: [String] { stages.map(\.summary) }

    /// Logits `[n, classes]` for a batch `[n, ...]` (any shape with the model's values per example).
    public func infer(_ input: Tensor, threads: Int = ComputeThreads.count) -> Tensor {
        var x = Sequential.conformingShape(input.shape, to: inputShape).map { input.reshaped($0) } ?? input
        for stage in stages { x = stage.run(x, threads: threads) }
        return x
    }
}

/// Layers the compiled stages do not cover, run by their own evaluation-mode pass.
final class LayerStage: InferenceStage {
    let layers: Sequential
    init(_ layers: Sequential) { self.layers = layers }
    var summary: String { "layers " + layers.layers.map { $0.layerDescription.kind }.joined(separator: ", ") }
    func run(_ input: Tensor, threads: Int) -> Tensor { layers.infer(input) }
}
