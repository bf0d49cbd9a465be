import TensorCore

/// One stage of a compiled model (``CompiledModel``): maps a batch `[n, ...]` to `[n, ...]` with weights it took
/// (and repacked) when it was built, so later changes to the source model do not reach it.
protocol InferenceStage: AnyObject {
    /// The stage's output for `input` (`n` examples), using up to `threads` compute threads.
    func run(_ input: Tensor, threads: Int) -> Tensor
    /// A short name for reports and benchmarks ("oneDNN convolutions (blocked layouts)", "sparse-input linear").
    var summary: String { get }
}
