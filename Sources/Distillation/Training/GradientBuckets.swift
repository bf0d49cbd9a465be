import Foundation
import TensorCore
import NeuralNet
import Distributed

/// Sums the parameters' gradients over the processes of a data-parallel job, in buckets that are sent while the
/// backward pass still runs (PyTorch DDP's gradient buckets, Horovod's background thread).
///
/// The parameters are grouped in reverse order (the output layer's first, as the backward pass finishes them) into
/// buckets of at most `capacity` bytes (a larger parameter is a bucket of its own). As the backward pass hands over a
/// parameter's finished gradient (``Variable/backward(seed:onLeafReady:)``), it is copied into its bucket's buffer;
/// a full bucket is summed with one `MPI_Allreduce` on a communication thread while the backward pass goes on.
/// Buckets are sent strictly in their order, so every process issues the same collectives in the same order. After
/// the pass, ``finish()`` sends what is left (a parameter the pass did not reach contributes zeros), waits, and sets
/// every gradient to the sum.
///
/// With one bucket (`capacity` nil) or a communicator that allows collectives only from the thread that started MPI,
/// the buckets are summed after the backward pass on the calling thread. The sums are the same either way: each
/// element's sum over the processes does not depend on which bucket carries it for two processes (a + b = b + a in
/// floating point); for more, MPI may pick a different reduction order for another message size.
public final class GradientBuckets {
    /// One bucket: its parameters (indices into `parameters`), their offsets in the buffer, and how many are ready.
    final class Bucket: @unchecked Sendable {
        let members: [Int]
        let offsets: [Int]
        let buffer: UnsafeMutableBufferPointer<Float>
        var ready = 0

        init(members: [Int], counts: [Int]) {
            self.members = members
            var offsets: [Int] = [], at = 0
            for n in counts { offsets.append(at); at += n }
            self.offsets = offsets
            buffer = .allocate(capacity: at)
            buffer.initialize(repeating: 0)
        }

        deinit { buffer.deallocate() }
    }

    public let parameters: [Variable]
    public let communicator: Communicator
    /// Whether full buckets are summed on the communication thread during the backward pass.
    public let overlaps: Bool
    let buckets: [Bucket]
    /// The number of buckets.
    public var count: Int { buckets.count }
    /// How many buckets of the current step were sent before ``finish()`` (while the backward pass ran).
    public private(set) var sentDuringBackward = 0
    private let place: [ObjectIdentifier: (bucket: Int, member: Int)]
    private var launched = 0
    private var settled: [Bool]
    private let queue = DispatchQueue(label: "distill.gradient-allreduce")
    private let group = DispatchGroup()

    /// The default bucket capacity, 25 MiB (PyTorch DDP's `bucket_cap_mb`): the models measured here (5-10 MB of
    /// gradients) go in one bucket, which was fastest on a 2-core machine, where communication and computation share
    /// the cores (the README's scaling section); larger models are sent in parts during the backward pass.
    public static let defaultCapacity = 25 << 20

    /// Groups `parameters` into buckets of at most `capacity` bytes (nil: one bucket).
    public init(parameters: [Variable], communicator: Communicator, capacity: Int?) {
        self.parameters = parameters
        self.communicator = communicator
        var groups: [[Int]] = [], current: [Int] = [], bytes = 0
        for i in parameters.indices.reversed() {
            let size = parameters[i].value.count * MemoryLayout<Float>.stride
            if let capacity, !current.isEmpty, bytes + size > capacity {
                groups.append(current)
                current = []
                bytes = 0
            }
            current.append(i)
            bytes += size
        }
        if !current.isEmpty { groups.append(current) }
        buckets = groups.map { Bucket(members: $0, counts: $0.map { parameters[$0].value.count }) }
        var place: [ObjectIdentifier: (bucket: Int, member: Int)] = [:]
        for (b, bucket) in buckets.enumerated() {
            for (m, i) in bucket.members.enumerated() { place[ObjectIdentifier(parameters[i])] = (b, m) }
        }
        self.place = place
        settled = [Bool](repeating: false, count: parameters.count)
        overlaps = buckets.count > 1 && communicator.collectivesFromAnyThread
    }

    /// Starts a step: no gradient is ready.
    public func begin() {
        launched = 0
        sentDuringBackward = 0
        for bucket in buckets { bucket.ready = 0 }
        for i in settled.indices { settled[i] = false }
    }

    /// The backward pass finished `leaf`'s gradient (a leaf that is not a parameter here is ignored).
    public func ready(_ leaf: Variable) {
        guard let (b, m) = place[ObjectIdentifier(leaf)] else { return }
        let bucket = buckets[b]
        let index = bucket.members[m]
        guard !settled[index] else { return }
        settled[index] = true
        copy(leaf.grad, into: bucket, at: bucket.offsets[m], count: leaf.value.count)
        bucket.ready += 1
        if overlaps {
            launchFullBuckets()
            sentDuringBackward = launched
        }
    }

    /// Sends the buckets not sent yet, waits for every sum, and sets each parameter's gradient to it.
    public func finish() {
        for (b, bucket) in buckets.enumerated() where b >= launched {
            for (m, index) in bucket.members.enumerated() where !settled[index] {
                settled[index] = true
                copy(parameters[index].grad, into: bucket, at: bucket.offsets[m], count: parameters[index].value.count)
                bucket.ready += 1
            }
        }
        if overlaps {
            launchFullBuckets()
            group.wait()
        } else {
            for bucket in buckets { communicator.allreduceSum(bucket.buffer) }
        }
        for bucket in buckets {
            for (m, index) in bucket.members.enumerated() {
                let p = parameters[index]
                let source = bucket.buffer.baseAddress! + bucket.offsets[m]
                p.grad = Tensor(shape: p.value.shape) { g in g.baseAddress!.update(from: source, count: g.count) }
            }
        }
    }

    /// Sends every full bucket that is next in order.
    private func launchFullBuckets() {
        while launched < buckets.count, buckets[launched].ready == buckets[launched].members.count {
            let bucket = buckets[launched], communicator = self.communicator
            launched += 1
            queue.async(group: group) {
                ComputeThreads.applyDenormalMode()
                communicator.allreduceSum(bucket.buffer)
            }
        }
    }

    private func copy(_ gradient: Tensor?, into bucket: Bucket, at offset: Int, count: Int) {
        let target = bucket.buffer.baseAddress! + offset
        if let gradient {
            gradient.withUnsafeBufferPointer { g in target.update(from: g.baseAddress!, count: count) }
        } else {
            target.update(repeating: 0, count: count)
        }
    }
}
