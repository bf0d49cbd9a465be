import Foundation

/// OpenBLAS kernel selection on CPUs newer than the installed OpenBLAS.
///
/// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels once, when the library loads, from the CPU model number.
/// On a model it does not know (e.g. family 6 model 207, Emerald Rapids) it falls back to the generic `Prescott`
/// (SSE3) kernels: measured 4.6x slower training here than with the AVX-512 `SkylakeX` kernels the CPU supports.
/// The only switch is the `OPENBLAS_CORETYPE` environment variable, read at load time, so the fix has to re-execute
/// the process with it set. `distill` calls `reexecWithTunedKernelsIfNeeded()` first thing in `main`.
public enum BLASKernel {
    /// The kernel family OpenBLAS chose (`openblas_get_corename()`), or nil without OpenBLAS.
    public static var coreName: String? {
        #if os(Linux)
        typealias Fn = @convention(c) () -> UnsafeMutablePointer<CChar>?
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "openblas_get_corename") else { return nil }
        let fn = unsafeBitCast(symbol, to: Fn.self)
        return fn().map { String(cString: $0) }
        #else
        return nil
        #endif
    }

    /// The OpenBLAS core type to request for this CPU from its /proc/cpuinfo flags (nil: leave OpenBLAS's choice).
    public static func preferredCoreType(cpuFlags: Set<Substring>) -> String? {
        if cpuFlags.contains("avx512f") && cpuFlags.contains("avx512bw") && cpuFlags.contains("avx512vl") { return "SkylakeX" }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return "Haswell" }
        return nil
    }

    static var cpuFlags: Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " "))
    }

    /// When OpenBLAS fell back to generic kernels although the CPU has AVX2/AVX-512, sets `OPENBLAS_CORETYPE` and
    /// re-executes this program with the same arguments (does not return then). No-op when `OPENBLAS_CORETYPE` is
    /// already set (also by the user) or `DISTILL_KEEP_BLAS_CORE=1`.
    public static func reexecWithTunedKernelsIfNeeded() {
        #if os(Linux)
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("DISTILL_KEEP_BLAS_CORE") == nil,
              let name = coreName?.lowercased(), ["prescott", "core2", "nehalem", "unknown", "katmai", "northwood"].contains(name),
              let wanted = preferredCoreType(cpuFlags: cpuFlags) else { return }
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv failed: carry on with the generic kernels.
        #endif
    }
}
