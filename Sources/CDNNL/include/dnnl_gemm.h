#ifndef DISTILL_DNNL_GEMM_H
#define DISTILL_DNNL_GEMM_H

/// oneDNN's sgemm (`dnnl_sgemm`, its JIT kernels for the CPU it runs on), opened at run time like the
/// convolutions: the package builds and runs without it. Used for inference, where a CPU's widest vectors matter
/// and the BLAS library may be held to narrower kernels (`OPENBLAS_CORETYPE`).

/// 1 when oneDNN loaded (`distill_dnnl_load`, which resolves `dnnl_sgemm` with the other entry points), else 0.
int distill_dnnl_gemm_load(void);

/// Row-major c[m x n] = alpha * op(a) * op(b) + beta * c, op transposing when `transpose_*` is nonzero (a is
/// [m x k] or [k x m], b [k x n] or [n x k]). Runs on the calling thread only (oneDNN's OpenMP pool held at one
/// thread there). Returns 0 on success.
int distill_dnnl_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc);

#endif
