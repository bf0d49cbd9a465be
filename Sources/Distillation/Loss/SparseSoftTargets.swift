import Foundation

/// What a top-k teacher says about the classes it did not keep: its "missing mass".
///
/// A top-k store keeps a row's k largest T = 1 logits and, beside them, the log-sum-exp of the whole row, so the
/// probability the teacher gave to the other C - k classes at T = 1 is known exactly; how it spreads over them is not.
public enum MissingMass: String, Codable, Sendable, CaseIterable {
    /// The missing classes get probability 0: the softmax runs over the k kept logits only (DistillKit's `zero`).
    case renormalize
    /// The missing mass is spread evenly over the C - k missing classes: each gets the logit that makes their T = 1
    /// total equal to the stored tail, softened at T like the kept ones. The loss is then exactly the cross-entropy
    /// with that dense teacher, computed without forming it, and the student is pulled towards a flat tail.
    case uniform
    /// The missing classes form one bucket whose teacher mass (at T, under the same even spread) is compared with
    /// the student's total mass on them, as DistillKit's `symmetric_uniform` does; the shape of the student's tail
    /// is left free.
    case bucket
}

/// A batch of teacher soft targets at temperature T in sparse form: per row, k (class, probability) pairs and how the
/// remaining probability is treated (see ``MissingMass``). Built by ``TeacherLogitStore`` for top-k stores; consumed
/// by ``distillationLoss(studentLogits:sparseTargets:labels:configuration:)`` without a `[B, C]` teacher tensor.
public struct SparseSoftTargets: Sendable {
    public let rowCount: Int
    public let classCount: Int
    /// k, the pairs per row.
    public let keptCount: Int
    /// Row-major `[rowCount * keptCount]`: the classes (distinct within a row) and their probabilities at T.
    public let classes: [Int32]
    public let probabilities: [Float]
    /// Per row: the probability of each missing class (``MissingMass/uniform``), else 0.
    public let tailPerClass: [Float]
    /// Per row: the teacher's total probability on the missing classes at T (0 for ``MissingMass/renormalize``).
    public let tailMass: [Float]
    public let missingMass: MissingMass

    /// Soft targets at temperature T from top-k T = 1 logits.
    /// - Parameters:
    ///   - logits: `[rows * k]` kept logits, row-major; `classes` their classes (distinct per row, in `0..<classCount`).
    ///   - logSumExp: per row, log sum_j exp(z_j) over all C classes at T = 1; required unless `missingMass` is
    ///     ``MissingMass/renormalize`` (and ignored then).
    /// Inconsistent shapes are programmer errors (preconditions); callers check user data first.
    public init(logits: [Float], classes: [Int32], logSumExp: [Float]?, rowCount: Int, classCount: Int,
                temperature: Float, missingMass: MissingMass) {
        precondition(rowCount > 0 && logits.count % rowCount == 0 && logits.count == classes.count,
                     "SparseSoftTargets: \(logits.count) logits and \(classes.count) classes for \(rowCount) rows")
        let k = logits.count / rowCount
        precondition(k >= 1 && k <= classCount, "SparseSoftTargets: k = \(k) outside 1...\(classCount)")
        precondition(missingMass == .renormalize || logSumExp?.count == rowCount,
                     "SparseSoftTargets: \(missingMass.rawValue) needs the log-sum-exp of every row")
        precondition(temperature > 0 && temperature.isFinite, "SparseSoftTargets: temperature must be > 0")
        let invT = 1 / Double(temperature), missing = Double(classCount - k)
        var probabilities = [Float](repeating: 0, count: logits.count)
        var tailPerClass = [Float](repeating: 0, count: rowCount), tailMass = [Float](repeating: 0, count: rowCount)
        var scaled = [Double](repeating: 0, count: k)
        for r in 0..<rowCount {
            let base = r * k
            // The missing classes' common T = 1 logit: log(tail sum / (C - k)), when the row has a tail at all.
            var tailLogit: Double? = nil
            if missingMass != .renormalize, missing > 0, let lse = logSumExp.map({ Double($0[r]) }) {
                var kept = 0.0
                for i in 0..<k { kept += Foundation.exp(Double(logits[base + i]) - lse) }
                let tail = 1 - kept
                if tail > 0 { tailLogit = lse + Foundation.log(tail) - Foundation.log(missing) }
            }
            var m = -Double.infinity
            for i in 0..<k { scaled[i] = Double(logits[base + i]) * invT; m = Swift.max(m, scaled[i]) }
            let tailScaled = tailLogit.map { $0 * invT }
            if let t = tailScaled { m = Swift.max(m, t) }
            var total = 0.0
            for i in 0..<k { scaled[i] = Foundation.exp(scaled[i] - m); total += scaled[i] }
            let tailEach = tailScaled.map { Foundation.exp($0 - m) } ?? 0
            total += missing * tailEach
            for i in 0..<k { probabilities[base + i] = Float(scaled[i] / total) }
            let each = tailEach / total
            if missingMass == .uniform { tailPerClass[r] = Float(each) }
            tailMass[r] = Float(missing * each)
        }
        self.rowCount = rowCount
        self.classCount = classCount
        self.keptCount = k
        self.classes = classes
        self.probabilities = probabilities
        self.tailPerClass = tailPerClass
        self.tailMass = tailMass
        self.missingMass = missingMass
    }

    /// The teacher's entropy summed over rows, of the distribution the loss compares with: the k kept probabilities
    /// and, for ``MissingMass/uniform``, C - k classes of `tailPerClass` each, for ``MissingMass/bucket`` one bucket
    /// of `tailMass`.
    public var entropySum: Double {
        var h = 0.0
        let missing = Double(classCount - keptCount)
        for r in 0..<rowCount {
            for i in (r * keptCount)..<((r + 1) * keptCount) {
                let p = Double(probabilities[i])
                if p > 0 { h -= p * Foundation.log(p) }
            }
            switch missingMass {
            case .renormalize: break
            case .uniform:
                let u = Double(tailPerClass[r])
                if u > 0 { h -= missing * u * Foundation.log(u) }
            case .bucket:
                let mass = Double(tailMass[r])
                if mass > 0 { h -= mass * Foundation.log(mass) }
            }
        }
        return h
    }

    /// The dense `[rowCount * classCount]` teacher these targets stand for under ``MissingMass/renormalize`` or
    /// ``MissingMass/uniform`` (for tests and small C; ``MissingMass/bucket`` has no dense equivalent and gives nil).
    public func densified() -> [Float]? {
        guard missingMass != .bucket else { return nil }
        var dense = [Float](repeating: 0, count: rowCount * classCount)
        for r in 0..<rowCount {
            for j in 0..<classCount { dense[r * classCount + j] = tailPerClass[r] }
            for i in (r * keptCount)..<((r + 1) * keptCount) { dense[r * classCount + Int(classes[i])] = probabilities[i] }
        }
        return dense
    }
}
