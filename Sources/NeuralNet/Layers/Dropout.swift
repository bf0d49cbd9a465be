import TensorCore

/// Inverted dropout, PyTorch's `nn.Dropout(p)`: in training each element is zeroed with probability p and the
/// survivors are scaled by 1/(1-p); in evaluation it is the identity. The mask is `Kernels.dropoutMask`: one 64-bit
/// draw per 4 elements, each element keeping with probability round((1-p) * 65536) / 65536. On a slice of a batch
/// (`ForwardContext.batchSlice`) the mask is the whole batch's, sliced.
public final class Dropout: LayerKind, RowWise {
    public let probability: Float

    public init(probability: Float) {
        precondition(probability >= 0 && probability < 1, "Dropout probability must be in [0, 1), got \(probability)")
        self.probability = probability
    }

    public func forward(_ input: Variable, context: inout ForwardContext) -> Variable {
        guard context.training, probability > 0 else { return input }
        let keep = 1 - probability, scale = 1 / keep
        if let slice = context.batchSlice, input.shape.first == slice.count, slice.count != slice.total {
            // The whole batch's mask, then this slice's rows: the same draws as on the whole batch.
            var shape = input.shape
            shape[0] = slice.total
            let whole = Tensor(shape: shape) { m in
                Kernels.dropoutMask(m, keep: keep, scale: scale, generator: &context.generator)
            }
            return multiply(input, mask: whole.rows(slice.range))
        }
        let mask = Tensor(shape: input.shape) { m in
            Kernels.dropoutMask(m, keep: keep, scale: scale, generator: &context.generator)
        }
        return multiply(input, mask: mask)
    }

    public func infer(_ input: Tensor) -> Tensor { input }

    public static let kind = "dropout"
    public static func description(probability: Float) -> LayerDescription {
        LayerDescription(kind: kind, settings: ["probability": .number(Double(String(probability)) ?? Double(probability))])
    }
    public var layerDescription: LayerDescription { Dropout.description(probability: probability) }
    public static func plan(_ description: LayerDescription, inputShape: [Int]) throws -> LayerPlan {
        try description.checkSettings(["probability"])
        let p = try description.number("probability", in: 0...1)
        guard p < 1 else { throw ModelDescriptionError("layer 'dropout': setting 'probability' must be in [0, 1), got \(p)") }
        return LayerPlan(outputShape: inputShape)
    }
    public static func make(_ description: LayerDescription, inputShape: [Int], generator: inout RandomGenerator) throws -> Dropout {
        _ = try plan(description, inputShape: inputShape)
        return Dropout(probability: Float(try description.number("probability")))
    }
}
