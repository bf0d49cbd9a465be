/// One finished epoch.
public struct EpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var seconds: Double
    public var learningRate: Float
    /// Mean training loss over the epoch's batches.
    public var trainLoss: Double
    /// Means of the objective's named parts (e.g. hard, soft).
    public var lossParts: [String: Double]
    /// Errors on the validation split (nil without one).
    public var validationErrors: Int?

    enum CodingKeys: String, CodingKey {
        case epoch, seconds, learningRate = "learning_rate", trainLoss = "train_loss", lossParts = "loss_parts"
        case validationErrors = "validation_errors"
    }
}

/// The history of a run.
public struct TrainingReport: Codable, Equatable, Sendable {
    public var epochs: [EpochRecord] = []
    /// The epoch (1-based) whose weights were kept: the best on validation, or the last without a validation split.
    public var selectedEpoch: Int = 0
    public var validationCount: Int = 0

    /// Median wall time per epoch.
    public var medianSecondsPerEpoch: Double {
        let s = epochs.map(\.seconds).sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    enum CodingKeys: String, CodingKey {
        case epochs, selectedEpoch = "selected_epoch", validationCount = "validation_count"
    }
}
