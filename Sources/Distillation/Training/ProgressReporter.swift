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
    public func batch(label: String, epoch: Int, epochs: Int, batch: Int, batches: Int, loss: String,
                      examplesPerSecond: Double, secondsLeft: Double) {
        guard enabled, isTerminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || batch == batches else { return }
        lastDraw = now
        let line = String(format: "%@ epoch %d/%d  batch %d/%d  %@  %.0f ex/s  ETA %@",
                          label, epoch, epochs, batch, batches, loss, examplesPerSecond, ProgressReporter.clock(secondsLeft))
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    /// Reports a finished epoch as a permanent line.
    public func line(_ text: String) {
        guard enabled else { return }
        let prefix = isTerminal ? "\r\u{1B}[K" : ""
        FileHandle.standardError.write(Data((prefix + text + "\n").utf8))
    }

    /// The loss as a person reads it: for distillation the label cross-entropy and the soft term as
    /// KL(teacher || student) at T, which falls towards 0 (the soft cross-entropy the loss optimises sits at the
    /// teacher's entropy instead, e.g. 455 at T = 20 after T^2 scaling); otherwise the loss.
    public static func describeLoss(total: Double, parts: [String: Double]) -> String {
        if let kl = parts["soft_kl"], let hard = parts["hard"] {
            return String(format: "hard CE %.4f  soft KL %.5f", hard, kl)
        }
        return String(format: "loss %.4f", total)
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
