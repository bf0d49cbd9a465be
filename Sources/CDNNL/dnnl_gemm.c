// oneDNN's sgemm, opened at run time (see dnnl_gemm.h).
#include "dnnl_gemm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

// dnnl_sgemm's signature in oneDNN 2.x (dnnl.h): dims are int64_t, the status an int-sized enum.
typedef int (*sgemm_fn)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                        int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sgemm_fn sgemm;
static void (*set_threads)(int);

static void load(void) {
    void *handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) return;
    set_threads = (void (*)(int))dlsym(handle, "omp_set_num_threads");
    sgemm = (sgemm_fn)dlsym(handle, "dnnl_sgemm");
}

int distill_dnnl_gemm_load(void) {
    pthread_once(&once, load);
    return sgemm != 0;
}

int distill_dnnl_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    if (!distill_dnnl_gemm_load()) return -1;
    if (set_threads) set_threads(1);
    return sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
