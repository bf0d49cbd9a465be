import XCTest
import Foundation
import TensorCore

/// The inference kernels: the sparse product on packed weights (`SparseKernels.PackedWeights`) against the sparse
/// reference bit for bit, and oneDNN's sgemm (`OneDNNGEMM`) against the BLAS product.
final class PackedWeightsTests: XCTestCase {
    func input(rows: Int, cols: Int, density: Float, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(shape: [rows, cols]) { out in
            for i in 0..<out.count { out[i] = rng.uniform() < density ? 2 * rng.uniform() - 1 : 0 }
        }
    }

    func bits(_ t: Tensor) -> [UInt32] { (0..<t.count).map { t[flat: $0].bitPattern } }

    /// Unit counts around the 64-unit blocks and the AVX2 path's 32-unit halves, widths not multiples of 16, one row
    /// to more than one round of rows, densities from pixels to dense, NaN and infinity among the inputs: every
    /// vector path and the portable one equal `naiveLinearForward` bit for bit on 1 and 2 threads.
    func testPackedForwardMatchesReferenceBitForBit() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        for (rows, cols, units) in [(1, 784, 800), (3, 70, 45), (300, 37, 130), (7, 13, 64), (2, 100, 65), (1, 5, 1),
                                    (260, 16, 96)] {
            for density: Float in [0.2, 0.6, 1] {
                var x = input(rows: rows, cols: cols, density: density, seed: UInt64(rows * cols + units))
                if rows > 1 && cols > 3 {
                    x[flat: cols + 1] = .nan
                    x[flat: cols + 2] = .infinity
                }
                var rng = RandomGenerator(seed: UInt64(units))
                let w = Tensor.normal([units, cols], generator: &rng), b = Tensor.normal([units], generator: &rng)
                let packed = SparseKernels.PackedWeights(w)
                XCTAssertEqual(bits(packed.unpacked()), bits(w))
                for (bias, relu) in [(b as Tensor?, true), (nil, false)] {
                    let chained = bits(SparseKernels.naiveLinearForward(x, weight: w, bias: bias, relu: relu))
                    let grouped = bits(SparseKernels.PackedWeights.naiveGroupedForward(x, weight: w, bias: bias, relu: relu))
                    for path in SparseKernels.availablePaths {
                        for threads in [1, 2] {
                            ComputeThreads.set(threads)
                            let label = "\(rows)x\(cols)->\(units) density \(density) path \(path) threads \(threads) relu \(relu)"
                            SparseKernels.withPathLimit(path) {
                                let y = packed.chainedForward(x, bias: bias, relu: relu, threads: threads)
                                XCTAssertEqual(y.shape, [rows, units])
                                XCTAssertEqual(bits(y), chained, "chained " + label)
                                XCTAssertEqual(bits(packed.groupedForward(x, bias: bias, relu: relu, threads: threads)), grouped,
                                               "grouped " + label)
                                XCTAssertEqual(bits(packed.forward(x, bias: bias, relu: relu, threads: threads)),
                                               SparseKernels.PackedWeights.groupsRows ? grouped : chained, label)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The grouped product gives an example the same bits whatever batch it comes in (alone, or in a batch at any
    /// offset within its group of 6).
    func testGroupedResultDoesNotDependOnTheBatch() {
        var rng = RandomGenerator(seed: 11)
        let w = Tensor.normal([70, 50], generator: &rng), b = Tensor.normal([70], generator: &rng)
        let packed = SparseKernels.PackedWeights(w)
        let x = input(rows: 20, cols: 50, density: 0.3, seed: 12)
        let all = packed.groupedForward(x, bias: b, relu: false, threads: 2)
        for r in [0, 5, 7, 19] {
            let one = packed.groupedForward(x.rows(r..<(r + 1)), bias: b, relu: false, threads: 1)
            XCTAssertEqual(bits(one), bits(all.rows(r..<(r + 1))), "row \(r)")
        }
    }

    /// The packed weights are a copy: changing the source afterwards does not change the product.
    func testPackedWeightsAreACopy() {
        var rng = RandomGenerator(seed: 3)
        var w = Tensor.normal([20, 30], generator: &rng)
        let packed = SparseKernels.PackedWeights(w)
        let x = input(rows: 4, cols: 30, density: 0.5, seed: 4)
        let before = bits(packed.forward(x, bias: nil, relu: false, threads: 1))
        w[flat: 0] += 1
        XCTAssertEqual(bits(packed.forward(x, bias: nil, relu: false, threads: 1)), before)
    }

    /// oneDNN's sgemm with bias and ReLU equals the reference product up to the order of the sums (relative 1e-5 of the
    /// largest value), for row counts that split unevenly over the threads and a 10-unit output layer.
    func testOneDNNGEMMMatchesReference() throws {
        guard OneDNNGEMM.isAvailable else { throw XCTSkip("oneDNN (libdnnl.so.2) is not installed") }
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        for (rows, cols, units) in [(200, 800, 300), (37, 784, 10), (15, 33, 70), (1, 5, 3)] {
            var rng = RandomGenerator(seed: UInt64(rows))
            let x = input(rows: rows, cols: cols, density: 1, seed: 9)
            let w = Tensor.normal([units, cols], generator: &rng), b = Tensor.normal([units], generator: &rng)
            for relu in [false, true] {
                for threads in [1, 2] {
                    ComputeThreads.set(threads)
                    let y = try XCTUnwrap(OneDNNGEMM.linearForward(x, weight: w, bias: b, relu: relu, threads: threads))
                    let reference = SparseKernels.naiveLinearForward(x, weight: w, bias: b, relu: relu)
                    let scale = max(1e-6, reference.scalars.map(abs).max() ?? 0)
                    let worst = zip(y.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThan(worst / scale, 1e-5, "\(rows)x\(cols)->\(units) relu \(relu) threads \(threads)")
                }
            }
        }
    }
}
