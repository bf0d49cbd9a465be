import TensorCore

/// Batch normalisation, PyTorch's `nn.BatchNorm1d` / `nn.BatchNorm2d` (Ioffe & Szegedy 2015).
///
/// In training mode each channel is normalised by the batch's statistics (over the batch and every position) and
/// the running estimates are updated: `running = (1 - momentum) * running + momentum * batch`, with the unbiased
/// batch variance for `running_var`, and `num_batches_tracked` counts the updates. In evaluation mode (and `infer`)
/// the running estimates are used. Settings: `numFeatures` (channels), `eps` (1e-5), `momentum` (0.1), `affine`
/// (true: a learned scale `weight`, initialised to 1, and shift `bias`, initialised to 0). The running statistics
/// are buffers (``Layer/namedBuffers``): saved in model files and training states, never trained.
public class BatchNormalization {
    public let featureCount: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Variable?
    public let bias: Variable?
    public let runningMean: Variable
    public let runningVariance: Variable
    /// Updates of the running statistics (a whole number; PyTorch stores it as int64).
    public let batchesTracked: Variable

    public init(featureCount: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) {
        precondition(featureCount > 0, "BatchNorm needs a positive feature count")
        self.featureCount = featureCount
        self.epsilon = epsilon
        self.momentum = momentum
        weight = affine ? Variable(Tensor(shape: [featureCount], repeating: 1), requiresGrad: true) : nil
        bias = affine ? Variable(Tensor(shape: [featureCount], repeating: 0), requiresGrad: true) : nil
        runningMean = Variable(Tensor(shape: [featureCount], repeating: 0))
        runningVariance = Variable(Tensor(shape: [featureCount], repeating: 1))
        batchesTracked = Variable(Tensor(shape: [], repeating: 0))
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        forward(input, context: &context, relu: false)
    }

    /// The forward pass followed by ReLU when `relu` (in training mode in the same pass).
    public func forward(_ input: Variable, context: inout ForwardContext, relu fusedReLU: Bool) -> Variable {
        guard context.training else {
            if fusedReLU { return NeuralNet.relu(forward(input, context: &context, relu: false)) }
            let y = infer(input.value)
            let scale = runningVariance.value.scalars.map { Float(1 / (Double($0) + Double(epsilon)).squareRoot()) }
            let shape = input.shape, channels = featureCount, size = shape.dropFirst(2).reduce(1, *)
            var parents = [input]
            if let weight { parents.append(weight) }
            if let bias { parents.append(bias) }
            let gamma = weight?.value.scalars, xv = input.value, mean = runningMean.value.scalars
            return customOperation(value: y, inputs: parents) { g in
                let gs = g.scalars, xs = xv.scalars
                var dx = [Float](repeating: 0, count: gs.count)
                var dgamma = [Double](repeating: 0, count: channels), dbeta = [Double](repeating: 0, count: channels)
                for b in 0..<shape[0] { for c in 0..<channels { for i in 0..<size {
                    let k = (b * channels + c) * size + i
                    dx[k] = gs[k] * scale[c] * (gamma?[c] ?? 1)
                    dgamma[c] += Double(gs[k]) * Double((xs[k] - mean[c]) * scale[c])
                    dbeta[c] += Double(gs[k])
                } } }
                var grads: [Tensor?] = [Tensor(shape: shape, scalars: dx)]
                if self.weight != nil { grads.append(Tensor(shape: [channels], scalars: dgamma.map { Float($0) })) }
                if self.bias != nil { grads.append(Tensor(shape: [channels], scalars: dbeta.map { Float($0) })) }
                return grads
            }
        }
        let (output, mean, variance) = batchNormTraining(input, weight: weight, bias: bias, epsilon: epsilon, relu: fusedReLU)
        let m = momentum
        runningMean.value = Tensor(shape: [featureCount]) { out in
            let old = runningMean.value.scalars
            for c in 0..<featureCount { out[c] = (1 - m) * old[c] + m * Float(mean[c]) }
        }
        runningVariance.value = Tensor(shape: [featureCount]) { out in
            let old = runningVariance.value.scalars
            for c in 0..<featureCount { out[c] = (1 - m) * old[c] + m * Float(variance[c]) }
        }
        batchesTracked.value = Tensor(scalar: batchesTracked.value.scalar + 1)
        return output
    }

    public func infer(_ input: Tensor) -> Tensor { infer(input, relu: false) }

    /// Evaluation mode with the running statistics, clamped at 0 in the same pass when `relu`.
    public func infer(_ input: Tensor, relu: Bool) -> Tensor {
        batchNormInference(input, mean: runningMean.value, variance: runningVariance.value, weight: weight?.value,
                           bias: bias?.value, epsilon: epsilon, relu: relu)
    }

    public var namedParameters: [(name: String, parameter: Variable)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    public var namedBuffers: [(name: String, buffer: Variable)] {
        [("running_mean", runningMean), ("running_var", runningVariance), ("num_batches_tracked", batchesTracked)]
    }

    func settings() -> [String: LayerDescription.Value] {
        var s: [String: LayerDescription.Value] = ["numFeatures": .integer(featureCount)]
        if epsilon != 1e-5 { s["eps"] = .number(Double(String(epsilon)) ?? Double(epsilon)) }
        if momentum != 0.1 { s["momentum"] = .number(Double(String(momentum)) ?? Double(momentum)) }
        if weight == nil { s["affine"] = .bool(false) }
        return s
    }

    struct Settings {
        var features: Int
        var epsilon: Float
        var momentum: Float
        var affine: Bool
    }

    /// Reads and checks a description for input `inputShape`, whose rank must be one of `ranks`.
    static func read(_ d: LayerDescription, inputShape: [Int], ranks: Set<Int>, expected: String) throws -> (Settings, LayerPlan) {
        try d.checkSettings(["numFeatures", "eps", "momentum", "affine"])
        let features = try d.integer("numFeatures", minimum: 1)
        let epsilon = try d.number("eps", in: 1e-30...1, default: 1e-5)
        guard epsilon > 0 else { throw ModelDescriptionError("layer '\(d.kind)': setting 'eps' must be > 0, got \(epsilon)") }
        let momentum = try d.number("momentum", in: 0...1, default: 0.1)
        let affine = try d.bool("affine", default: true)
        guard ranks.contains(inputShape.count), inputShape.first == features else {
            throw ModelDescriptionError("layer '\(d.kind)' (\(features) features) needs input shape \(expected), got \(inputShape)")
        }
        var parameters: [LayerPlan.ParameterShape] = []
        if affine { parameters = [.init(name: "weight", shape: [features]), .init(name: "bias", shape: [features])] }
        let buffers: [LayerPlan.ParameterShape] = [.init(name: "running_mean", shape: [features]),
                                                   .init(name: "running_var", shape: [features]),
                                                   .init(name: "num_batches_tracked", shape: [])]
        return (Settings(features: features, epsilon: Float(epsilon), momentum: Float(momentum), affine: affine),
                LayerPlan(outputShape: inputShape, parameterShapes: parameters, bufferShapes: buffers))
    }
}

/// Batch normalisation of feature vectors `[C]` (or sequences `[C, L]`), PyTorch's `nn.BatchNorm1d`.
public final class BatchNorm1d: BatchNormalization, LayerKind {
    public static let kind = "batchNorm1d"
    public var layerDescription: LayerDescription { LayerDescription(kind: BatchNorm1d.kind, settings: settings()) }
    public static func description(numFeatures: Int) -> LayerDescription {
        LayerDescription(kind: kind, settings: ["numFeatures": .integer(numFeatures)])
    }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try read(description, inputShape: inputShape, ranks: [1, 2], expected: "[features] or [features, length]").1
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> BatchNorm1d {
        let s = try read(description, inputShape: inputShape, ranks: [1, 2], expected: "").0
        return BatchNorm1d(featureCount: s.features, epsilon: s.epsilon, momentum: s.momentum, affine: s.affine)
    }
}

/// Batch normalisation of feature maps `[C, H, W]`, PyTorch's `nn.BatchNorm2d`.
public final class BatchNorm2d: BatchNormalization, LayerKind {
    public static let kind = "batchNorm2d"
    public var layerDescription: LayerDescription { LayerDescription(kind: BatchNorm2d.kind, settings: settings()) }
    public static func description(numFeatures: Int) -> LayerDescription {
        LayerDescription(kind: kind, settings: ["numFeatures": .integer(numFeatures)])
    }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try read(description, inputShape: inputShape, ranks: [3], expected: "[channels, height, width]").1
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> BatchNorm2d {
        let s = try read(description, inputShape: inputShape, ranks: [3], expected: "").0
        return BatchNorm2d(featureCount: s.features, epsilon: s.epsilon, momentum: s.momentum, affine: s.affine)
    }
}
