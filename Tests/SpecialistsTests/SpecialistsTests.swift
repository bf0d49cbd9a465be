import Datasets
import Distillation
import Foundation
import NeuralNet
import Specialists
import TensorCore
import XCTest

final class ConfusableClustersTests: XCTestCase {
    let groups = [[0, 1, 2], [3, 4, 5, 6], [7, 8], [9, 10, 11]]

    /// A generalist that confuses classes within planted groups: mass on the label, most of the rest on its group.
    func plantedProbabilities(examples n: Int, seed: UInt64) -> Tensor {
        let c = 12
        var group = [Int](repeating: 0, count: c)
        for (g, members) in groups.enumerated() { for j in members { group[j] = g } }
        var generator = RandomGenerator(seed: seed)
        var values = [Float]()
        for _ in 0..<n {
            let y = generator.next(below: c)
            var row = (0..<c).map { _ in 0.02 * generator.uniform() }
            let mates = groups[group[y]].filter { $0 != y }
            let own = 0.4 + 0.5 * generator.uniform()
            row[y] += own
            for j in mates { row[j] += (1 - own) * generator.uniform() }
            let total = row.reduce(0, +)
            values += row.map { $0 / total }
        }
        return Tensor(shape: [n, c], scalars: values)
    }

    func testCovarianceMatchesTheDefinition() {
        let p = plantedProbabilities(examples: 200, seed: 1)
        let cov = ConfusableClustering.covariance(probabilities: p)
        let n = 200, c = 12
        for a in [0, 3, 11] {
            for b in [0, 5, 11] {
                let ma = (0..<n).map { Double(p[flat: $0 * c + a]) }.reduce(0, +) / Double(n)
                let mb = (0..<n).map { Double(p[flat: $0 * c + b]) }.reduce(0, +) / Double(n)
                let expected = (0..<n).map { (Double(p[flat: $0 * c + a]) - ma) * (Double(p[flat: $0 * c + b]) - mb) }.reduce(0, +) / Double(n)
                XCTAssertEqual(cov[a * c + b], expected, accuracy: 1e-12)
                XCTAssertEqual(cov[a * c + b], cov[b * c + a])
            }
        }
    }

    func testRecoversPlantedGroups() throws {
        for seed: UInt64 in [1, 2, 3] {
            let p = plantedProbabilities(examples: 3000, seed: seed)
            let clusters = try ConfusableClustering.clusters(probabilities: p, clusters: 4, seed: seed, source: "planted")
            XCTAssertEqual(clusters.subsets, groups, "seed \(seed)")
            XCTAssertEqual(clusters.examples, 3000)
        }
    }

    /// A confident generalist: 20 classes, of which 0/1, 2/3 and 4/5 are confused in one example of ten (mass
    /// split evenly), the others never. Correlations between the mates are then small and their columns far apart.
    func confidentProbabilities(examples n: Int, seed: UInt64) -> Tensor {
        let c = 20
        var generator = RandomGenerator(seed: seed)
        var values = [Float]()
        for _ in 0..<n {
            let y = generator.next(below: c)
            var row = (0..<c).map { _ in 0.001 * generator.uniform() }
            if y < 6 && generator.uniform() < 0.1 {
                row[y] += 0.5
                row[y ^ 1] += 0.5
            } else {
                row[y] += 1
            }
            let total = row.reduce(0, +)
            values += row.map { $0 / total }
        }
        return Tensor(shape: [n, c], scalars: values)
    }

    func testConfusionMeasureDefinition() {
        // column 0: others 0.3, -0.2, -0.1 (median -0.1); column 1: 0.3, 0.1, 0.0 (0.1); column 2: -0.2, 0.1, -0.3
        // (-0.2); column 3: -0.1, 0.0, -0.3 (-0.1)
        let r: [Double] = [1, 0.3, -0.2, -0.1,
                           0.3, 1, 0.1, 0.0,
                           -0.2, 0.1, 1, -0.3,
                           -0.1, 0.0, -0.3, 1]
        let m = ConfusableClustering.confusion(fromCorrelation: r, classCount: 4)
        let expected: [Double] = [0.4, 0.2, 0, 0,
                                  0.4, 0.2, 0.3, 0.1,
                                  0, 0, 0.3, 0,
                                  0, 0, 0, 0.1]
        for (x, y) in zip(m, expected) { XCTAssertEqual(x, y, accuracy: 1e-12) }
    }

    /// The confusion measure finds rarely confused pairs of a confident generalist (with as many clusters as there
    /// are groups); the classes confused with nothing gather in one cluster, too large to get a specialist.
    func testConfusionMeasureFindsRarelyConfusedPairs() throws {
        for seed: UInt64 in [1, 2, 3] {
            let p = confidentProbabilities(examples: 4000, seed: seed)
            let clusters = try ConfusableClustering.clusters(probabilities: p, clusters: 4, seed: seed, measure: .confusion,
                                                             source: "confident")
            XCTAssertEqual(clusters.measure, "confusion")
            for pair in [[0, 1], [2, 3], [4, 5]] {
                XCTAssertTrue(clusters.subsets.contains(pair), "seed \(seed): \(pair) not in \(clusters.subsets)")
            }
            XCTAssertEqual(clusters.subsets.count, 3, "seed \(seed): \(clusters.subsets)")
        }
    }

    /// With a subset size, each subset is the classes nearest its centroid: its planted group plus the nearest others.
    func testSubsetSizeGivesOverlappingSubsetsAroundTheGroups() throws {
        let p = plantedProbabilities(examples: 3000, seed: 4)
        let clusters = try ConfusableClustering.clusters(probabilities: p, clusters: 4, subsetSize: 5, seed: 4, source: "planted")
        XCTAssertEqual(clusters.subsets.count, 4)
        for s in clusters.subsets { XCTAssertEqual(s.count, 5) }
        for g in groups { XCTAssertTrue(clusters.subsets.contains { Set(g).isSubset(of: Set($0)) }, "group \(g) in \(clusters.subsets)") }
        XCTAssertThrowsError(try ConfusableClustering.clusters(probabilities: p, clusters: 4, subsetSize: 12, seed: 4, source: "x"))
        XCTAssertThrowsError(try ConfusableClustering.clusters(probabilities: p, clusters: 13, seed: 4, source: "x"))
    }

    func testFileRoundTripAndValidation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clusters-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let clusters = ConfusableClusters(classCount: 5, subsets: [[0, 1], [2, 3, 4]], classNames: ["a", "b", "c", "d", "e"],
                                          examples: 10, source: "test", clusters: 2, subsetSize: nil, seed: 0)
        let url = dir.appendingPathComponent("clusters.json")
        try clusters.write(to: url)
        XCTAssertEqual(try ConfusableClusters.read(url: url), clusters)
        XCTAssertEqual(try String(contentsOf: url.appendingPathExtension("txt"), encoding: .utf8),
                       "specialist 0 (2 classes): a b\nspecialist 1 (3 classes): c d e\n")
        var bad = clusters
        bad.subsets = [[0, 7]]
        try JSONEncoder().encode(bad).write(to: url)
        XCTAssertThrowsError(try ConfusableClusters.read(url: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("class 7"), "\(error)")
        }
        bad.subsets = [[0, 1, 2, 3, 4]]
        XCTAssertThrowsError(try bad.validate(source: "f")) { XCTAssertTrue("\($0)".contains("dustbin"), "\($0)") }
    }
}

final class SpecialistModelTests: XCTestCase {
    func generalist(seed: UInt64, classes: Int = 6) throws -> Sequential {
        var g = RandomGenerator(seed: seed)
        return try ModelDescription(inputShape: [4], specifications: [.linear(inputCount: 4, outputCount: 8), .relu,
                                                                      .linear(inputCount: 8, outputCount: classes)]).build(generator: &g)
    }

    /// The subset's logits are the generalist's; with equal rows for the other classes, the dustbin's probability is
    /// exactly the generalist's total on them.
    func testInitialModelKeepsTheSubsetsLogitsAndTheDustbinMass() throws {
        let model = try generalist(seed: 1)
        let last = model.layers.last as! Linear
        // Make classes 1, 3, 4 (outside the subset {0, 2, 5}) identical so the dustbin init is exact.
        for o in [3, 4] {
            for e in 0..<8 { last.weight.value[flat: o * 8 + e] = last.weight.value[flat: 1 * 8 + e] }
            last.bias.value[flat: o] = last.bias.value[flat: 1]
        }
        let specialist = try Specialist.initialModel(generalist: model, classes: [0, 2, 5])
        var g = RandomGenerator(seed: 2)
        let x = Tensor.normal([5, 4], standardDeviation: 1, generator: &g)
        let zg = model.infer(x), zs = specialist.infer(x)
        XCTAssertEqual(zs.shape, [5, 4])
        let pg = Softmax.softmax(zg), ps = Softmax.softmax(zs)
        for r in 0..<5 {
            for (i, c) in [0, 2, 5].enumerated() { XCTAssertEqual(zs[flat: r * 4 + i], zg[flat: r * 6 + c], accuracy: 1e-5) }
            let others = [1, 3, 4].map { pg[flat: r * 6 + $0] }.reduce(0, +)
            XCTAssertEqual(ps[flat: r * 4 + 3], others, accuracy: 1e-5)
        }
        // The copy is independent of the generalist.
        (specialist.layers[0] as! Linear).weight.value[flat: 0] += 1
        XCTAssertNotEqual((specialist.layers[0] as! Linear).weight.value[flat: 0], (model.layers[0] as! Linear).weight.value[flat: 0])
        XCTAssertThrowsError(try Specialist.initialModel(generalist: model, classes: [0, 1, 2, 3, 4, 5]))
        XCTAssertThrowsError(try Specialist.initialModel(generalist: model, classes: [6]))
    }

    /// Half the training examples come from the subset; the oversampling factor is the change in the subset's odds.
    func testTrainingDataAndDustbinCorrection() throws {
        let labels = (0..<100).map { $0 < 20 ? $0 % 2 : 2 + $0 % 4 }  // 20 in classes {0, 1}, 80 in {2, 3, 4, 5}
        let dataset = try LabeledDataset(inputs: Tensor(shape: [100, 4], repeating: 0), labels: labels, classCount: 6)
        let data = try SpecialistData(training: dataset, classes: [0, 1], seed: 3)
        XCTAssertEqual(data.dataset.count, 40)
        XCTAssertEqual(data.dataset.classCount, 3)
        XCTAssertEqual(data.dataset.labels.filter { $0 == 2 }.count, 20)
        XCTAssertEqual(data.oversampling, 4, accuracy: 1e-12)  // odds 1:1 in training against 20:80
        for (i, e) in data.indices.enumerated() { XCTAssertEqual(data.dataset.labels[i], labels[e] < 2 ? labels[e] : 2) }
        // The other way round: fewer outside than inside takes all of them.
        let few = try SpecialistData(training: dataset, classes: [2, 3, 4, 5], seed: 3)
        XCTAssertEqual(few.dataset.count, 100)
        XCTAssertEqual(few.oversampling, 1, accuracy: 1e-12)
        XCTAssertThrowsError(try SpecialistData(training: dataset.subset(indices: Array(20..<100)), classes: [0, 1], seed: 0))
        // More of the rest: the subset is repeated to match, the odds stay 1:1 and so does the correction.
        let more = try SpecialistData(training: dataset, classes: [0, 1], seed: 3, rest: 50)
        XCTAssertEqual(more.dataset.labels.filter { $0 == 2 }.count, 50)
        XCTAssertEqual(more.dataset.labels.filter { $0 < 2 }.count, 50)
        XCTAssertEqual(more.oversampling, 4, accuracy: 1e-12)
        let counts = Dictionary(grouping: more.indices.filter { $0 < 20 }, by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts.count, 20)                      // every subset example at least once
        XCTAssertTrue(counts.values.allSatisfy { $0 == 2 || $0 == 3 }, "\(counts)")  // 50 = 20 x 2 + 10 drawn
        let all = try SpecialistData(training: dataset, classes: [0, 1], seed: 3, rest: 1_000)
        XCTAssertEqual(all.dataset.labels.filter { $0 == 2 }.count, 80)  // capped at the 80 others
        // The correction raises the dustbin logit only.
        let model = try generalist(seed: 4, classes: 6)
        let s = Specialist(classes: [0, 1], classCount: 6, model: try Specialist.initialModel(generalist: model, classes: [0, 1]),
                           dustbinCorrection: Float(Foundation.log(data.oversampling)))
        let x = Tensor(shape: [1, 4], repeating: 0.5)
        let raw = s.model.infer(x), corrected = s.logits(x)
        XCTAssertEqual(corrected[flat: 0], raw[flat: 0])
        XCTAssertEqual(corrected[flat: 2], raw[flat: 2] + Float(Foundation.log(4.0)), accuracy: 1e-6)
        XCTAssertEqual(s.outputOfClass, [0, 1, 2, 2, 2, 2])
    }

    func testSubsetTeacherProjectsOntoTheSubsetAndDustbin() throws {
        let model = try generalist(seed: 5)
        let base = ModelTeacher(model: model)
        let teacher = SubsetTeacher(base: base, classes: [1, 4])
        var g = RandomGenerator(seed: 6)
        let x = Tensor.normal([3, 4], standardDeviation: 1, generator: &g)
        let full = try base.softTargets(batch: x, indices: [0, 1, 2], temperature: 3)
        let projected = try teacher.softTargets(batch: x, indices: [0, 1, 2], temperature: 3)
        XCTAssertEqual(projected.shape, [3, 3])
        for r in 0..<3 {
            XCTAssertEqual(projected[flat: r * 3], full[flat: r * 6 + 1], accuracy: 1e-6)
            XCTAssertEqual(projected[flat: r * 3 + 1], full[flat: r * 6 + 4], accuracy: 1e-6)
            XCTAssertEqual(projected[flat: r * 3 + 2], [0, 2, 3, 5].map { full[flat: r * 6 + $0] }.reduce(0, +), accuracy: 1e-6)
        }
        let logits = try teacher.logits(batch: x, indices: [0, 1, 2])
        let back = Softmax.softmax(logits)
        let t1 = try teacher.softTargets(batch: x, indices: [0, 1, 2], temperature: 1)
        for i in 0..<9 { XCTAssertEqual(back[flat: i], t1[flat: i], accuracy: 1e-6) }
        XCTAssertEqual(teacher.classCount, 3)
        XCTAssertNotEqual(teacher.identity, base.identity)
    }
}

final class CombinationTests: XCTestCase {
    /// An independent solver: EM for the same maximum-likelihood problem (the dustbin is a coarse observation of the
    /// classes outside the subset): E-step spreads each dustbin mass over those classes in proportion to q, M-step
    /// sets q to the expected counts over W.
    func emSolve(_ p: [Double], _ opinions: [SpecialistOpinion], iterations: Int = 200_000, from start: [Double]? = nil) -> [Double] {
        let c = p.count, w = Double(1 + opinions.count)
        var q = start ?? [Double](repeating: 1 / Double(c), count: c)
        for _ in 0..<iterations {
            var counts = p
            for o in opinions {
                let inside = Set(o.classes)
                for (i, cls) in o.classes.enumerated() { counts[cls] += o.probabilities[i] }
                let outside = (0..<c).filter { !inside.contains($0) }
                let mass = outside.map { q[$0] }.reduce(0, +)
                for j in outside { counts[j] += o.probabilities[o.classes.count] * q[j] / mass }
            }
            let next = counts.map { $0 / w }
            let change = zip(next, q).map { abs($0 - $1) }.max()!
            q = next
            if change < 1e-15 { break }
        }
        return q
    }

    func randomDistribution(_ n: Int, _ g: inout RandomGenerator, sharpness: Float = 2) -> [Double] {
        let e = (0..<n).map { _ in Double(Foundation.exp(sharpness * g.normal())) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func testMatchesAnIndependentSolverOnSmallCases() {
        var g = RandomGenerator(seed: 1)
        let solver = CombinationSolver(tolerance: 1e-12, maxIterations: 100_000)
        for trial in 0..<30 {
            let c = 3 + g.next(below: 10)
            let p = randomDistribution(c, &g)
            let count = 1 + g.next(below: 3)
            let opinions = (0..<count).map { _ -> SpecialistOpinion in
                let m = 1 + g.next(below: c - 1)
                let classes = Array(g.permutation(c).prefix(m)).sorted()
                return SpecialistOpinion(classes: classes, probabilities: randomDistribution(m + 1, &g, sharpness: 3))
            }
            let solution = solver.solve(generalist: p, opinions: opinions)
            XCTAssertTrue(solution.converged, "trial \(trial): gradient \(solution.gradient) after \(solution.iterations)")
            let reference = emSolve(p, opinions)
            for j in 0..<c { XCTAssertEqual(solution.probabilities[j], reference[j], accuracy: 1e-7, "trial \(trial) class \(j)") }
            XCTAssertEqual(solution.probabilities.reduce(0, +), 1, accuracy: 1e-12)
            // The optimum's objective is below the generalist's and the EM answer's (up to rounding).
            let atReference = CombinationSolver.objective(logits: reference.map { Foundation.log($0) }, generalist: p, opinions: opinions)
            XCTAssertLessThanOrEqual(solution.objective, atReference + 1e-10)
        }
    }

    /// C = 3, one specialist for class 0: a grid over the simplex finds the same minimum.
    func testMatchesAGridSearch() {
        let p = [0.5, 0.3, 0.2]
        let opinion = SpecialistOpinion(classes: [0], probabilities: [0.8, 0.2])
        let solution = CombinationSolver().solve(generalist: p, opinions: [opinion])
        var best = (f: Double.infinity, q: [0.0, 0, 0])
        let steps = 2000
        for a in 1..<steps {
            for b in 1..<(steps - a) {
                let q = [Double(a) / Double(steps), Double(b) / Double(steps), Double(steps - a - b) / Double(steps)]
                let f = CombinationSolver.objective(logits: q.map { Foundation.log($0) }, generalist: p, opinions: [opinion])
                if f < best.f { best = (f, q) }
            }
        }
        for j in 0..<3 { XCTAssertEqual(solution.probabilities[j], best.q[j], accuracy: 1e-3) }
        // Closed form here: q_0 = (0.5 + 0.8) / 2; the rest keeps the generalist's 3:2 ratio.
        XCTAssertEqual(solution.probabilities[0], 0.65, accuracy: 1e-9)
        XCTAssertEqual(solution.probabilities[1], 0.35 * 0.6, accuracy: 1e-9)
    }

    /// Distributions computed in float sum to 1 only to ~1e-7; the solver must still converge (a regression: the
    /// mismatch left a gradient along the constant direction of the logits that no step removes), and fast.
    func testConvergesOnFloatRoundedConfidentDistributions() {
        var g = RandomGenerator(seed: 3)
        func floatDistribution(_ n: Int, _ sharpness: Float) -> [Double] {
            let e = (0..<n).map { _ in sharpness * g.normal() }
            let m = e.max()!
            let x = e.map { Foundation.exp($0 - m) }
            let t = x.reduce(0, +)
            return x.map { Double($0 / t) }
        }
        var iterations: [Int] = []
        for trial in 0..<200 {
            let p = floatDistribution(10, 8)
            let opinions = [SpecialistOpinion(classes: [2, 5, 8], probabilities: floatDistribution(4, 8)),
                            SpecialistOpinion(classes: [1, 5, 8], probabilities: floatDistribution(4, 8))]
            let solution = CombinationSolver().solve(generalist: p, opinions: opinions)
            XCTAssertTrue(solution.converged, "trial \(trial): gradient \(solution.gradient) after \(solution.iterations)")
            iterations.append(solution.iterations)
            func normalised(_ v: [Double]) -> [Double] { v.map { $0 / v.reduce(0, +) } }
            let reference = emSolve(normalised(p), opinions.map { SpecialistOpinion(classes: $0.classes, probabilities: normalised($0.probabilities)) })
            // EM can crawl on such inputs, so the solution is checked two ways: its objective is at least as low as
            // EM's end point, and it is a fixed point of EM's update (the optimality condition).
            let normalisedOpinions = opinions.map { SpecialistOpinion(classes: $0.classes, probabilities: normalised($0.probabilities)) }
            let atReference = CombinationSolver.objective(logits: reference.map { Foundation.log($0) }, generalist: normalised(p), opinions: normalisedOpinions)
            XCTAssertLessThanOrEqual(solution.objective, atReference + 1e-11, "trial \(trial)")
            let step = emSolve(normalised(p), normalisedOpinions, iterations: 1, from: solution.probabilities)
            XCTAssertLessThan(zip(step, solution.probabilities).map { abs($0 - $1) }.max()!, 1e-10, "trial \(trial)")
        }
        XCTAssertLessThanOrEqual(iterations.sorted()[iterations.count / 2], 20)
    }

    func testNoSpecialistGivesTheGeneralist() {
        let p = [0.7, 0.2, 0.1]
        let solution = CombinationSolver().solve(generalist: p, opinions: [])
        for j in 0..<3 { XCTAssertEqual(solution.probabilities[j], p[j], accuracy: 1e-12) }
        XCTAssertEqual(solution.iterations, 0)
    }

    func testEvaluationCountsByCoveringSpecialists() {
        typealias P = SpecialistSystem.Prediction
        let predictions = [
            P(generalist: [0.6, 0.4, 0], combined: [0.3, 0.7, 0], active: [0, 1], converged: true, iterations: 3),  // y=1, both cover: fixed
            P(generalist: [0.6, 0.4, 0], combined: [0.6, 0.4, 0], active: [0], converged: true, iterations: 3),     // y=0, one covers
            P(generalist: [0.2, 0.1, 0.7], combined: [0.2, 0.1, 0.7], active: [], converged: true, iterations: 0),  // y=0, none: wrong
            P(generalist: [0.1, 0.8, 0.1], combined: [0.6, 0.3, 0.1], active: [1], converged: false, iterations: 9), // y=1, covers: broken
        ]
        let e = SpecialistEvaluation(predictions: predictions, labels: [1, 0, 0, 1], subsets: [[0, 1], [1, 2]])
        XCTAssertEqual(e.generalistErrors, 2)
        XCTAssertEqual(e.combinedErrors, 2)
        XCTAssertEqual(e.unconverged, 1)
        XCTAssertEqual(e.byCoveringSpecialists.map(\.covering), [0, 1, 2])
        XCTAssertEqual(e.byCoveringSpecialists.map(\.examples), [1, 2, 1])
        XCTAssertEqual(e.byCoveringSpecialists.map(\.delta), [0, -1, 1])
        XCTAssertEqual(e.coveredGeneralistErrors, 1)
        XCTAssertEqual(e.coveredCombinedErrors, 1)
        let json = try! JSONSerialization.jsonObject(with: JSONEncoder().encode(e)) as! [String: Any]
        for key in ["generalist_errors", "combined_errors", "relative_gain", "by_covering_specialists"] { XCTAssertNotNil(json[key], key) }
    }
}
