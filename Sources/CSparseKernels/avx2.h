#ifndef DISTILL_SPARSE_AVX2_H
#define DISTILL_SPARSE_AVX2_H
// The AVX2 + FMA paths (avx2.c), called by the entry points in sparse_kernels.c when the CPU has AVX2 and FMA but
// not AVX-512 (or the path is capped by distill_sparse_limit_path). Same arguments and contracts as the entry points.
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
/// Builds the compression's permutation table; call once before the others (idempotent, thread-safe).
void distill_avx2_prepare(void);
long distill_avx2_count(const float *x, long r0, long r1, long cols, long ldx);
void distill_avx2_compress(const float *x, long r0, long r1, long cols, long ldx, int32_t *index, float *value,
                           int32_t *count);
void distill_avx2_compress_columns(const float *x, long rows, long ldx, long j0, long j1, float *strip,
                                   int32_t *index, float *value, int32_t *count);
void distill_avx2_forward(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                          const float *w, long ldw, long u0, long u1, const float *bias, int relu, float *y,
                          long ldy, float *scratch);
void distill_avx2_forward_packed(long rows, long cols, const int32_t *index, const float *value,
                                 const int32_t *count, const float *packed, long u0, long u1,
                                 const float *bias, int relu, float *y, long ldy);
void distill_avx2_weight_gradient(long rows, const int32_t *index, const float *value, const int32_t *count,
                                  long j0, long j1, const float *g, long ldg, long u0, long u1, int accumulate,
                                  float *dw, long lddw);
#endif
#endif
