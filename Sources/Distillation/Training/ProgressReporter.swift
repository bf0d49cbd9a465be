import Foundation

/// Progress on standard error: a live, rewritten line on a terminal; plain lines (one per epoch) otherwise.
public final class ProgressReporter {
    public let isTerminal: Bool
    public let enabled: Bool
    private var lastDraw = Date.distantPast

    public init(enabled: Bool = true) {
        self.enabled = enabled
        self.isTerminal = isatty(2) == 1
    }

    /// Reports a batch: epoch, batch, running loss, throughput and ETA (redrawn at most 10 times a second).
    public func batch(label: String, epoch: Int, epochs: Int, batch: Int, batches: Int, loss: Double,
                      examplesPerSecond: Double, secondsLeft: Double) {
        guard enabled, isTerminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || batch == batches else { return }
        lastDraw = now
        let line = String(format: "%@ epoch %d/%d  batch %d/%d  loss %.4f  %.0f ex/s  ETA %@",
                          label, epoch, epochs, batch, batches, loss, examplesPerSecond, ProgressReporter.clock(secondsLeft))
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    /// Reports a finished epoch as a permanent line.
    public func line(_ text: String) {
        guard enabled else { return }
        let prefix = isTerminal ? "\r\u{1B}[K" : ""
        FileHandle.standardError.write(Data((prefix + text + "\n").utf8))
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
