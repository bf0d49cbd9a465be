import Foundation

/// Process resource figures for reports.
public enum ResourceUsage {
    /// Peak resident set size of this process in bytes (getrusage's ru_maxrss; KiB on Linux, bytes on macOS).
    public static var peakResidentBytes: Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)
        #endif
    }
}
