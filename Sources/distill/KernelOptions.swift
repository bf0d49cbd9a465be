import ArgumentParser
import Foundation
import TensorCore

extension BLASLibrary.Choice: ExpressibleByArgument {}

/// `--blas` and `--dense-inputs`: which kernels run the matrix products, shared by every command that computes.
struct KernelOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "BLAS for matrix products: openblas (linked; the default), mkl (Intel oneMKL, loaded at run time from libmkl_rt: Debian non-free's libmkl-rt, or pip's mkl with DISTILL_MKL=/path/to/lib/libmkl_rt.so.3), or auto (mkl when it loads, else openblas). Default: $DISTILL_BLAS, else openblas. Results differ between libraries in the last bits.",
        valueName: "library"))
    var blas: BLASLibrary.Choice?

    @Flag(name: .customLong("dense-inputs"), help: ArgumentHelp(
        "Multiply mostly-zero inputs (such as MNIST's images, about 19% nonzero) with BLAS too. By default, on CPUs with AVX-512 or AVX2, the forward pass and weight gradient of a layer whose input (32 rows or more) is at most 30% nonzero multiply only the nonzeros (faster; results differ from the dense product in the last bits, and a run resumes only with the choice it started with)."))
    var denseInputs = false

    /// The choice from the flag, else `DISTILL_BLAS`, else OpenBLAS.
    func choice() throws -> BLASLibrary.Choice {
        if let blas { return blas }
        do { return try BLASLibrary.choiceFromEnvironment() ?? .openblas } catch { throw ValidationError("\(error)") }
    }

    /// Loads the chosen library before any product runs (an error names the flag and what to install), sets whether
    /// sparse inputs take their own kernels and, when `announce`, says on stderr which library when it is not the
    /// default.
    @discardableResult
    func apply(announce: Bool = true) throws -> BLASLibrary.Active {
        SparseKernels.enabled = !denseInputs
        let choice = try choice()
        let active: BLASLibrary.Active
        do { active = try BLASLibrary.select(choice) } catch { throw ValidationError("--blas \(choice.rawValue): \(error)") }
        if announce && (active == .mkl || choice != .openblas) {
            FileHandle.standardError.write(Data("BLAS: \(BLASLibrary.summary)\n".utf8))
        }
        return active
    }
}
