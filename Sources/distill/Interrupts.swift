import Foundation
import Dispatch
import Synchronization
import Distributed

/// SIGINT / SIGTERM handling for long runs: the first signal sets a flag that the trainer polls after each step (it
/// then writes its state and exits with 128 + signal); a second SIGINT or SIGTERM exits at once.
final class InterruptFlag: Sendable {
    /// The signal received (0 = none).
    private let received = Atomic<Int32>(0)
    private let sources = Mutex<[DispatchSourceSignal]>([])

    var signal: Int32 { received.load(ordering: .sequentiallyConsistent) }
    var isSet: Bool { signal != 0 }

    /// Ignores the default action of SIGINT and SIGTERM and routes them to the flag.
    func install() {
        let queue = DispatchQueue(label: "distill.signals")
        var made: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            Foundation.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [self] in
                let (exchanged, _) = received.compareExchange(expected: 0, desired: sig, ordering: .sequentiallyConsistent)
                if exchanged {
                    // Under mpirun every process gets the signal; rank 0 alone says so (they stop after the same step).
                    guard World.current.isRoot else { return }
                    FileHandle.standardError.write(Data("\n\(sig == SIGINT ? "SIGINT" : "SIGTERM"): stopping after this step and saving the training state (again to quit at once)\n".utf8))
                } else {
                    _exit(128 + sig)
                }
            }
            source.resume()
            made.append(source)
        }
        sources.withLock { $0 = made }
    }
}

/// Test hook: `DISTILL_TEST_STEP_DELAY_MS` slows every training step down by that many milliseconds so tests can
/// interrupt a tiny run reliably. Not for general use.
let testStepDelay: UInt32 = {
    guard let text = ProcessInfo.processInfo.environment["DISTILL_TEST_STEP_DELAY_MS"], let ms = UInt32(text) else { return 0 }
    return ms * 1000
}()
