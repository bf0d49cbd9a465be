// oneDNN's sgemm, opened at run time with the convolutions (see dnnl_gemm.h).
#include "dnnl_gemm.h"
#include "dnnl_convolution.h"
#include "dnnl_internal.h"

#ifndef DISTILL_HAVE_DNNL

int distill_dnnl_gemm_load(void) { return 0; }
int distill_dnnl_sgemm(int ta, int tb, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                       long ldb, float beta, float *c, long ldc) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta;
    (void)c; (void)ldc; return -1;
}

#else

int distill_dnnl_gemm_load(void) { return distill_dnnl_load(0); }

int distill_dnnl_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    if (!distill_dnnl_load(0)) return -1;
    if (f_omp_set_num_threads) f_omp_set_num_threads(1);
    return f_dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c,
                        ldc) == dnnl_success ? 0 : -1;
}

#endif
