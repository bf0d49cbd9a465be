import Datasets
import Foundation
import NeuralNet
import TensorCore

/// One specialist's view of one example: its subset (sorted classes) and its distribution over the subset followed
/// by the dustbin (m + 1 probabilities).
public struct SpecialistOpinion: Sendable {
    public var classes: [Int]
    public var probabilities: [Double]
    public init(classes: [Int], probabilities: [Double]) {
        precondition(probabilities.count == classes.count + 1, "SpecialistOpinion: \(classes.count) classes need \(classes.count + 1) probabilities")
        self.classes = classes
        self.probabilities = probabilities
    }
}

/// The paper's eq. 5: the full distribution q = softmax(y) minimising
///
///     KL(p_g || q) + sum over active specialists m of KL(p_m || q_m),
///
/// where p_g is the generalist's distribution and q_m is q seen by specialist m: q on its subset, and the sum of q
/// over every other class on its dustbin. The objective is convex in q (each term is convex and q_m is linear in q),
/// so the minimiser is unique; with no specialist it is p_g.
///
/// Solved over the logits y by descent steps. With W = 1 + (number of specialists), the gradient is
///
///     g_j = W q_j - p_g[j] - sum_m t_m[j],   t_m[j] = p_m[j] (j in S_m),  p_m[dustbin] q_j / Q_m (j not in S_m),
///
/// Q_m = sum of q outside S_m. The steps are Newton's: the gradient premultiplied by the inverse of the Hessian in y
/// (``hessian``), Levenberg-Marquardt damped where that is not positive definite, halved until the objective falls
/// enough (Armijo), no logit moving by more than 20 nats at once. Plain or quasi-Newton gradient descent stalls
/// here: the Hessian's eigenvalues scale with the classes' probabilities and span ten orders of magnitude on typical
/// examples, and L-BFGS left gradients of 1e-9 to 1e-6 after 3,000 steps, where Newton needs a handful. Where the
/// specialists' dustbins push a class the generalist already gives almost nothing towards probability 0, the optimum
/// lies at an infinite logit and the steps converge only linearly: on the printed characters with a strong generalist
/// and five candidate classes, 65 of 5,000 combinations needed more than 200 steps and 2 more than 2,000 (their
/// gradients then 1e-10, the predicted classes the same). It stops when max_j |g_j| <= `tolerance` (probability
/// units) or after `maxIterations`. All in Double, in logs.
public struct CombinationSolver: Sendable {
    public var tolerance: Double
    public var maxIterations: Int

    public init(tolerance: Double = 1e-12, maxIterations: Int = 2000) {
        self.tolerance = tolerance
        self.maxIterations = maxIterations
    }

    public struct Solution: Sendable {
        public var probabilities: [Double]
        public var objective: Double
        public var iterations: Int
        /// max_j |g_j| at the end.
        public var gradient: Double
        public var converged: Bool
    }

    /// The objective at logits `y` (in nats).
    public static func objective(logits y: [Double], generalist p: [Double], opinions: [SpecialistOpinion]) -> Double {
        let logQ = logSoftmax(y)
        var f = 0.0
        for j in 0..<p.count where p[j] > 0 { f += p[j] * (Foundation.log(p[j]) - logQ[j]) }
        for o in opinions {
            let m = o.classes.count
            for (i, c) in o.classes.enumerated() where o.probabilities[i] > 0 {
                f += o.probabilities[i] * (Foundation.log(o.probabilities[i]) - logQ[c])
            }
            let d = o.probabilities[m]
            if d > 0 { f += d * (Foundation.log(d) - logOutside(logQ, o.classes)) }
        }
        return f
    }

    /// Minimises the objective starting from y = log p_g. The distributions are first normalised to sum to 1 in
    /// Double (probabilities computed in float are off by ~1e-7, which would leave a gradient along the constant
    /// direction of y that no step can remove).
    public func solve(generalist pIn: [Double], opinions opinionsIn: [SpecialistOpinion]) -> Solution {
        func normalised(_ v: [Double]) -> [Double] {
            let total = v.reduce(0, +)
            return total > 0 ? v.map { $0 / total } : v
        }
        let p = normalised(pIn)
        let opinions = opinionsIn.map { SpecialistOpinion(classes: $0.classes, probabilities: normalised($0.probabilities)) }
        let c = p.count
        let w = Double(1 + opinions.count)
        var y = p.map { Foundation.log(Swift.max($0, 1e-300)) }
        var f = Self.objective(logits: y, generalist: p, opinions: opinions)
        var g = gradient(y, p, opinions, w)
        var gmax = g.map(abs).max() ?? 0
        var iterations = 0
        var damping = 1e-12
        func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        while gmax > tolerance && iterations < maxIterations {
            iterations += 1
            let h = hessian(y, opinions, w)
            var accepted = false
            for _ in 0..<40 {
                guard var d = Self.solveDamped(h, g, size: c, damping: damping) else { damping = Swift.max(damping * 10, 1e-10); continue }
                let shift = d.reduce(0, +) / Double(c)  // moving every logit alike changes nothing
                d = d.map { Swift.min(20, Swift.max(-20, $0 - shift)) }  // no logit moves by more than 20 nats at once
                let slope = dot(g, d)
                guard slope < 0 else { damping = Swift.max(damping * 10, 1e-10); continue }
                var eta = 1.0
                while eta > 1e-10 {
                    let candidate = (0..<c).map { y[$0] + eta * d[$0] }
                    let fc = Self.objective(logits: candidate, generalist: p, opinions: opinions)
                    let gc = gradient(candidate, p, opinions, w)
                    // Armijo's sufficient decrease; near the optimum, where the objective changes by less than
                    // its rounding (~1e-16 |f|), a step is judged by the length of the gradient it leaves.
                    let resolvable = -slope > 1e-13 * Swift.max(1, abs(f))
                    if fc <= f + 1e-4 * eta * slope || (!resolvable && fc <= f + 1e-14 * Swift.max(1, abs(f)) && dot(gc, gc) < dot(g, g)) {
                        y = candidate; f = Swift.min(f, fc); g = gc; gmax = gc.map(abs).max() ?? 0
                        accepted = true
                        break
                    }
                    eta /= 2
                }
                if accepted { damping = Swift.max(damping / 10, 1e-12); break }
                damping = Swift.max(damping * 100, 1e-10)
            }
            if !accepted { break }  // no progress at any damping: at the optimum to rounding
        }
        let q = Self.logSoftmax(y).map { Foundation.exp($0) }
        return Solution(probabilities: q, objective: f, iterations: iterations, gradient: gmax, converged: gmax <= tolerance)
    }

    /// The Hessian of the objective in y (row-major C x C): W (diag(q) - q q^T) - sum_m d_m (diag(r_m) - r_m r_m^T),
    /// r_m = q / Q_m outside S_m and 0 inside, d_m the specialist's dustbin probability.
    public func hessian(_ y: [Double], _ opinions: [SpecialistOpinion], _ w: Double) -> [Double] {
        let c = y.count
        let logQ = Self.logSoftmax(y)
        let q = logQ.map { Foundation.exp($0) }
        var h = [Double](repeating: 0, count: c * c)
        for a in 0..<c {
            h[a * c + a] += w * q[a]
            for b in 0..<c { h[a * c + b] -= w * q[a] * q[b] }
        }
        for o in opinions {
            let d = o.probabilities[o.classes.count]
            guard d > 0 else { continue }
            let inside = Set(o.classes)
            let logOut = Self.logOutside(logQ, o.classes)
            let r = (0..<c).map { inside.contains($0) ? 0 : Foundation.exp(logQ[$0] - logOut) }
            for a in 0..<c where r[a] != 0 {
                h[a * c + a] -= d * r[a]
                for b in 0..<c where r[b] != 0 { h[a * c + b] += d * r[a] * r[b] }
            }
        }
        return h
    }

    /// Solves (H + lambda I) x = -g by Cholesky; nil when H + lambda I is not positive definite.
    public static func solveDamped(_ h: [Double], _ g: [Double], size n: Int, damping: Double) -> [Double]? {
        var l = h
        for i in 0..<n { l[i * n + i] += damping }
        for j in 0..<n {
            var diagonal = l[j * n + j]
            for k in 0..<j { diagonal -= l[j * n + k] * l[j * n + k] }
            guard diagonal > 0, diagonal.isFinite else { return nil }
            let root = diagonal.squareRoot()
            l[j * n + j] = root
            for i in (j + 1)..<n {
                var v = l[i * n + j]
                for k in 0..<j { v -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = v / root
            }
        }
        var x = g.map { -$0 }
        for i in 0..<n {
            for k in 0..<i { x[i] -= l[i * n + k] * x[k] }
            x[i] /= l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            for k in (i + 1)..<n { x[i] -= l[k * n + i] * x[k] }
            x[i] /= l[i * n + i]
        }
        return x
    }

    public func gradient(_ y: [Double], _ p: [Double], _ opinions: [SpecialistOpinion], _ w: Double) -> [Double] {
        let logQ = Self.logSoftmax(y)
        let q = logQ.map { Foundation.exp($0) }
        var g = (0..<p.count).map { w * q[$0] - p[$0] }
        for o in opinions {
            let m = o.classes.count
            var inside = [Bool](repeating: false, count: p.count)
            for (i, c) in o.classes.enumerated() { inside[c] = true; g[c] -= o.probabilities[i] }
            let d = o.probabilities[m]
            if d > 0 {
                let logOut = Self.logOutside(logQ, o.classes)
                for j in 0..<p.count where !inside[j] { g[j] -= d * Foundation.exp(logQ[j] - logOut) }
            }
        }
        return g
    }

    static func logSoftmax(_ y: [Double]) -> [Double] {
        let m = y.max() ?? 0
        let lse = m + Foundation.log(y.reduce(0) { $0 + Foundation.exp($1 - m) })
        return y.map { $0 - lse }
    }

    /// log of the total of exp(logQ) over the classes not in `classes`.
    static func logOutside(_ logQ: [Double], _ classes: [Int]) -> Double {
        let inside = Set(classes)
        let rest = (0..<logQ.count).filter { !inside.contains($0) }.map { logQ[$0] }
        let m = rest.max() ?? -.infinity
        guard m > -.infinity else { return -.infinity }
        return m + Foundation.log(rest.reduce(0) { $0 + Foundation.exp($1 - m) })
    }
}

/// A generalist and its specialists, combined per example (section 5.3): take the generalist's `candidates` most
/// probable classes; the active specialists are those whose subset holds at least one of them; solve eq. 5 with
/// them (``CombinationSolver``). Examples with no active specialist keep the generalist's distribution.
public struct SpecialistSystem {
    public let generalist: Sequential
    public let specialists: [Specialist]
    /// n, the generalist's top classes that select the active specialists.
    public var candidates: Int
    public var solver: CombinationSolver

    public init(generalist: Sequential, specialists: [Specialist], candidates: Int = 1, solver: CombinationSolver = CombinationSolver()) {
        self.generalist = generalist
        self.specialists = specialists
        self.candidates = candidates
        self.solver = solver
    }

    public struct Prediction: Sendable {
        /// The generalist's and the combined distribution over the C classes.
        public var generalist: [Double]
        public var combined: [Double]
        /// Indices of the active specialists.
        public var active: [Int]
        public var converged: Bool
        public var iterations: Int

        public init(generalist: [Double], combined: [Double], active: [Int], converged: Bool, iterations: Int) {
            self.generalist = generalist
            self.combined = combined
            self.active = active
            self.converged = converged
            self.iterations = iterations
        }
    }

    /// Predictions for every example of `dataset`.
    public func predict(_ dataset: LabeledDataset, batchSize: Int = 1000) -> [Prediction] {
        let c = dataset.classCount
        let generalistLogits = logitsOf(generalist, dataset, batchSize: batchSize)
        let pg = Softmax.softmax(generalistLogits).scalars
        let specialistProbabilities = specialists.map { s -> [Float] in
            var out: [Float] = []
            var start = 0
            while start < dataset.count {
                let end = Swift.min(start + batchSize, dataset.count)
                out.append(contentsOf: s.probabilities(dataset.inputs(rows: start..<end)).scalars)
                start = end
            }
            return out
        }
        let subsets = specialists.map { Set($0.classes) }
        return (0..<dataset.count).map { r in
            let p = (0..<c).map { Double(pg[r * c + $0]) }
            let top = Set((0..<c).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }.prefix(candidates))
            let active = (0..<specialists.count).filter { !subsets[$0].isDisjoint(with: top) }
            guard !active.isEmpty else {
                return Prediction(generalist: p, combined: p, active: [], converged: true, iterations: 0)
            }
            let opinions = active.map { k -> SpecialistOpinion in
                let m1 = specialists[k].classes.count + 1
                return SpecialistOpinion(classes: specialists[k].classes,
                                         probabilities: (0..<m1).map { Double(specialistProbabilities[k][r * m1 + $0]) })
            }
            let solution = solver.solve(generalist: p, opinions: opinions)
            return Prediction(generalist: p, combined: solution.probabilities, active: active,
                              converged: solution.converged, iterations: solution.iterations)
        }
    }
}

/// The generalist against generalist + specialists on a labelled set, and the paper's Table 4: the change split by
/// how many active specialists cover the correct class.
public struct SpecialistEvaluation: Codable, Sendable {
    public var examples: Int
    public var generalistErrors: Int
    public var combinedErrors: Int
    /// Examples where the solver stopped at its iteration cap (reported, never hidden).
    public var unconverged: Int
    public var byCoveringSpecialists: [CoveringRow]

    public struct CoveringRow: Codable, Sendable {
        /// Active specialists whose subset holds the example's label.
        public var covering: Int
        public var examples: Int
        public var generalistCorrect: Int
        public var combinedCorrect: Int
        /// combinedCorrect - generalistCorrect.
        public var delta: Int { combinedCorrect - generalistCorrect }
        /// delta / generalistCorrect (the paper's "relative accuracy change").
        public var relativeAccuracyChange: Double { generalistCorrect == 0 ? 0 : Double(delta) / Double(generalistCorrect) }

        enum CodingKeys: String, CodingKey {
            case covering, examples, delta
            case generalistCorrect = "generalist_correct", combinedCorrect = "combined_correct"
            case relativeAccuracyChange = "relative_accuracy_change"
        }
        public init(covering: Int, examples: Int, generalistCorrect: Int, combinedCorrect: Int) {
            self.covering = covering
            self.examples = examples
            self.generalistCorrect = generalistCorrect
            self.combinedCorrect = combinedCorrect
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            covering = try c.decode(Int.self, forKey: .covering)
            examples = try c.decode(Int.self, forKey: .examples)
            generalistCorrect = try c.decode(Int.self, forKey: .generalistCorrect)
            combinedCorrect = try c.decode(Int.self, forKey: .combinedCorrect)
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(covering, forKey: .covering)
            try c.encode(examples, forKey: .examples)
            try c.encode(generalistCorrect, forKey: .generalistCorrect)
            try c.encode(combinedCorrect, forKey: .combinedCorrect)
            try c.encode(delta, forKey: .delta)
            try c.encode(relativeAccuracyChange, forKey: .relativeAccuracyChange)
        }
    }

    /// Relative accuracy change, combined over generalist (the paper's 4.4 %: 25.0 % -> 26.1 % top-1).
    public var relativeGain: Double {
        let g = Double(examples - generalistErrors), c = Double(examples - combinedErrors)
        return g == 0 ? 0 : c / g - 1
    }
    /// (generalist errors - combined errors) / generalist errors.
    public var errorReduction: Double {
        generalistErrors == 0 ? 0 : Double(generalistErrors - combinedErrors) / Double(generalistErrors)
    }
    /// Errors on the examples with at least one covering specialist.
    public var coveredGeneralistErrors: Int { byCoveringSpecialists.filter { $0.covering > 0 }.reduce(0) { $0 + $1.examples - $1.generalistCorrect } }
    public var coveredCombinedErrors: Int { byCoveringSpecialists.filter { $0.covering > 0 }.reduce(0) { $0 + $1.examples - $1.combinedCorrect } }

    public init(predictions: [SpecialistSystem.Prediction], labels: [Int], subsets: [[Int]]) {
        precondition(predictions.count == labels.count, "SpecialistEvaluation: \(predictions.count) predictions, \(labels.count) labels")
        func argmax(_ v: [Double]) -> Int { v.indices.max { v[$0] < v[$1] || (v[$0] == v[$1] && $0 > $1) } ?? 0 }
        var rows: [Int: CoveringRow] = [:]
        var generalistErrors = 0, combinedErrors = 0, unconverged = 0
        let sets = subsets.map(Set.init)
        for (prediction, y) in zip(predictions, labels) {
            let g = argmax(prediction.generalist) == y, c = argmax(prediction.combined) == y
            if !g { generalistErrors += 1 }
            if !c { combinedErrors += 1 }
            if !prediction.converged { unconverged += 1 }
            let covering = prediction.active.filter { sets[$0].contains(y) }.count
            var row = rows[covering] ?? CoveringRow(covering: covering, examples: 0, generalistCorrect: 0, combinedCorrect: 0)
            row.examples += 1
            if g { row.generalistCorrect += 1 }
            if c { row.combinedCorrect += 1 }
            rows[covering] = row
        }
        self.examples = labels.count
        self.generalistErrors = generalistErrors
        self.combinedErrors = combinedErrors
        self.unconverged = unconverged
        self.byCoveringSpecialists = rows.keys.sorted().map { rows[$0]! }
    }

    enum CodingKeys: String, CodingKey {
        case examples, unconverged
        case generalistErrors = "generalist_errors", combinedErrors = "combined_errors"
        case byCoveringSpecialists = "by_covering_specialists", relativeGain = "relative_gain", errorReduction = "error_reduction"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        examples = try c.decode(Int.self, forKey: .examples)
        unconverged = try c.decode(Int.self, forKey: .unconverged)
        generalistErrors = try c.decode(Int.self, forKey: .generalistErrors)
        combinedErrors = try c.decode(Int.self, forKey: .combinedErrors)
        byCoveringSpecialists = try c.decode([CoveringRow].self, forKey: .byCoveringSpecialists)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(examples, forKey: .examples)
        try c.encode(unconverged, forKey: .unconverged)
        try c.encode(generalistErrors, forKey: .generalistErrors)
        try c.encode(combinedErrors, forKey: .combinedErrors)
        try c.encode(byCoveringSpecialists, forKey: .byCoveringSpecialists)
        try c.encode(relativeGain, forKey: .relativeGain)
        try c.encode(errorReduction, forKey: .errorReduction)
    }

    /// The paper's Table 4 as text.
    public var coveringTable: String {
        var lines = ["covering specialists  test examples  generalist correct  combined correct  delta  relative change"]
        for r in byCoveringSpecialists {
            lines.append(String(format: "%21d  %13d  %18d  %16d  %+5d  %+14.2f%%", r.covering, r.examples, r.generalistCorrect,
                                r.combinedCorrect, r.delta, 100 * r.relativeAccuracyChange))
        }
        return lines.joined(separator: "\n")
    }
}
