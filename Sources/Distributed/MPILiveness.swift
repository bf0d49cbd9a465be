import Foundation

/// Where a process of the job is: how many training steps it finished and whether it waits in a collective.
public struct ProcessStatus: Equatable, Sendable {
    public var steps: Int
    public var inCollective: Bool

    public init(steps: Int, inCollective: Bool) {
        self.steps = steps
        self.inCollective = inCollective
    }
}

/// The watchdogs' side channel: small point-to-point messages on a communicator of their own (a duplicate of
/// MPI_COMM_WORLD whose errors are returned, not fatal), sent and received on the watchdog's thread while the
/// training thread may be blocked in a collective (MPI_THREAD_MULTIPLE).
///
/// A process whose watchdog finds no progress asks every other process where it is (``ask(within:status:)``); the
/// others' watchdogs answer within their polling interval (``answer(status:)``). A process that does not answer is
/// stopped, gone or unreachable; one that answers and is not waiting in a collective is the one the others wait for.
public final class MPILiveness: @unchecked Sendable {
    typealias Isend = @convention(c) (UnsafeRawPointer?, Int32, UnsafeMutableRawPointer?, Int32, Int32, UnsafeMutableRawPointer?,
                                      UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias Irecv = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?, Int32, Int32, UnsafeMutableRawPointer?,
                                      UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias Recv = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?, Int32, Int32, UnsafeMutableRawPointer?,
                                     UnsafeMutableRawPointer?) -> Int32
    typealias Test = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32
    typealias Iprobe = @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32

    static let questionTag: Int32 = 1
    static let answerTag: Int32 = 2
    /// Open MPI's MPI_ANY_SOURCE.
    static let anySource: Int32 = -1
    /// Bytes for an MPI_Status (Open MPI's is 24: source, tag, error, cancelled, a size_t count).
    static let statusBytes = 64

    let rank: Int
    let size: Int
    private let comm: UnsafeMutableRawPointer
    private let doubleType: UnsafeMutableRawPointer
    private let isend: Isend
    private let irecv: Irecv
    private let recv: Recv
    private let test: Test
    private let iprobe: Iprobe
    /// Answers sent and not yet complete: their requests and buffers.
    private var sending: [(request: UnsafeMutableRawPointer?, buffer: UnsafeMutablePointer<Double>)] = []
    private let status = UnsafeMutableRawPointer.allocate(byteCount: MPILiveness.statusBytes, alignment: 8)

    init(communicator: UnsafeMutableRawPointer, rank: Int, size: Int, doubleType: UnsafeMutableRawPointer,
         symbol: (String) throws -> UnsafeMutableRawPointer) throws {
        comm = communicator
        self.rank = rank
        self.size = size
        self.doubleType = doubleType
        isend = unsafeBitCast(try symbol("MPI_Isend"), to: Isend.self)
        irecv = unsafeBitCast(try symbol("MPI_Irecv"), to: Irecv.self)
        recv = unsafeBitCast(try symbol("MPI_Recv"), to: Recv.self)
        test = unsafeBitCast(try symbol("MPI_Test"), to: Test.self)
        iprobe = unsafeBitCast(try symbol("MPI_Iprobe"), to: Iprobe.self)
    }

    deinit { status.deallocate() }

    /// Answers every question that arrived with `status`, and completes the answers sent before.
    public func answer(status current: ProcessStatus) {
        while true {
            var flag: Int32 = 0
            guard iprobe(MPILiveness.anySource, MPILiveness.questionTag, comm, &flag, status) == 0, flag != 0 else { break }
            let source = status.load(as: Int32.self)  // MPI_SOURCE, the status's first field
            var question: (Double, Double) = (0, 0)  // the asker's own status
            guard withUnsafeMutablePointer(to: &question, { recv($0, 2, doubleType, source, MPILiveness.questionTag, comm, nil) }) == 0
            else { break }
            send(current, to: source, tag: MPILiveness.answerTag)
        }
        sending.removeAll { pending in
            var request = pending.request, flag: Int32 = 0
            let failed = test(&request, &flag, nil) != 0
            guard failed || flag != 0 else { return false }
            pending.buffer.deallocate()
            return true
        }
    }

    /// Asks every other process where it is and waits up to `seconds` for the answers, answering questions meanwhile
    /// (two processes may ask each other at once). Returns the answers by rank; a missing rank did not answer.
    public func ask(within seconds: Double, status current: ProcessStatus) -> [Int: ProcessStatus] {
        let others = (0..<size).filter { $0 != rank }
        let replies = UnsafeMutablePointer<Double>.allocate(capacity: 2 * size)
        replies.initialize(repeating: 0, count: 2 * size)
        var requests: [Int: UnsafeMutableRawPointer?] = [:]
        for r in others {
            send(current, to: Int32(r), tag: MPILiveness.questionTag)
            var request: UnsafeMutableRawPointer?
            if irecv(replies + 2 * r, 2, doubleType, Int32(r), MPILiveness.answerTag, comm, &request) == 0 {
                requests[r] = request
            }
        }
        var answers: [Int: ProcessStatus] = [:]
        let deadline = Date().addingTimeInterval(seconds)
        while answers.count < requests.count && Date() < deadline {
            answer(status: current)
            for (r, request) in requests where answers[r] == nil {
                var handle = request, flag: Int32 = 0
                if test(&handle, &flag, nil) == 0, flag != 0 {
                    answers[r] = ProcessStatus(steps: Int(replies[2 * r]), inCollective: replies[2 * r + 1] != 0)
                }
            }
            usleep(20_000)
        }
        // The process ends after asking; the receive buffers of unanswered questions are left to it.
        return answers
    }

    private func send(_ current: ProcessStatus, to destination: Int32, tag: Int32) {
        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 2)
        buffer[0] = Double(current.steps)
        buffer[1] = current.inCollective ? 1 : 0
        var request: UnsafeMutableRawPointer?
        if isend(buffer, 2, doubleType, destination, tag, comm, &request) == 0 {
            sending.append((request, buffer))
        } else {
            buffer.deallocate()
        }
    }
}
