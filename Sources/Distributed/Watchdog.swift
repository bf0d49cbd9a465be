import Foundation

/// Ends this process when a job of several processes stops making progress: a process that hangs (stopped,
/// deadlocked, its machine unreachable) leaves the others waiting in their next collective for ever, and MPI itself
/// only notices processes that exit. The training loop calls ``beat()`` after every step; when no beat arrives for
/// `timeout` seconds, a helper thread finds out which process the job waits for, prints one line naming it, and exits
/// with status 1, after which `mpirun` ends every other process of the job (a stopped one included).
///
/// Finding the process: with MPI_THREAD_MULTIPLE (``MPILiveness``) the watchdog asks every other process where it is
/// and waits `answerTime` seconds: a process that does not answer is named as stopped or unreachable, one that
/// answers from outside a collective as the one the others wait for. Every watchdog answers such questions while it
/// runs. A watchdog whose own process is the one outside a collective says so; a process that finds itself paused
/// for half the timeout or more (its own thread overslept) says that.
///
/// The timeout (`DISTILL_MPI_TIMEOUT`, seconds, default ``defaultTimeout``) must exceed the longest step, and the
/// work between steps (an epoch's validation pass).
public final class Watchdog: @unchecked Sendable {
    public static let defaultTimeout: Double = 600

    /// The timeout from `DISTILL_MPI_TIMEOUT` (seconds > 0), else ``defaultTimeout``.
    public static var configuredTimeout: Double {
        guard let text = ProcessInfo.processInfo.environment["DISTILL_MPI_TIMEOUT"], let value = Double(text), value > 0,
              value.isFinite else { return defaultTimeout }
        return value
    }

    let timeout: Double
    let rank: Int
    let size: Int
    /// What a beat stands for, in the messages: ("training step", "steps") or ("teacher batch", "batches").
    let work: (one: String, many: String)
    /// How long the others have to answer: a tenth of the timeout, 1 to 10 s.
    var answerTime: Double { Swift.min(10, Swift.max(1, timeout / 10)) }
    private let liveness: MPILiveness?
    private let inCollective: () -> Bool
    private let condition = NSCondition()
    private let exited = DispatchSemaphore(value: 0)
    private var lastBeat = Date()
    private var steps = 0
    private var running = true

    /// Starts watching the process `rank` of `size`: the first beat is due within `timeout` seconds. With an
    /// ``MPICommunicator`` that has a ``MPILiveness`` channel, the watchdog asks and answers where the processes are.
    public init(timeout: Double = Watchdog.configuredTimeout, rank: Int, size: Int, communicator: Communicator? = nil,
                work: (one: String, many: String) = ("training step", "steps")) {
        self.timeout = timeout
        self.rank = rank
        self.size = size
        self.work = work
        let mpi = communicator as? MPICommunicator
        liveness = mpi?.liveness
        inCollective = { mpi?.isInCollective ?? false }
        let thread = Thread { [self] in
            watch()
            exited.signal()
        }
        thread.name = "distill-watchdog"
        thread.start()
    }

    /// A step (or the work between steps) finished.
    public func beat() {
        condition.lock()
        lastBeat = Date()
        steps += 1
        let done = steps
        condition.unlock()
        if let stall = Watchdog.injectedStall, stall.rank == rank, done == stall.steps {
            while true { sleep(3600) }  // outside any collective, as a deadlocked process would be
        }
    }

    /// Test hook: `DISTILL_TEST_STALL=RANK:STEPS` makes that rank's training thread stop for good after STEPS beats,
    /// outside any collective (its watchdog keeps running), as a deadlocked process would. Not for general use.
    static let injectedStall: (rank: Int, steps: Int)? = {
        let parts = ProcessInfo.processInfo.environment["DISTILL_TEST_STALL"]?.split(separator: ":").compactMap { Int($0) }
        guard let parts, parts.count == 2 else { return nil }
        return (parts[0], parts[1])
    }()

    /// Stops watching (the run ended) and returns once the watchdog's thread has ended: it makes no MPI call after.
    public func stop() {
        condition.lock()
        let wasRunning = running
        running = false
        condition.signal()
        condition.unlock()
        if wasRunning { exited.wait() }
    }

    private func watch() {
        let interval = Swift.min(0.5, timeout / 4)
        var lastWake = Date()
        while true {
            condition.lock()
            if running { _ = condition.wait(until: Date().addingTimeInterval(interval)) }
            let now = Date()
            let (alive, silent, done) = (running, now.timeIntervalSince(lastBeat), steps)
            condition.unlock()
            guard alive else { return }
            // This process itself was paused (SIGSTOP, a frozen machine): say so rather than blame the others.
            let paused = now.timeIntervalSince(lastWake) - interval
            lastWake = now
            if paused >= timeout / 2 {
                end("rank \(rank) of \(size): this process was stopped for \(Int(paused.rounded())) s (after \(done) \(work.many)); ending the job")
            }
            let status = ProcessStatus(steps: done, inCollective: inCollective())
            liveness?.answer(status: status)
            if silent >= timeout {
                end("rank \(rank) of \(size): no \(work.one) finished for \(Int(silent.rounded())) s (after \(done) \(work.many)): "
                    + diagnosis(status) + "; ending the job (DISTILL_MPI_TIMEOUT=\(Int(timeout)))")
            }
        }
    }

    /// Which process the job waits for, from the others' answers.
    private func diagnosis(_ status: ProcessStatus) -> String {
        guard let liveness else { return "another process stopped answering (hung or stopped)" }
        if !status.inCollective {
            // The others' watchdogs fire about now and ask: answer them before ending, so that they can name this one.
            let until = Date().addingTimeInterval(answerTime * 2)
            while Date() < until {
                liveness.answer(status: status)
                usleep(20_000)
            }
            return "this process is the one that hangs (it is not waiting for the others)"
        }
        let answers = liveness.ask(within: answerTime, status: status)
        let others = (0..<size).filter { $0 != rank }
        let silent = others.filter { answers[$0] == nil }
        let outside = others.filter { answers[$0].map { !$0.inCollective } ?? false }
        var parts: [String] = []
        if !silent.isEmpty {
            parts.append("\(Watchdog.ranks(silent)) did not answer within \(Int(answerTime.rounded())) s (stopped, killed or unreachable)")
        }
        if !outside.isEmpty {
            let detail = outside.map { "rank \($0) after \(answers[$0]!.steps) \(work.many)" }.joined(separator: ", ")
            parts.append("\(Watchdog.ranks(outside)) answered but \(outside.count == 1 ? "is" : "are") not waiting in a collective (\(detail)): the job waits for \(outside.count == 1 ? "it" : "them")")
        }
        if parts.isEmpty {
            return "every process answered and waits in a collective (the processes called different collectives)"
        }
        return parts.joined(separator: "; ")
    }

    static func ranks(_ list: [Int]) -> String {
        (list.count == 1 ? "rank " : "ranks ") + list.map(String.init).joined(separator: ", ")
    }

    private func end(_ line: String) -> Never {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        _exit(1)
    }
}
