import Foundation

/// A learning-rate schedule, evaluated per epoch (PyTorch's schedulers stepped once per epoch), in closed form.
///
/// `learningRate(epoch:base:)` gives the rate used during epoch `epoch` (0-based).
public indirect enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// The base rate throughout.
    case constant
    /// `StepLR`: base * gamma^(floor(epoch / stepSize)).
    case step(stepSize: Int, gamma: Float)
    /// `CosineAnnealingLR`: minimum + (base - minimum) * (1 + cos(pi * epoch / totalEpochs)) / 2.
    case cosine(totalEpochs: Int, minimum: Float)
    /// `LinearLR` warm-up from base * startFactor to base over `epochs`, then `then` with its epochs counted from
    /// the end of the warm-up (`SequentialLR(milestones: [epochs])`).
    case warmup(epochs: Int, startFactor: Float, then: LearningRateSchedule)

    public func learningRate(epoch: Int, base: Float) -> Float {
        switch self {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * Float(Foundation.pow(Double(gamma), Double(epoch / Swift.max(stepSize, 1))))
        case let .cosine(total, minimum):
            let t = Double(Swift.min(epoch, total)) / Double(Swift.max(total, 1))
            return Float(Double(minimum) + Double(base - minimum) * (1 + Foundation.cos(Double.pi * t)) / 2)
        case let .warmup(epochs, startFactor, then):
            if epoch < epochs {
                let factor = Double(startFactor) + (1 - Double(startFactor)) * Double(epoch) / Double(Swift.max(epochs, 1))
                return Float(Double(base) * factor)
            }
            return then.learningRate(epoch: epoch - epochs, base: base)
        }
    }

    /// Checks the schedule's own numbers; returns a message naming what is wrong.
    public func validationError() -> String? {
        switch self {
        case .constant: return nil
        case let .step(stepSize, gamma):
            if stepSize < 1 { return "step schedule: step size must be >= 1, got \(stepSize)" }
            if !(gamma > 0) { return "step schedule: gamma must be > 0, got \(gamma)" }
            return nil
        case let .cosine(total, minimum):
            if total < 1 { return "cosine schedule: total epochs must be >= 1, got \(total)" }
            if !(minimum >= 0) { return "cosine schedule: minimum must be >= 0, got \(minimum)" }
            return nil
        case let .warmup(epochs, startFactor, then):
            if epochs < 0 { return "warm-up epochs must be >= 0, got \(epochs)" }
            if !(startFactor > 0 && startFactor <= 1) { return "warm-up start factor must be in (0, 1], got \(startFactor)" }
            return then.validationError()
        }
    }
}
