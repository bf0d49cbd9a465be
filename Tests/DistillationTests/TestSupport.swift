import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

/// Random logits `[rows, cols]`, standard normal times `scale`.
func randomLogits(_ rows: Int, _ cols: Int, scale: Float = 2, seed: UInt64) -> Tensor {
    var g = RandomGenerator(seed: seed)
    return Tensor.normal([rows, cols], standardDeviation: scale, generator: &g)
}

/// Random labels in `0..<classes`.
func randomLabels(_ count: Int, classes: Int, seed: UInt64) -> [Int] {
    var g = RandomGenerator(seed: seed)
    return (0..<count).map { _ in g.next(below: classes) }
}

/// Row-wise softmax(z / T) in Double.
func softmaxRows(_ z: Tensor, temperature: Double = 1) -> [[Double]] {
    let rows = z.shape[0], cols = z.shape[1]
    let s = z.scalars
    return (0..<rows).map { r in
        let row = (0..<cols).map { Double(s[r * cols + $0]) / temperature }
        let m = row.max()!
        let e = row.map { Foundation.exp($0 - m) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }
}

/// Central differences of `f` at `x`: d f / d x_i ≈ (f(x + h e_i) - f(x - h e_i)) / (actual step).
func numericalGradient(_ x: Tensor, h: Float = 1e-2, _ f: (Tensor) -> Double) -> [Double] {
    (0..<x.count).map { i in
        var plus = x, minus = x
        plus[flat: i] = x[flat: i] + h
        minus[flat: i] = x[flat: i] - h
        return (f(plus) - f(minus)) / Double(plus[flat: i] - minus[flat: i])
    }
}

/// Asserts `actual` ≈ `expected` elementwise within `absolute + relative * |expected|`; returns the max difference.
@discardableResult
func assertClose(_ actual: [Double], _ expected: [Double], absolute: Double, relative: Double = 0,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(actual.count, expected.count, "count " + message, file: file, line: line)
    var maxDiff = 0.0
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let d = abs(a - e)
        maxDiff = max(maxDiff, d)
        if !(d <= absolute + relative * abs(e)) {
            XCTFail("\(message) element \(i): \(a) vs expected \(e) (diff \(d))", file: file, line: line)
            break
        }
    }
    return maxDiff
}

/// A teacher returning fixed logits per example index (for ensemble and lookup tests).
final class FixedTeacher: Teacher {
    let table: Tensor
    let identity: String
    var classCount: Int { table.shape[1] }
    init(_ table: Tensor, identity: String) { self.table = table; self.identity = identity }
    func logits(batch images: Tensor, indices: [Int]) throws -> Tensor { table.gatherRows(indices) }
    func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        Softmax.softmax(table.gatherRows(indices), temperature: temperature)
    }
}

/// `n` examples whose image i is the one-hot vector e_i (so a one-layer teacher's logits for example i are column
/// i of its weight matrix plus the bias: each example gets its own, distinguishable teacher row).
func oneHotDataset(count n: Int, classes: Int, seed: UInt64) throws -> LabeledDataset {
    let images = Tensor(shape: [n, n]) { out in
        for i in 0..<out.count { out[i] = 0 }
        for i in 0..<n { out[i * n + i] = 1 }
    }
    return try LabeledDataset(inputs: images, labels: randomLabels(n, classes: classes, seed: seed), classCount: classes)
}

/// A one-layer model `[n] -> [classes]` with random weights.
func oneLayerModel(inputs: Int, classes: Int, seed: UInt64) -> Sequential {
    var g = RandomGenerator(seed: seed)
    return Sequential([Linear(weight: Tensor.normal([classes, inputs], generator: &g), bias: Tensor.normal([classes], generator: &g))])
}

/// A fresh temporary directory, removed by the test case's teardown block.
func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("distill-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// The error's one-line description, or nil when `body` does not throw.
func thrownMessage(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return "\(error)" }
}
