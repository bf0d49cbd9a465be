/// The components of one evaluation of the distillation loss, each a batch mean, in Double.
///
/// Reported soft part: the loss uses the soft **cross-entropy** H(p_t, q_s) = -sum_j p_tj log q_sj (times s), not
/// the KL divergence. KL(p_t || q_s) = H(p_t, q_s) - H(p_t) differs only by the teacher's entropy H(p_t), which does
/// not depend on the student, so both give the same gradient; PyTorch recipes (`kl_div(..., 'batchmean') * T^2`)
/// report the KL value. Both are given here so logs can be compared with either convention.
public struct DistillationLossParts: Codable, Equatable, Sendable {
    /// Cross-entropy with the hard labels at T = 1: mean_b -log softmax(z_s)[y_b] (unweighted).
    public var hard: Double
    /// Soft cross-entropy mean_b H(p_t, softmax(z_s / T)), unscaled and unweighted.
    public var softCrossEntropy: Double
    /// KL(p_t || softmax(z_s / T)) batch mean, unscaled and unweighted (= softCrossEntropy - teacher entropy).
    public var softKL: Double
    /// The soft value that enters the loss: s * softCrossEntropy, s = T^2 or 1 (unweighted).
    public var softScaled: Double
    /// The loss: hardWeight * hard + softWeight * softScaled.
    public var total: Double

    public init(hard: Double, softCrossEntropy: Double, softKL: Double, softScaled: Double, total: Double) {
        self.hard = hard
        self.softCrossEntropy = softCrossEntropy
        self.softKL = softKL
        self.softScaled = softScaled
        self.total = total
    }
}
