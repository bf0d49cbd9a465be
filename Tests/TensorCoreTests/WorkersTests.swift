import Foundation
import XCTest
import TensorCore

/// `ComputeThreads.onWorkers`: every part runs exactly once per call, at the same time as the others, with the
/// helpers spinning between calls or sleeping (the condition-variable path).
final class WorkersTests: XCTestCase {
    func testEveryPartRunsOnceAcrossManyCalls() {
        for spin in [200, 0] {
            ComputeThreads.setWorkerSpin(microseconds: spin)
            for parts in [1, 2, 3, 5, 2] {
                let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: parts * 500)
                counts.initialize(repeating: 0)
                defer { counts.deallocate() }
                for call in 0..<500 {
                    ComputeThreads.onWorkers(parts: parts) { p in counts[call * parts + p] += 1 }
                }
                XCTAssertTrue(counts.allSatisfy { $0 == 1 }, "parts \(parts), spin \(spin)")
            }
        }
        ComputeThreads.setWorkerSpin(microseconds: 200)
    }

    /// Parts really run concurrently: part 0 waits (at most 2 s) for part 1's signal, which a serial loop running
    /// part 0 first could never receive.
    func testPartsRunConcurrently() {
        var received = 0
        for _ in 0..<20 {
            let signal = DispatchSemaphore(value: 0)
            ComputeThreads.onWorkers(parts: 2) { p in
                if p == 1 { signal.signal() } else if signal.wait(timeout: .now() + 2) == .success { received += 1 }
            }
        }
        XCTAssertEqual(received, 20)
    }

    /// A part that starts another task does not deadlock: the inner task runs on that thread, every part once.
    func testNestedCallsRunInline() {
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 6)
        counts.initialize(repeating: 0)
        defer { counts.deallocate() }
        ComputeThreads.onWorkers(parts: 2) { outer in
            ComputeThreads.onWorkers(parts: 3) { inner in counts[outer * 3 + inner] += 1 }
        }
        XCTAssertEqual(Array(counts), [1, 1, 1, 1, 1, 1])
    }

    func testGEMVMatchesNaiveReference() {
        var g = RandomGenerator(seed: 5)
        for (m, n, lda) in [(1, 1, 1), (7, 13, 13), (400, 784, 784), (5, 3, 8)] {
            let a = Tensor.normal([m * lda], generator: &g), x = Tensor.normal([n], generator: &g)
            var fast = [Float](repeating: .nan, count: m), slow = [Float](repeating: .nan, count: m)
            a.withUnsafeBufferPointer { ab in
                x.withUnsafeBufferPointer { xb in
                    GEMM.sgemv(m: m, n: n, a: ab.baseAddress!, lda: lda, x: xb.baseAddress!, y: &fast)
                    GEMM.naiveGEMM(transposeA: false, transposeB: false, m: m, n: 1, k: n, alpha: 1, a: ab.baseAddress!,
                                   lda: lda, b: xb.baseAddress!, ldb: 1, beta: 0, c: &slow, ldc: 1)
                }
            }
            for (u, v) in zip(fast, slow) { XCTAssertEqual(u, v, accuracy: 1e-4 * Float(n).squareRoot(), "m \(m) n \(n)") }
        }
    }

    /// While a core is lent (`lendCore`), every part runs on the calling thread, in order, and the products split
    /// over the helpers give the same bits as when the parts run in parallel.
    func testLentCoreRunsPartsInOrderOnTheCaller() {
        let caller = pthread_self()
        ComputeThreads.lendCore()
        var order: [Int] = []
        var onCaller = true
        ComputeThreads.onWorkers(parts: 4) { p in
            order.append(p)
            onCaller = onCaller && pthread_equal(pthread_self(), caller) != 0
        }
        XCTAssertEqual(order, [0, 1, 2, 3])
        XCTAssertTrue(onCaller)
        var rng = RandomGenerator(seed: 9)
        let a = Tensor.normal([128, 300], generator: &rng), b = Tensor.normal([300, 200], generator: &rng)
        ComputeThreads.set(2)
        defer { ComputeThreads.set(1) }
        let serial = a.matmul(b)
        ComputeThreads.returnLentCore()
        XCTAssertEqual(ComputeThreads.lentCores, 0)
        let parallel = a.matmul(b)
        XCTAssertEqual(serial.scalars.map(\.bitPattern), parallel.scalars.map(\.bitPattern))
        testPartsRunConcurrently()   // and the helpers are back
    }

    /// `alone`: `count` reads 1 on the calling thread only (nested too), other threads keep the set count.
    func testAloneIsPerThread() {
        ComputeThreads.set(2)
        defer { ComputeThreads.set(1) }
        ComputeThreads.alone {
            XCTAssertEqual(ComputeThreads.count, 1)
            ComputeThreads.alone { XCTAssertEqual(ComputeThreads.count, 1) }
            XCTAssertEqual(ComputeThreads.count, 1)
            final class Box: @unchecked Sendable { var count = 0 }
            let other = Box()
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread { other.count = ComputeThreads.count; done.signal() }
            done.wait()
            XCTAssertEqual(other.count, 2)
        }
        XCTAssertEqual(ComputeThreads.count, 2)
    }
}
