import Foundation

/// Reference-counted Float32 buffer behind `Tensor` (copy-on-write, as swift-nio's `ByteBuffer`).
///
/// Buffers come from and return to a size-keyed `BufferPool`, so a training loop that allocates the same shapes every
/// step reuses the same memory and never page-faults in the steady state.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised storage of `count` floats (the caller must write every element).
    init(uninitializedCount count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.take(count: count)
    }

    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    @usableFromInline func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        result.pointer.update(from: pointer, count: count)
        return result
    }

    deinit {
        BufferPool.shared.give(pointer, count: count)
    }
}

/// A thread-safe free list of Float buffers keyed by element count.
///
/// Bounded: at most `maximumCachedBytes` are kept; beyond that buffers are freed. Small buffers (< 64 floats) are not
/// pooled (malloc is already fast for them).
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    private let lock = NSLock()
    /// Upper bound of memory kept for reuse.
    public var maximumCachedBytes = 512 << 20
    /// Number of buffers allocated from the system (not served from the pool); for tests and benchmarks.
    public private(set) var systemAllocations = 0

    func take(count: Int) -> UnsafeMutablePointer<Float> {
        let capacity = Swift.max(count, 1)
        if capacity >= 64 {
            lock.lock()
            if var list = free[capacity], let pointer = list.popLast() {
                free[capacity] = list
                cachedBytes -= capacity * 4
                lock.unlock()
                return pointer
            }
            systemAllocations += 1
            // A small size runs short: keep one spare of it. Two threads that share sizes (the student's step and an
            // overlapped teacher's forward pass, both holding 128 x 10 logits) reach their joint peak only in the
            // interleavings that timing happens to produce, so without a spare the pool grew by one such buffer in a
            // later epoch in some runs. The spare keeps one buffer above the largest demand seen, for a few KiB.
            if capacity <= BufferPool.spareLimit && cachedBytes + capacity * 4 <= maximumCachedBytes {
                systemAllocations += 1
                free[capacity, default: []].append(BufferPool.allocate(capacity))
                cachedBytes += capacity * 4
            }
            lock.unlock()
        }
        return BufferPool.allocate(capacity)
    }

    /// Sizes (floats) up to which a shortage also puts a spare into the pool (16 KiB).
    public static let spareLimit = 4096

    /// 64-byte aligned (a cache line, an AVX-512 vector): BLAS kernels take the same paths whatever the address,
    /// which MKL's run-to-run reproducibility asks for.
    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: capacity)
    }

    func give(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let capacity = Swift.max(count, 1)
        if capacity >= 64 {
            lock.lock()
            if cachedBytes + capacity * 4 <= maximumCachedBytes {
                free[capacity, default: []].append(pointer)
                cachedBytes += capacity * 4
                lock.unlock()
                return
            }
            lock.unlock()
        }
        pointer.deallocate()
    }

    /// Frees every cached buffer.
    public func drain() {
        lock.lock()
        for (_, list) in free { for p in list { p.deallocate() } }
        free = [:]
        cachedBytes = 0
        lock.unlock()
    }
}
