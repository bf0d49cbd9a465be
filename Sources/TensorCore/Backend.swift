/// The seam for other compute backends.
///
/// Everything above `TensorCore` does arithmetic through `Tensor` methods and `GEMM`; a GPU backend would implement
/// this protocol (device buffers plus these kernels) and `Tensor` would dispatch on the storage's device. Today the
/// only implementation is `CPUBackend`, which forwards to OpenBLAS/Accelerate and the Swift loops in this module.
public protocol ComputeBackend: Sendable {
    var name: String { get }
    /// Row-major `C = alpha * op(A) op(B) + beta * C`.
    func gemm(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float, into c: inout Tensor)
}

public struct CPUBackend: ComputeBackend {
    public init() {}
    public var name: String { "cpu (BLAS sgemm, \(ComputeThreads.count) threads)" }
    public func gemm(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float, into c: inout Tensor) {
        c.addMatmul(a, b, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
    }
}
