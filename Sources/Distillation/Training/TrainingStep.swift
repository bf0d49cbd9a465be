import TensorCore
import NeuralNet
import Optimizers
import Datasets

/// One optimisation step, the unit `Trainer` repeats and the benchmark times: zero the gradients, forward pass,
/// the objective's loss, backward pass, gradient-norm clipping, the optimizer's update, and the max-norm constraint
/// on every layer with unit weights except the output layer.
public final class TrainingStep {
    public let model: Sequential
    public let objective: TrainingObjective
    public let optimizer: Optimizer
    public let parameters: [Variable]
    /// Max-norm bound on each hidden unit's incoming weights; nil = off.
    public let maxNorm: Float?
    /// Global gradient-norm clipping; nil = off.
    public let gradientClip: Float?
    /// The layers the max-norm constraint applies to (the hidden ones).
    let constrained: [UnitWeights]

    /// The loss was NaN or infinite: the step stopped before the backward pass, so the weights are unchanged.
    public struct NonFiniteLoss: Error {
        public let value: Float
    }

    public init(model: Sequential, objective: TrainingObjective, optimizer: Optimizer, maxNorm: Float? = nil,
                gradientClip: Float? = nil) {
        self.model = model
        self.objective = objective
        self.optimizer = optimizer
        // The objective's own parameters (a regressor) after the model's: optimizer state indices of the model's
        // parameters do not depend on the objective.
        self.parameters = model.parameters + objective.namedParameters.map(\.parameter)
        self.maxNorm = maxNorm
        self.gradientClip = gradientClip
        self.constrained = Array(model.unitWeightLayers.dropLast())
    }

    /// One step on `batch` whose (augmented) inputs are `inputs`, with what the objective prepared for it (nil:
    /// computed here). Returns the loss and its parts; throws ``NonFiniteLoss`` before touching the weights when the
    /// loss is not finite, and the objective's errors.
    @discardableResult
    public func callAsFunction(batch: Batch, inputs: Tensor, prepared: Tensor?, context: inout ForwardContext) throws
        -> (loss: Float, parts: [String: Double]) {
        for p in parameters { p.zeroGradient() }
        let layers = objective.studentFeatureLayers
        let (loss, parts): (Variable, [String: Double])
        if layers.isEmpty {
            let logits = model(Variable(inputs), context: &context)
            (loss, parts) = try objective.loss(studentLogits: logits, batch: batch, inputs: inputs, prepared: prepared)
        } else {
            let (logits, features) = model.forward(Variable(inputs), context: &context, capturing: layers)
            (loss, parts) = try objective.loss(studentLogits: logits, studentFeatures: features, batch: batch, inputs: inputs,
                                               prepared: prepared)
        }
        let value = loss.value.scalar
        guard value.isFinite else { throw NonFiniteLoss(value: value) }
        loss.backward()
        if let gradientClip { Constraints.clipGradientNorm(parameters, maximumNorm: gradientClip) }
        optimizer.step(parameters)
        if let maxNorm {
            for layer in constrained { Constraints.applyMaxNorm(layer.unitWeights, maximumNorm: maxNorm) }
        }
        return (value, parts)
    }
}
