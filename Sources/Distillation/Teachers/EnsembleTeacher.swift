import Datasets
import Foundation
import NeuralNet
import TensorCore

/// Several teachers combined into one (the paper's ensemble of specialists/generalists, section 3).
///
/// - `.meanProbabilities` (the paper): p = (1/K) sum_k softmax(z_k / T). Its T = 1 `logits` are log of the mean
///   T = 1 probabilities.
/// - `.meanLogits`: p = softmax(((1/K) sum_k z_k) / T); its `logits` are the mean logits.
///
/// The two differ in general (averaging logits is a geometric mean of probabilities).
public final class EnsembleTeacher: Teacher {
    /// How member outputs are combined.
    public enum Combination: String, Codable, Sendable {
        case meanProbabilities = "mean-probabilities"
        case meanLogits = "mean-logits"
    }

    public let members: [Teacher]
    public let combination: Combination
    public let classCount: Int
    /// SHA-256 hex over the tag `Ensemble/v1`, the combination and each member identity in order.
    public let identity: String
    /// True when any member runs a model per batch.
    public var computesPerBatch: Bool { members.contains { $0.computesPerBatch } }

    /// - Throws: ``TrainingError`` when there are no members or two members disagree on the class count.
    public init(members: [Teacher], combination: Combination) throws {
        guard let first = members.first else { throw TrainingError("ensemble teacher: needs at least one member") }
        for (k, member) in members.enumerated() where member.classCount != first.classCount {
            throw TrainingError("ensemble teacher: member 0 (\(first.identity.prefix(12))) has \(first.classCount) classes but member \(k) (\(member.identity.prefix(12))) has \(member.classCount)")
        }
        self.members = members
        self.combination = combination
        self.classCount = first.classCount
        var text = "Ensemble/v1\n\(combination.rawValue)\n"
        for member in members { text += member.identity + "\n" }
        self.identity = SHA256.hexHash(Array(text.utf8))
    }

    public func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        try checkBatch(images, indices: indices, temperature: temperature)
        switch combination {
        case .meanProbabilities:
            return try meanOver { try $0.softTargets(batch: images, indices: indices, temperature: temperature) }
        case .meanLogits:
            let mean = try meanOver { try $0.logits(batch: images, indices: indices) }
            return Softmax.softmax(mean, temperature: temperature)
        }
    }

    public func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try checkBatch(images, indices: indices)
        switch combination {
        case .meanProbabilities:
            return try meanOver { try $0.softTargets(batch: images, indices: indices, temperature: 1) }.log()
        case .meanLogits:
            return try meanOver { try $0.logits(batch: images, indices: indices) }
        }
    }

    /// The elementwise mean of `output(member)` over members, each checked to be `[b, C]`.
    private func meanOver(_ output: (Teacher) throws -> Tensor) throws -> Tensor {
        var sum: Tensor?
        for member in members {
            let t = try output(member)
            guard t.rank == 2, t.shape[1] == classCount, sum == nil || sum!.shape == t.shape else {
                throw TrainingError("ensemble teacher: member \(member.identity.prefix(12)) returned shape \(t.shape), expected [b, \(classCount)]")
            }
            if sum == nil { sum = t } else { sum! += t }
        }
        return sum! / Float(members.count)
    }
}
