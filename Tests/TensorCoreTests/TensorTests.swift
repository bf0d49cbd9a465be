import XCTest
import TensorCore

final class TensorTests: XCTestCase {
    func testCopyOnWrite() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        b[0, 1] = 9
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(b.scalars, [1, 9, 3, 4])
    }

    func testBroadcastingArithmetic() {
        let m = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual((m + Tensor([10, 20, 30])).scalars, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual((m * Tensor(shape: [2, 1], scalars: [2, 3])).scalars, [2, 4, 6, 12, 15, 18])
        XCTAssertEqual((m - Tensor(scalar: 1)).scalars, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual((Tensor(shape: [2, 1], scalars: [1, 2]) + Tensor(shape: [1, 3], scalars: [10, 20, 30])).scalars,
                       [11, 21, 31, 12, 22, 32])
        XCTAssertEqual(broadcastShape([4, 1, 3], [5, 1]), [4, 5, 3])
        XCTAssertNil(broadcastShape([2, 3], [4]))
        // sumToShape is the adjoint of broadcasting.
        XCTAssertEqual(m.sumToShape([3]).scalars, [5, 7, 9])
        XCTAssertEqual(m.sumToShape([2, 1]).scalars, [6, 15])
    }

    func testReductions() {
        let m = Tensor(shape: [2, 3], scalars: [1, 5, 3, 4, 2, 6])
        XCTAssertEqual(m.sum(axis: 0).scalars, [5, 7, 9])
        XCTAssertEqual(m.sum(axis: 1).scalars, [9, 12])
        XCTAssertEqual(m.mean(axis: 1).scalars, [3, 4])
        XCTAssertEqual(m.max(axis: 0).scalars, [4, 5, 6])
        XCTAssertEqual(m.argmax(axis: 1), [1, 2])
        XCTAssertEqual(m.argmax(axis: 0), [1, 0, 1])
        XCTAssertEqual(m.sum(), 21)
        let cube = Tensor(shape: [2, 2, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(cube.sum(axis: 1).scalars, [4, 6, 12, 14])
        XCTAssertEqual(cube.max(axis: -1).scalars, [2, 4, 6, 8])
    }

    func testExpLogTranspose() {
        let x = Tensor([0, 1, 2])
        for (a, b) in zip(x.exp().log().scalars, x.scalars) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).transposed().scalars, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6]).gatherRows([2, 0]).scalars, [5, 6, 1, 2])
    }

    func testReshapeInfersDimension() {
        let t = Tensor(shape: [2, 3, 4], repeating: 1)
        XCTAssertEqual(t.reshaped([2, -1]).shape, [2, 12])
    }
    /// A small size the pool runs short of comes with one spare (so a second buffer of it, live at the same time,
    /// is served from the pool); a large size does not.
    func testPoolKeepsOneSpareOfSmallSizes() {
        let pool = BufferPool.shared
        let small = 1237, large = BufferPool.spareLimit + 1013   // sizes no other test uses
        var before = pool.systemAllocations
        let a = Tensor(shape: [small], repeating: 1)
        XCTAssertEqual(pool.systemAllocations - before, 2, "the buffer and its spare")
        before = pool.systemAllocations
        let b = Tensor(shape: [small], repeating: 2)
        XCTAssertEqual(pool.systemAllocations, before, "the second buffer is the spare")
        before = pool.systemAllocations
        let c = Tensor(shape: [large], repeating: 3)
        let d = Tensor(shape: [large], repeating: 4)
        XCTAssertEqual(pool.systemAllocations - before, 2, "no spare above spareLimit: one allocation each")
        XCTAssertEqual(a.sum() + b.sum(), Float(small * 3))
        XCTAssertEqual(c[flat: 0] + d[flat: 0], 7)
    }
}
