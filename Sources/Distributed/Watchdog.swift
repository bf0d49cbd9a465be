import Foundation

/// Ends this process when a job of several processes stops making progress: a process that hangs (stopped,
/// deadlocked, its machine unreachable) leaves the others waiting in their next collective for ever, and MPI itself
/// only notices processes that exit. The training loop calls ``beat()`` after every step; when no beat arrives for
/// `timeout` seconds, a helper thread prints one line naming this rank and the silence, and exits with status 1,
/// after which `mpirun` ends every other process of the job (a stopped process included) and names this one. A
/// process that finds itself paused for half the timeout or more (its own thread overslept) says so and exits.
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
    private let lock = NSLock()
    private var lastBeat = Date()
    private var steps = 0
    private var running = true

    /// Starts watching: the first beat is due within `timeout` seconds.
    public init(timeout: Double = Watchdog.configuredTimeout, rank: Int, size: Int) {
        self.timeout = timeout
        self.rank = rank
        self.size = size
        let thread = Thread { [weak self] in self?.watch() }
        thread.name = "distill-watchdog"
        thread.start()
    }

    /// A step (or the work between steps) finished.
    public func beat() {
        lock.lock()
        lastBeat = Date()
        steps += 1
        lock.unlock()
    }

    /// Stops watching (the run ended).
    public func stop() {
        lock.lock()
        running = false
        lock.unlock()
    }

    deinit { stop() }

    private func watch() {
        let interval = Swift.min(0.5, timeout / 4)
        var lastWake = Date()
        while true {
            Thread.sleep(forTimeInterval: interval)
            let now = Date()
            // This process itself was paused (SIGSTOP, a frozen machine): say so rather than blame the others.
            let paused = now.timeIntervalSince(lastWake) - interval
            lastWake = now
            lock.lock()
            let (alive, silent, done) = (running, now.timeIntervalSince(lastBeat), steps)
            lock.unlock()
            guard alive else { return }
            if paused >= timeout / 2 {
                let message = "rank \(rank) of \(size): this process was stopped for \(Int(paused.rounded())) s (after \(done) steps); ending the job\n"
                FileHandle.standardError.write(Data(message.utf8))
                _exit(1)
            }
            if silent >= timeout {
                let message = "rank \(rank) of \(size): no training step finished for \(Int(silent.rounded())) s (after \(done) steps): "
                    + "another process stopped answering (hung or stopped); ending the job (DISTILL_MPI_TIMEOUT=\(Int(timeout)))\n"
                FileHandle.standardError.write(Data(message.utf8))
                _exit(1)
            }
        }
    }
}
