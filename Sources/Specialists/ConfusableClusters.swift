import Foundation
import TensorCore

/// Groups of classes a generalist confuses, as the paper finds them (section 5.2): the covariance matrix of the
/// generalist's predicted probabilities over a set of examples, and an online K-means on its columns (best of
/// several seeded starts). Classes that the generalist tends to predict together have similar columns and land in
/// the same cluster. By default the covariance is scaled to correlations first (see
/// ``ConfusableClustering/Measure``).
///
/// Each cluster becomes one specialist's subset. With a `subsetSize`, a cluster smaller than that grows to it with
/// the classes whose covariance with its members is largest on average (the classes the generalist confuses with
/// them), so subsets overlap; without it the subsets partition the classes the clustering kept.
public struct ConfusableClusters: Codable, Equatable, Sendable {
    /// C, the generalist's classes.
    public var classCount: Int
    /// One sorted list of class indices per specialist.
    public var subsets: [[Int]]
    /// The class names (index order), when the data has them.
    public var classNames: [String]?
    /// How many examples the covariance was measured on, and what they were.
    public var examples: Int
    public var source: String
    /// The clustering's settings.
    public var clusters: Int
    public var subsetSize: Int?
    public var seed: UInt64
    /// The matrix whose columns were clustered: `covariance` or `correlation` (see ``ConfusableClustering/Measure``).
    public var measure: String?

    enum CodingKeys: String, CodingKey {
        case classCount = "class_count", subsets, classNames = "class_names", examples, source, clusters
        case subsetSize = "subset_size", seed, measure
    }

    public init(classCount: Int, subsets: [[Int]], classNames: [String]? = nil, examples: Int, source: String,
                clusters: Int, subsetSize: Int?, seed: UInt64) {
        self.classCount = classCount
        self.subsets = subsets
        self.classNames = classNames
        self.examples = examples
        self.source = source
        self.clusters = clusters
        self.subsetSize = subsetSize
        self.seed = seed
    }

    /// The name of class `j` (its index when the data has no names).
    public func name(_ j: Int) -> String { classNames.flatMap { j < $0.count ? $0[j] : nil } ?? String(j) }

    /// One line per specialist: `specialist 2 (4 classes): 3 5 8 9`.
    public var text: String {
        subsets.enumerated().map { k, s in
            "specialist \(k) (\(s.count) classes): " + s.map(name).joined(separator: " ")
        }.joined(separator: "\n")
    }

    /// Checks a decoded or hand-written file: subsets non-empty, classes in range and distinct within a subset.
    /// - Throws: ``SpecialistError`` naming `source` and the subset.
    public func validate(source file: String) throws {
        guard classCount >= 2 else { throw SpecialistError("\(file): class_count must be at least 2, got \(classCount)") }
        guard !subsets.isEmpty else { throw SpecialistError("\(file): no subsets") }
        for (k, s) in subsets.enumerated() {
            guard !s.isEmpty else { throw SpecialistError("\(file): subset \(k) is empty") }
            guard s.count < classCount else {
                throw SpecialistError("\(file): subset \(k) holds all \(classCount) classes; a specialist needs classes outside it for its dustbin")
            }
            if let bad = s.first(where: { $0 < 0 || $0 >= classCount }) {
                throw SpecialistError("\(file): subset \(k) holds class \(bad), out of range 0..<\(classCount)")
            }
            guard Set(s).count == s.count else { throw SpecialistError("\(file): subset \(k) repeats a class") }
        }
    }

    /// Writes the clusters as JSON (sorted keys) beside a text file of the same name + `.txt`.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try encoder.encode(self).write(to: url, options: .atomic)
            try Data((text + "\n").utf8).write(to: url.appendingPathExtension("txt"), options: .atomic)
        } catch {
            throw SpecialistError("\(url.path): cannot write the clusters (\(error.localizedDescription))")
        }
    }

    /// Reads and validates a clusters file.
    public static func read(url: URL) throws -> ConfusableClusters {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw SpecialistError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        let clusters: ConfusableClusters
        do { clusters = try JSONDecoder().decode(ConfusableClusters.self, from: data) } catch {
            throw SpecialistError("\(url.path): not a clusters file (\(error.localizedDescription))")
        }
        try clusters.validate(source: url.path)
        return clusters
    }
}

/// The clustering itself, in Double.
public enum ConfusableClustering {
    /// The covariance matrix (C x C, row-major) of the rows of `probabilities` `[N, C]`:
    /// cov[a][b] = mean_n (p_na - mean_a)(p_nb - mean_b).
    public static func covariance(probabilities: Tensor) -> [Double] {
        precondition(probabilities.rank == 2 && probabilities.shape[0] > 0, "covariance: need [N, C] probabilities, got \(probabilities.shape)")
        let n = probabilities.shape[0], c = probabilities.shape[1]
        var mean = [Double](repeating: 0, count: c)
        var cov = [Double](repeating: 0, count: c * c)
        probabilities.withUnsafeBufferPointer { p in
            for r in 0..<n { for j in 0..<c { mean[j] += Double(p[r * c + j]) } }
            for j in 0..<c { mean[j] /= Double(n) }
            var centred = [Double](repeating: 0, count: c)
            for r in 0..<n {
                for j in 0..<c { centred[j] = Double(p[r * c + j]) - mean[j] }
                for a in 0..<c where centred[a] != 0 {
                    let x = centred[a]
                    for b in a..<c { cov[a * c + b] += x * centred[b] }
                }
            }
        }
        for a in 0..<c {
            for b in a..<c {
                cov[a * c + b] /= Double(n)
                cov[b * c + a] = cov[a * c + b]
            }
        }
        return cov
    }

    /// What the columns hold.
    public enum Measure: String, Codable, Sendable, CaseIterable {
        /// The covariance itself, as the paper writes.
        case covariance
        /// The covariance scaled to correlations (each class's own variance 1). A class's column in the covariance
        /// is dominated by its own variance, so K-means on raw columns groups classes by how sure the generalist
        /// is of them rather than by what it confuses them with (on the printed characters, one cluster of 53 of
        /// the 62 classes); correlations put every class on the same scale.
        case correlation
        /// Each column's correlations above its median off-diagonal one (classes are mutually exclusive, so any two
        /// correlate slightly negatively; this baseline is removed), negative values set to 0, and the class's own
        /// entry replaced by the largest of the others. Two classes confused mostly with each other then have
        /// nearly equal columns, (r, r) where correlations give (1, r) and (r, 1), which K-means can group even
        /// when r is small, as it is for a strong generalist; classes confused with nothing have short columns and
        /// gather near the origin (a cluster that is dropped when it holds more than half the classes). Not in
        /// the paper.
        case confusion
    }

    /// The ``Measure/confusion`` matrix from a correlation matrix (C x C, symmetric).
    public static func confusion(fromCorrelation r: [Double], classCount c: Int) -> [Double] {
        var m = [Double](repeating: 0, count: c * c)
        for a in 0..<c {
            let others = (0..<c).filter { $0 != a }.map { r[$0 * c + a] }.sorted()
            let base = others.isEmpty ? 0 : (others.count % 2 == 1 ? others[others.count / 2]
                                                                     : (others[others.count / 2 - 1] + others[others.count / 2]) / 2)
            var largest = 0.0
            for b in 0..<c where b != a {
                m[b * c + a] = Swift.max(0, r[b * c + a] - base)
                largest = Swift.max(largest, m[b * c + a])
            }
            m[a * c + a] = largest
        }
        return m
    }

    /// cov[a][b] / sqrt(cov[a][a] cov[b][b]) (0 where a variance is 0).
    public static func correlation(fromCovariance cov: [Double], classCount c: Int) -> [Double] {
        let scale = (0..<c).map { cov[$0 * c + $0] > 0 ? 1 / cov[$0 * c + $0].squareRoot() : 0 }
        var r = cov
        for a in 0..<c { for b in 0..<c { r[a * c + b] = cov[a * c + b] * scale[a] * scale[b] } }
        return r
    }

    /// Online K-means (MacQueen) on the C columns of `covariance`: centroids start at k-means++ picks, then `passes`
    /// passes visit the columns in a random order, each moving its nearest centroid towards it by 1 / (the
    /// centroid's count); a final pass assigns every column to its nearest centroid. K-means depends on its start, so
    /// `restarts` seeded runs are made and the one with the smallest within-cluster sum of squares is kept. Returns,
    /// per non-empty cluster, its member classes (sorted; clusters ordered by their smallest class) and centroid.
    public static func onlineKMeans(columnsOf covariance: [Double], classCount c: Int, clusters k: Int, seed: UInt64,
                                    passes: Int = 50, restarts: Int = 10) -> (members: [[Int]], centroids: [[Double]]) {
        precondition(covariance.count == c * c && k >= 1 && k <= c && restarts >= 1, "onlineKMeans: \(k) clusters of \(c) columns")
        let columns = (0..<c).map { j in (0..<c).map { covariance[$0 * c + j] } }
        var best: (sse: Double, members: [[Int]], centroids: [[Double]])? = nil
        for restart in 0..<restarts {
            var generator = RandomGenerator(seed: seed &* 1_000_003 &+ UInt64(restart))
            let (members, centroids) = kMeansRun(columns, k: k, passes: passes, generator: &generator)
            var sse = 0.0
            for (i, m) in members.enumerated() { for j in m { sse += squaredDistance(columns[j], centroids[i]) } }
            if best == nil || sse < best!.sse { best = (sse, members, centroids) }
        }
        return (best!.members, best!.centroids)
    }

    static func squaredDistance(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in 0..<a.count { let d = a[i] - b[i]; s += d * d }
        return s
    }

    static func kMeansRun(_ columns: [[Double]], k: Int, passes: Int, generator: inout RandomGenerator)
        -> (members: [[Int]], centroids: [[Double]]) {
        let c = columns.count
        // k-means++: the first pick uniform, each next one with probability proportional to its squared distance.
        var centroids = [columns[generator.next(below: c)]]
        while centroids.count < k {
            let d = columns.map { col in centroids.map { squaredDistance(col, $0) }.min()! }
            let total = d.reduce(0, +)
            var pick = generator.next(below: c)
            if total > 0 {
                var u = generator.uniformDouble() * total
                for (j, dj) in d.enumerated() where dj > 0 { pick = j; u -= dj; if u < 0 { break } }
            }
            centroids.append(columns[pick])
        }
        var counts = [Double](repeating: 1, count: k)
        func nearest(_ col: [Double]) -> Int {
            var best = 0, bestDistance = Double.infinity
            for (i, centroid) in centroids.enumerated() {
                let d = squaredDistance(col, centroid)
                if d < bestDistance { best = i; bestDistance = d }
            }
            return best
        }
        for _ in 0..<passes {
            for j in generator.permutation(c) {
                let i = nearest(columns[j])
                counts[i] += 1
                let rate = 1 / counts[i]
                for e in 0..<c { centroids[i][e] += rate * (columns[j][e] - centroids[i][e]) }
            }
        }
        var members = [[Int]](repeating: [], count: k)
        for j in 0..<c { members[nearest(columns[j])].append(j) }
        let kept = (0..<k).filter { !members[$0].isEmpty }.sorted { members[$0][0] < members[$1][0] }
        return (kept.map { members[$0] }, kept.map { centroids[$0] })
    }

    /// Confusable subsets from a generalist's probabilities `[N, C]` (see ``ConfusableClusters``). Clusters of a
    /// single class are dropped (a specialist for one class has nothing to tell apart), as are clusters of more
    /// than half the classes.
    public static func clusters(probabilities: Tensor, clusters k: Int, subsetSize: Int? = nil, seed: UInt64,
                                measure: Measure = .correlation, classNames: [String]? = nil,
                                source: String) throws -> ConfusableClusters {
        let c = probabilities.shape[1]
        guard k >= 1 && k <= c else { throw SpecialistError("the number of clusters must be in 1...\(c) (the classes), got \(k)") }
        if let size = subsetSize, !(2..<c).contains(size) {
            throw SpecialistError("the subset size must be in 2...\(c - 1) (fewer than the \(c) classes), got \(size)")
        }
        var cov = covariance(probabilities: probabilities)
        switch measure {
        case .covariance: break
        case .correlation: cov = correlation(fromCovariance: cov, classCount: c)
        case .confusion: cov = confusion(fromCorrelation: correlation(fromCovariance: cov, classCount: c), classCount: c)
        }
        let (members, _) = onlineKMeans(columnsOf: cov, classCount: c, clusters: k, seed: seed)
        var subsets: [[Int]]
        if let size = subsetSize {
            // Grow each cluster to `size` with the classes that covary most with its members (on average): the
            // classes the generalist confuses with them.
            subsets = members.map { m in
                guard m.count < size else { return m }
                let inside = Set(m)
                let affinity = (0..<c).map { j in m.reduce(0.0) { $0 + cov[$1 * c + j] } / Double(m.count) }
                let extra = (0..<c).filter { !inside.contains($0) }
                    .sorted { affinity[$0] > affinity[$1] || (affinity[$0] == affinity[$1] && $0 < $1) }.prefix(size - m.count)
                return (m + extra).sorted()
            }
        } else {
            subsets = members
        }
        // A cluster of more than half the classes gathers the classes the generalist confuses with nothing in
        // particular (their columns are all near the centre): it would be a second generalist, not a specialist.
        subsets = subsets.filter { $0.count >= 2 && $0.count <= c / 2 }
        // Equal subsets (possible with a subset size) would be the same specialist twice.
        var seen = Set<[Int]>()
        subsets = subsets.filter { seen.insert($0).inserted }
        guard !subsets.isEmpty else {
            throw SpecialistError("the clustering found no subset of 2 to \(c - 1) classes; try more clusters or a subset size")
        }
        var result = ConfusableClusters(classCount: c, subsets: subsets, classNames: classNames, examples: probabilities.shape[0],
                                        source: source, clusters: k, subsetSize: subsetSize, seed: seed)
        result.measure = measure.rawValue
        return result
    }
}

/// A problem with specialists' settings, files or models; `message` names the file or setting.
public struct SpecialistError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
