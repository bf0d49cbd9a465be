import Foundation

/// MPI_COMM_WORLD of an Open MPI job, reached through `libmpi.so.40` loaded with `dlopen` at run time.
///
/// The package does not link MPI: a process started by `mpirun` (Open MPI sets `OMPI_COMM_WORLD_SIZE` and
/// `OMPI_COMM_WORLD_RANK`) opens the library and resolves the few functions it calls; the handles MPI_COMM_WORLD,
/// MPI_FLOAT, MPI_DOUBLE and MPI_SUM are the addresses of Open MPI's globals `ompi_mpi_comm_world`,
/// `ompi_mpi_float`, `ompi_mpi_double` and `ompi_mpi_op_sum`. `DISTILL_MPI` names the library file explicitly.
///
/// MPI is initialised asking for MPI_THREAD_MULTIPLE (Debian's Open MPI grants it): the gradient buckets are summed
/// on a communication thread, and the watchdog asks the other processes where they are from its own thread. Errors
/// in a collective abort the job (MPI_ERRORS_ARE_FATAL, MPI's default on MPI_COMM_WORLD).
public final class MPICommunicator: Communicator {
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    typealias InitThread = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?, Int32,
                                           UnsafeMutablePointer<Int32>?) -> Int32
    typealias CommQuery = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias Allreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?,
                                          UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    typealias Bcast = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?, Int32,
                                      UnsafeMutableRawPointer?) -> Int32
    typealias Barrier = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    typealias Abort = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32
    typealias Finalize = @convention(c) () -> Int32
    typealias CommDup = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias SetErrhandler = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32

    /// The file names tried, in order, when `DISTILL_MPI` is not set.
    public static let libraryCandidates = ["libmpi.so.40", "libmpi.so"]

    /// Open MPI's MPI_IN_PLACE, `(void *) 1`.
    static let inPlace = UnsafeRawPointer(bitPattern: 1)

    public let rank: Int
    public let size: Int
    /// The library file that was opened.
    public let libraryPath: String
    private let allreduce: Allreduce
    private let bcast: Bcast
    private let barrierFunction: Barrier
    private let abortFunction: Abort
    private let finalizeFunction: Finalize
    private let commWorld, floatType, doubleType, sumOp: UnsafeMutableRawPointer
    private var finalized = false
    /// Collectives in progress on any thread of this process (the watchdog's answer to "where are you?").
    private let collectiveLock = NSLock()
    private var collectivesInProgress = 0
    /// The channel the watchdogs of the processes talk on (nil without MPI_THREAD_MULTIPLE).
    public private(set) var liveness: MPILiveness?
    /// The thread support MPI_Init_thread granted (0 single ... 3 multiple).
    public let threadLevel: Int32
    /// MPI_THREAD_SERIALIZED or more: the gradient buckets may be summed on a communication thread.
    public var collectivesFromAnyThread: Bool { threadLevel >= 2 }

    /// Largest element count of one MPI call (MPI counts are 32-bit); longer buffers go in several calls.
    static let maximumCount = Int(Int32.max)

    /// Opens the library, initialises MPI and reads this process's rank and the job's size.
    public init(libraryPath: String? = nil) throws {
        let names = libraryPath.map { [$0] }
            ?? ProcessInfo.processInfo.environment["DISTILL_MPI"].flatMap { $0.isEmpty ? nil : [$0] }
            ?? MPICommunicator.libraryCandidates
        var failures: [String] = []
        var opened: (UnsafeMutableRawPointer, String)?
        for name in names {
            // RTLD_GLOBAL: Open MPI's own plugins (dlopen'ed by libmpi) resolve symbols of libmpi and its libraries.
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                opened = (handle, name)
                break
            }
            failures.append(dlerror().map { String(cString: $0) } ?? name)
        }
        guard let (handle, path) = opened else {
            throw LoadError(description: "started by mpirun, but Open MPI's library could not be loaded (\(failures.joined(separator: "; "))); install openmpi-bin and libopenmpi-dev or set DISTILL_MPI to libmpi.so's path")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(handle, name) else {
                throw LoadError(description: "\(path) has no symbol \(name): not Open MPI (libmpi.so.40)?")
            }
            return address
        }
        let initThread = unsafeBitCast(try symbol("MPI_Init_thread"), to: InitThread.self)
        let commRank = unsafeBitCast(try symbol("MPI_Comm_rank"), to: CommQuery.self)
        let commSize = unsafeBitCast(try symbol("MPI_Comm_size"), to: CommQuery.self)
        allreduce = unsafeBitCast(try symbol("MPI_Allreduce"), to: Allreduce.self)
        bcast = unsafeBitCast(try symbol("MPI_Bcast"), to: Bcast.self)
        barrierFunction = unsafeBitCast(try symbol("MPI_Barrier"), to: Barrier.self)
        abortFunction = unsafeBitCast(try symbol("MPI_Abort"), to: Abort.self)
        finalizeFunction = unsafeBitCast(try symbol("MPI_Finalize"), to: Finalize.self)
        commWorld = try symbol("ompi_mpi_comm_world")
        floatType = try symbol("ompi_mpi_float")
        doubleType = try symbol("ompi_mpi_double")
        sumOp = try symbol("ompi_mpi_op_sum")
        self.libraryPath = path

        let multiple: Int32 = 3  // MPI_THREAD_MULTIPLE in Open MPI's mpi.h (SERIALIZED 2, FUNNELED 1)
        var provided: Int32 = 0
        guard initThread(nil, nil, multiple, &provided) == 0 else {
            throw LoadError(description: "MPI_Init_thread failed (\(path))")
        }
        threadLevel = provided
        var r: Int32 = 0, s: Int32 = 0
        guard commRank(commWorld, &r) == 0, commSize(commWorld, &s) == 0 else {
            throw LoadError(description: "MPI_Comm_rank or MPI_Comm_size failed (\(path))")
        }
        rank = Int(r)
        size = Int(s)
        if provided >= multiple && size > 1 {
            // A communicator of its own (MPI_Comm_dup, collective: every rank makes it here), whose errors are
            // returned rather than fatal: a question to a process that is gone is a missing answer.
            let dup = unsafeBitCast(try symbol("MPI_Comm_dup"), to: CommDup.self)
            let setErrhandler = unsafeBitCast(try symbol("MPI_Comm_set_errhandler"), to: SetErrhandler.self)
            var comm: UnsafeMutableRawPointer?
            if dup(commWorld, &comm) == 0, let comm, setErrhandler(comm, try symbol("ompi_mpi_errors_return")) == 0 {
                liveness = try MPILiveness(communicator: comm, rank: rank, size: size, doubleType: doubleType, symbol: symbol)
            }
        }
    }

    /// Whether a collective is in progress on some thread of this process.
    public var isInCollective: Bool {
        collectiveLock.lock()
        defer { collectiveLock.unlock() }
        return collectivesInProgress > 0
    }

    private func collective<T>(_ body: () -> T) -> T {
        collectiveLock.lock()
        collectivesInProgress += 1
        collectiveLock.unlock()
        defer {
            collectiveLock.lock()
            collectivesInProgress -= 1
            collectiveLock.unlock()
        }
        return body()
    }

    private func reduce(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: UnsafeMutableRawPointer) {
        guard let base, count > 0 else { return }
        var done = 0
        while done < count {
            let n = Swift.min(count - done, MPICommunicator.maximumCount)
            let code = collective { allreduce(MPICommunicator.inPlace, base + done * stride, Int32(n), type, sumOp, commWorld) }
            if code != 0 { fail("MPI_Allreduce", code) }
            done += n
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        reduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: floatType)
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        reduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: doubleType)
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var done = 0
        while done < buffer.count {
            let n = Swift.min(buffer.count - done, MPICommunicator.maximumCount)
            let code = collective { bcast(UnsafeMutableRawPointer(base + done), Int32(n), floatType, Int32(root), commWorld) }
            if code != 0 { fail("MPI_Bcast", code) }
            done += n
        }
    }

    public func barrier() {
        let code = collective { barrierFunction(commWorld) }
        if code != 0 { fail("MPI_Barrier", code) }
    }

    public func abort(code: Int32) -> Never {
        _ = abortFunction(commWorld, code)
        exit(code)
    }

    /// Ends MPI (MPI_Finalize) once; every rank must call it before a normal exit.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = finalizeFunction()
    }

    private func fail(_ call: String, _ code: Int32) -> Never {
        FileHandle.standardError.write(Data("distill: rank \(rank) of \(size): \(call) failed with MPI error \(code)\n".utf8))
        abort(code: 1)
    }
}
