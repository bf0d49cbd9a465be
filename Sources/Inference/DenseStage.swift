import TensorCore
import NeuralNet

/// A run of linear layers (each with an optional ReLU; dropout, identity and flatten layers between them do nothing
/// at inference), with weights copied and packed when the stage is built. Per layer and batch it picks the product:
///
/// - on AVX-512 CPUs, always the grouped product on the packed weights (``SparseKernels/PackedWeights``: 6 rows at
///   a time, only the columns where one of them is nonzero). On one Zen 5 core, for 1,000 MNIST test images through
///   a trained 784-800-800-10 student, it took 2.2 ms for the first layer (pixels 19 % nonzero) against 5.5 ms for
///   oneDNN's sgemm, 4.3 ms for the second (its input 41 % nonzero) against 5.5 ms, and 5.0 ms against 5.3 ms on a
///   fully dense input;
/// - elsewhere, a few rows (one image) or an input at most `sparseDensityLimit` nonzero take the four-chain sparse
///   product on the packed weights; other batches oneDNN's sgemm where it loads (``OneDNNGEMM``), else the BLAS
///   product. (A grouped product on AVX2, 6 rows x 16 units, was slower than the four-chain one on every input,
///   on Zen 5 cores capped at AVX2: first layer 4.6 against 3.1 ms, second 9.2 against 7.1 ms, one row of the
///   second 22 against 10 us.)
final class DenseStage: InferenceStage {
    struct Layer {
        /// The weights as given (`[out, in]`), kept only where a dense product may need them (no grouped product).
        let weight: Tensor?
        let units: Int
        let bias: Tensor
        let relu: Bool
        let packed: SparseKernels.PackedWeights
    }

    let layers: [Layer]
    let inputCount: Int

    /// Rows up to which the packed sparse product runs whatever the density (units split over the threads; a
    /// single row streams the weight rows of its nonzero inputs, which a hidden layer after ReLU has about half of).
    static let fewRows = 8

    /// The largest fraction of nonzero inputs for which a batch takes the packed four-chain sparse product (CPUs
    /// without AVX-512). Without the per-call transposition of training's sparse product it pays off on denser
    /// inputs: on Zen 5 cores capped at AVX2, 1,000 rows of a trained student's hidden layer (41 % nonzero) took
    /// 7.1 ms against 9.4 ms for OpenBLAS's AVX2 sgemm, so about 0.55 breaks even.
    static let sparseDensityLimit = 0.5

    /// The stage for `layers[start...]`: its longest run of Linear (+ ReLU) layers, with dropout, identity and
    /// flatten layers passed over; nil when it starts with none. `consumed`: how many of `layers` it covers.
    static func make(_ layers: ArraySlice<NeuralNet.Layer>) -> (stage: DenseStage, consumed: Int)? {
        var built: [Layer] = []
        var i = layers.startIndex
        var end = i
        while i < layers.endIndex {
            let layer = layers[i]
            if layer is Dropout || layer is Identity || layer is Flatten { i += 1; continue }
            guard let linear = layer as? Linear else { break }
            if let last = built.last, last.units != linear.inputCount { break }
            let relu = i + 1 < layers.endIndex && (layers[i + 1] as? ActivationLayer)?.activation == .relu
            let weight = linear.weight.value
            built.append(Layer(weight: SparseKernels.PackedWeights.groupsRows ? nil : Tensor(shape: weight.shape, scalars: weight.scalars),
                               units: linear.outputCount,
                               bias: Tensor(shape: [linear.outputCount], scalars: linear.bias.value.scalars), relu: relu,
                               packed: SparseKernels.PackedWeights(weight)))
            i += relu ? 2 : 1
            end = i
        }
        guard let first = built.first else { return nil }
        return (DenseStage(layers: built, inputCount: first.packed.inputs), end - layers.startIndex)
    }

    init(layers: [Layer], inputCount: Int) {
        self.layers = layers
        self.inputCount = inputCount
    }

    var summary: String {
        "linear " + ([inputCount] + layers.map(\.units)).map(String.init).joined(separator: "-")
            + (SparseKernels.PackedWeights.groupsRows ? " (grouped rows on packed weights)"
                : OneDNNGEMM.isAvailable ? " (sparse on packed weights / oneDNN sgemm)" : " (sparse on packed weights / BLAS)")
    }

    func run(_ input: Tensor, threads: Int) -> Tensor {
        let rows = input.shape.first ?? 0
        var x = input.rank == 2 ? input : input.reshaped([rows, input.count / Swift.max(1, rows)])
        for layer in layers { x = forward(layer, x, threads: threads) }
        return x
    }

    func forward(_ layer: Layer, _ x: Tensor, threads: Int) -> Tensor {
        let rows = x.shape[0]
        guard let weight = layer.weight, rows > DenseStage.fewRows, density(x) > DenseStage.sparseDensityLimit else {
            return layer.packed.forward(x, bias: layer.bias, relu: layer.relu, threads: threads)
        }
        if let y = OneDNNGEMM.linearForward(x, weight: weight, bias: layer.bias, relu: layer.relu, threads: threads) {
            return y
        }
        return linearForward(x, weight: weight, bias: layer.bias, activation: layer.relu ? .relu : .identity)
    }

    /// The fraction of nonzero values in x's first rows (at most 64: the decision needs no exact count).
    func density(_ x: Tensor) -> Double {
        let rows = Swift.min(x.shape[0], 64)
        guard rows > 0, x.shape[1] > 0 else { return 0 }
        return Double(SparseKernels.countNonzero(x, rows: rows)) / Double(rows * x.shape[1])
    }
}
