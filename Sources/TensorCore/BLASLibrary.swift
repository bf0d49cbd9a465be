import Foundation
#if canImport(CBLAS)
import CBLAS
#endif

/// Which BLAS library runs the matrix products: the OpenBLAS the package links (Debian's libopenblas-dev), or
/// Intel's oneMKL loaded at run time from `libmkl_rt` when asked for and installed.
///
/// Why a second library: on the student's batch-128 products MKL's sgemm is about 25 % faster than OpenBLAS 0.3.21
/// on this machine (Scripts/gemm_floor.c: 1.62-1.84 s of sgemm per epoch against 2.20-2.34 s on two threads), and
/// PyTorch's CPU wheels carry MKL, so with OpenBLAS alone we would race it with a slower engine. MKL is not linked:
/// it is opened with `dlopen` only on request, so the package builds and runs without it.
///
/// MKL runs in its sequential threading layer: every call uses the calling thread only, and `GEMM.sgemm` splits
/// products into parts over the `ComputeThreads.onWorkers` helpers itself (as with OpenBLAS, held at one thread:
/// `ComputeThreads.productsRunOnHelpers`). So one thread count governs all work,
/// no OpenMP pool spins on a core between products, and two threads can call MKL at once (the teacher overlap).
/// Within one library, thread count and shapes, results are bit-reproducible run to run; OpenBLAS and MKL differ in
/// the last bits, so a run records which library it used.
public enum BLASLibrary {
    /// The library choices a command accepts (`--blas`).
    public enum Choice: String, CaseIterable, Sendable {
        /// MKL when `libmkl_rt` loads, else OpenBLAS.
        case auto
        /// The linked OpenBLAS (Accelerate on Apple platforms).
        case openblas
        /// MKL; an error when it cannot be loaded.
        case mkl
    }

    public enum Active: String, Sendable {
        case openblas
        case mkl
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The library in use (OpenBLAS until `select` loads MKL).
    public static var active: Active { mkl == nil ? .openblas : .mkl }

    /// A one-line description for reports: library, version and kernels.
    public static var summary: String {
        if let mkl {
            return "MKL \(mkl.version) (\(mkl.path), sequential, products split by ComputeThreads)"
        }
        #if canImport(Accelerate)
        return "Accelerate"
        #else
        return "OpenBLAS (\(BLASKernel.coreName ?? "unknown") kernels)"
        #endif
    }

    /// The file names tried for MKL, in order, when no path is given (`DISTILL_MKL` names one explicitly).
    public static let mklCandidates = ["libmkl_rt.so", "libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so.1"]

    /// Makes `choice` the library for every later product. Call it once, before any product, from the thread that
    /// runs the command. Returns the library now active. `.mkl` throws when MKL cannot be loaded; `.auto` falls back
    /// to OpenBLAS quietly. Switching back to OpenBLAS after MKL is allowed (tests compare the two).
    @discardableResult
    public static func select(_ choice: Choice, mklPath: String? = nil) throws -> Active {
        switch choice {
        case .openblas:
            mkl = nil
        case .mkl:
            mkl = try loadMKL(path: mklPath)
        case .auto:
            mkl = try? loadMKL(path: mklPath)
        }
        ComputeThreads.set(ComputeThreads.count)
        return active
    }

    /// The choice named by the environment variable `DISTILL_BLAS` (nil when unset or empty), or an error naming
    /// the variable and the accepted values.
    public static func choiceFromEnvironment() throws -> Choice? {
        guard let raw = ProcessInfo.processInfo.environment["DISTILL_BLAS"], !raw.isEmpty else { return nil }
        guard let choice = Choice(rawValue: raw.lowercased()) else {
            throw LoadError(description: "DISTILL_BLAS=\(raw): expected one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return choice
    }

    // MARK: MKL entry points

    @usableFromInline typealias SgemmFunction = @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
        Float, UnsafeMutablePointer<Float>?, Int32) -> Void

    @usableFromInline
    final class MKLFunctions: @unchecked Sendable {
        let path: String
        let version: String
        @usableFromInline let sgemm: SgemmFunction

        init(path: String, version: String, sgemm: SgemmFunction) {
            self.path = path
            self.version = version
            self.sgemm = sgemm
        }
    }

    /// The loaded MKL, or nil for OpenBLAS. Set only by `select`, before products run.
    @usableFromInline nonisolated(unsafe) static var mkl: MKLFunctions?

    /// One MKL load per process: `dlopen` keeps the library for good, and MKL's threading layer can be set only
    /// before its first call.
    nonisolated(unsafe) private static var loaded: [String: MKLFunctions] = [:]

    private static func loadMKL(path: String?) throws -> MKLFunctions {
        let names = path.map { [$0] }
            ?? ProcessInfo.processInfo.environment["DISTILL_MKL"].flatMap { $0.isEmpty ? nil : [$0] }
            ?? mklCandidates
        if let cached = names.lazy.compactMap({ loaded[$0] }).first { return cached }
        #if os(Linux)
        var failures: [String] = []
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
                failures.append(dlerror().map { String(cString: $0) } ?? name)
                continue
            }
            func symbol(_ s: String) -> UnsafeMutableRawPointer? { dlsym(handle, s) }
            guard let sgemm = symbol("cblas_sgemm"),
                  let setLayer = symbol("MKL_Set_Threading_Layer") else {
                failures.append("\(name): no cblas_sgemm / MKL_Set_Threading_Layer (not MKL's runtime library?)")
                dlclose(handle)
                continue
            }
            // MKL_THREADING_SEQUENTIAL = 1; must precede every other MKL call.
            typealias SetLayer = @convention(c) (Int32) -> Int32
            _ = unsafeBitCast(setLayer, to: SetLayer.self)(1)
            var version = "unknown version"
            if let getVersion = symbol("MKL_Get_Version_String") {
                typealias GetVersion = @convention(c) (UnsafeMutablePointer<CChar>?, Int32) -> Void
                var buffer = [CChar](repeating: 0, count: 256)
                unsafeBitCast(getVersion, to: GetVersion.self)(&buffer, Int32(buffer.count))
                version = String(cString: buffer).trimmingCharacters(in: .whitespaces)
                if let range = version.range(of: #"\d{4}(\.\d+)*"#, options: .regularExpression) {
                    version = String(version[range])
                }
            }
            let functions = MKLFunctions(
                path: name, version: version, sgemm: unsafeBitCast(sgemm, to: SgemmFunction.self))
            loaded[name] = functions
            return functions
        }
        throw LoadError(description: "MKL could not be loaded (tried \(names.joined(separator: ", "))): "
            + failures.joined(separator: "; ")
            + ". Install it (Debian non-free: apt-get install libmkl-rt; or pip install mkl and set DISTILL_MKL to its lib/libmkl_rt.so.N) or use --blas openblas.")
        #else
        throw LoadError(description: "MKL is supported on Linux only; use --blas openblas")
        #endif
    }
}

extension BLASLibrary {
    /// One `sgemm` call on the active library with the calling thread's BLAS threads (no splitting here).
    @inlinable
    static func callSgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if let mkl {
            // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 (the CBLAS standard's values).
            mkl.sgemm(101, transposeA ? 112 : 111, transposeB ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha, a,
                      Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        #if canImport(Accelerate) || canImport(CBLAS)
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
        GEMM.naiveGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        #endif
    }

}
