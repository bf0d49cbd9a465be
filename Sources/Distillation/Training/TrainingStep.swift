import TensorCore
import NeuralNet
import Optimizers
import Datasets
import Distributed

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
        let (loss, parts) = try forwardLoss(batch: batch, inputs: inputs, prepared: prepared, context: &context)
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

    /// The student's forward pass (capturing the layers the objective compares, if any) and the objective's loss.
    func forwardLoss(batch: Batch, inputs: Tensor, prepared: Tensor?, context: inout ForwardContext) throws
        -> (loss: Variable, parts: [String: Double]) {
        let layers = objective.studentFeatureLayers
        if layers.isEmpty {
            let logits = model(Variable(inputs), context: &context)
            return try objective.loss(studentLogits: logits, batch: batch, inputs: inputs, prepared: prepared)
        }
        let (logits, features) = model.forward(Variable(inputs), context: &context, capturing: layers)
        return try objective.loss(studentLogits: logits, studentFeatures: features, batch: batch, inputs: inputs, prepared: prepared)
    }

    /// What one process of a data-parallel job contributes to a step, and what all of them agreed.
    public struct SharedOutcome {
        /// The whole batch's loss (the sum over processes of each slice's loss times its share of the rows).
        public var loss: Float
        /// The whole batch's loss parts, likewise.
        public var parts: [String: Double]
        /// True when any process asked to stop (`stopRequested`).
        public var stop: Bool
    }

    /// One data-parallel step: this process holds `slice` of a batch (`batch` and `inputs` are its rows, `prepared`
    /// the objective's targets for them). The loss of the slice is scaled by its share of the batch's rows, so that
    /// the gradients summed over processes (``GradientBuckets``: an MPI_Allreduce per bucket, sent while the backward
    /// pass runs) are the batch-mean
    /// gradient a single process computes, up to the order of the float sums; then every process clips and takes the
    /// same optimizer step. The loss, its parts and the stop requests are summed too (in Double, before the backward
    /// pass), so every process sees the same loss and throws ``NonFiniteLoss`` together. Dropout draws the whole
    /// batch's mask (`ForwardContext.batchSlice`). Batch norm normalises with this slice's statistics (each process
    /// its own, as PyTorch's DistributedDataParallel without SyncBatchNorm); the running statistics are then copied
    /// from rank 0 to the others, so every process holds the same model.
    public func shared(batch: Batch, inputs: Tensor, prepared: Tensor?, slice: BatchSlice, communicator: Communicator,
                       stopRequested: Bool, context: inout ForwardContext) throws -> SharedOutcome {
        precondition(batch.count == slice.count && slice.count > 0, "the batch must be the slice's rows")
        for p in parameters { p.zeroGradient() }
        context.batchSlice = slice
        defer { context.batchSlice = nil }
        let (loss, parts) = try forwardLoss(batch: batch, inputs: inputs, prepared: prepared, context: &context)
        let share = Double(slice.count) / Double(slice.total)
        let keys = parts.keys.sorted()
        var summed = [Double(loss.value.scalar) * share] + keys.map { parts[$0, default: 0] * share } + [stopRequested ? 1 : 0]
        communicator.allreduceSum(&summed)
        let value = Float(summed[0])
        var shared: [String: Double] = [:]
        for (i, k) in keys.enumerated() { shared[k] = summed[1 + i] }
        let outcome = SharedOutcome(loss: value, parts: shared, stop: summed[summed.count - 1] > 0)
        guard value.isFinite else { throw NonFiniteLoss(value: value) }
        let buckets = buckets(for: communicator)
        buckets.begin()
        loss.backward(seed: Tensor(shape: loss.value.shape, repeating: Float(share)), onLeafReady: buckets.ready)
        buckets.finish()
        if let gradientClip { Constraints.clipGradientNorm(parameters, maximumNorm: gradientClip) }
        optimizer.step(parameters)
        if let maxNorm {
            for layer in constrained { Constraints.applyMaxNorm(layer.unitWeights, maximumNorm: maxNorm) }
        }
        if !buffers.isEmpty { broadcastBuffers(communicator) }
        return outcome
    }

    /// The bucket capacity in bytes of `shared`'s gradient sums (nil: one bucket after the backward pass);
    /// ``GradientBuckets/defaultCapacity`` unless set.
    public var gradientBucketCapacity: Int? = GradientBuckets.defaultCapacity {
        didSet { if gradientBucketCapacity != oldValue { gradientBuckets = nil } }
    }
    /// The buckets of `shared`, made for the first step's communicator.
    private var gradientBuckets: GradientBuckets?
    /// The model's buffers (batch norm's running statistics), in state order.
    private lazy var buffers: [Variable] = model.namedBuffers.map(\.buffer)

    /// The gradient buckets for `communicator` (made once per communicator).
    func buckets(for communicator: Communicator) -> GradientBuckets {
        if let gradientBuckets, gradientBuckets.communicator === communicator { return gradientBuckets }
        let made = GradientBuckets(parameters: parameters, communicator: communicator, capacity: gradientBucketCapacity)
        gradientBuckets = made
        return made
    }

    /// Copies rank 0's buffers to every process.
    func broadcastBuffers(_ communicator: Communicator) {
        let total = buffers.reduce(0) { $0 + $1.value.count }
        var flat = [Float](repeating: 0, count: total)
        var at = 0
        for b in buffers {
            b.value.withUnsafeBufferPointer { v in flat.withUnsafeMutableBufferPointer { f in (f.baseAddress! + at).update(from: v.baseAddress!, count: v.count) } }
            at += b.value.count
        }
        flat.withUnsafeMutableBufferPointer { communicator.broadcast($0, root: 0) }
        at = 0
        for b in buffers {
            let n = b.value.count
            b.value = Tensor(shape: b.value.shape) { v in flat.withUnsafeBufferPointer { f in v.baseAddress!.update(from: f.baseAddress! + at, count: n) } }
            at += n
        }
    }
}
