import Foundation

/// The processes of a data-parallel job and the collective operations between them.
///
/// Every rank calls the same collectives in the same order with buffers of the same length (MPI's rule). The
/// single-process communicator (``SingleProcess``) is rank 0 of 1 and its collectives leave the buffers as they are.
public protocol Communicator: AnyObject {
    /// This process's index, 0 ..< `size`.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Replaces every element with its sum over all ranks (MPI_Allreduce with MPI_SUM, in place).
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// Replaces every element with its sum over all ranks (MPI_Allreduce with MPI_SUM, in place).
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>)
    /// Copies `root`'s buffer into every other rank's (MPI_Bcast).
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int)
    /// Returns once every rank has called it (MPI_Barrier).
    func barrier()
    /// Ends every process of the job with `code` (MPI_Abort); for one process, exits with `code`.
    func abort(code: Int32) -> Never
    /// Whether a thread other than the one that made the communicator may call its collectives (one call at a time,
    /// MPI_THREAD_SERIALIZED or more); true unless the communicator says otherwise.
    var collectivesFromAnyThread: Bool { get }
}

extension Communicator {
    public var collectivesFromAnyThread: Bool { true }

    /// True for rank 0, the process that writes files and prints.
    public var isRoot: Bool { rank == 0 }
    /// True when the job has more than one process.
    public var isDistributed: Bool { size > 1 }

    /// `allreduceSum` on an array.
    public func allreduceSum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { allreduceSum($0) }
    }

    /// `allreduceSum` on an array.
    public func allreduceSum(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { allreduceSum($0) }
    }
}

/// One process: rank 0 of 1; the collectives change nothing.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    public func barrier() {}
    public func abort(code: Int32) -> Never { exit(code) }
}
