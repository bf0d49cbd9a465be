import XCTest
import TensorCore

final class FlushDenormalsTests: XCTestCase {
    /// `ComputeThreads.set` turns on flush-to-zero for the calling thread and the parallel workers: a product that
    /// would be denormal (1e-38 * 1e-3) becomes exactly 0; turning it off restores IEEE gradual underflow.
    func testDenormalsFlushOnComputeThreads() {
        #if arch(x86_64) || arch(arm64)
        defer { ComputeThreads.flushDenormals = true; ComputeThreads.set(1) }
        let tiny = Tensor([1e-38, 1])
        ComputeThreads.flushDenormals = false
        ComputeThreads.set(2)
        XCTAssertFalse(ComputeThreads.callingThreadFlushesDenormals)
        XCTAssertGreaterThan((tiny * 1e-3)[flat: 0], 0, "gradual underflow expected with flushing off")
        ComputeThreads.flushDenormals = true
        ComputeThreads.set(2)
        XCTAssertTrue(ComputeThreads.callingThreadFlushesDenormals)
        XCTAssertEqual((tiny * 1e-3)[flat: 0], 0)
        var flushedInWorkers = [Bool](repeating: false, count: 8)
        flushedInWorkers.withUnsafeMutableBufferPointer { flags in
            let base = flags.baseAddress!
            ComputeThreads.parallelFor(chunks: 8) { c in base[c] = ComputeThreads.callingThreadFlushesDenormals }
        }
        XCTAssertEqual(flushedInWorkers, [Bool](repeating: true, count: 8))
        #endif
    }
}
