// Sparse-input linear forward pass (see sparse_kernels.h for the arithmetic contract).
//
// Per block of 16 units, the block's weight rows are transposed into a scratch of 16 * cols floats (50 KB for 784
// inputs, about the size of the L1 cache); then for each row, one fma of 16 units per nonzero input, spread over four
// accumulator chains. No compiler flags are needed: the AVX-512 functions carry target attributes and are chosen at
// run time; the portable path computes the same chains one unit at a time.
#include "sparse_kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define DISTILL_X86 1
#else
#define DISTILL_X86 0
#endif

struct thread_scratch { size_t bytes; void *data; };
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok = 0;

static void scratch_release(void *p) {
    struct thread_scratch *s = p;
    free(s->data);
    free(s);
}

static void scratch_key_create(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_release) == 0; }

void *distill_sparse_thread_scratch(size_t bytes) {
    pthread_once(&scratch_once, scratch_key_create);
    if (!scratch_key_ok) return NULL;
    struct thread_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) { free(s); return NULL; }
    }
    if (s->bytes < bytes || !s->data) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
        free(s->data);
        s->data = p;
        s->bytes = bytes;
    }
    return s->data;
}

int distill_sparse_fast_path(void) {
#if DISTILL_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

// MARK: portable paths

static long count_portable(const float *x, long r0, long r1, long cols, long ldx) {
    long n = 0;
    for (long r = r0; r < r1; r++)
        for (long j = 0; j < cols; j++) n += x[r * ldx + j] != 0.0f;
    return n;
}

static void compress_portable(const float *x, long r0, long r1, long cols, long ldx, int32_t *index, float *value,
                              int32_t *count) {
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * ldx;
        int32_t *ix = index + r * cols;
        float *vx = value + r * cols;
        int32_t n = 0;
        for (long j = 0; j < cols; j++) {
            float v = row[j];
            if (v != 0.0f) { ix[n] = (int32_t)j; vx[n] = v; n++; }
        }
        count[r] = n;
    }
}

static void forward_portable(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                             const float *w, long ldw, long u0, long u1, const float *bias, int relu, float *y,
                             long ldy) {
    for (long r = 0; r < rows; r++) {
        const int32_t *ix = index + r * cols;
        const float *vx = value + r * cols;
        for (long u = u0; u < u1; u++) {
            const float *wu = w + u * ldw;
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int32_t k = 0; k < count[r]; k++) c[k & 3] = fmaf(vx[k], wu[ix[k]], c[k & 3]);
            float o = (c[0] + c[1]) + (c[2] + c[3]);
            if (bias) o = o + bias[u];
            y[r * ldy + u] = relu && o < 0.0f ? 0.0f : o;
        }
    }
}

// MARK: AVX-512 paths

#if DISTILL_X86
__attribute__((target("avx512f")))
static long count_avx512(const float *x, long r0, long r1, long cols, long ldx) {
    long n = 0;
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * ldx;
        long j = 0;
        for (; j + 16 <= cols; j += 16)
            n += __builtin_popcount((unsigned)_mm512_cmp_ps_mask(_mm512_loadu_ps(row + j), _mm512_setzero_ps(), _CMP_NEQ_UQ));
        for (; j < cols; j++) n += row[j] != 0.0f;
    }
    return n;
}

__attribute__((target("avx512f")))
static void compress_avx512(const float *x, long r0, long r1, long cols, long ldx, int32_t *index, float *value,
                            int32_t *count) {
    const __m512i step = _mm512_set1_epi32(16);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * ldx;
        int32_t *ix = index + r * cols;
        float *vx = value + r * cols;
        long n = 0, j = 0;
        __m512i columns = lanes;
        for (; j + 16 <= cols; j += 16) {
            __m512 v = _mm512_loadu_ps(row + j);
            // Not equal, unordered: NaN counts as nonzero, as in the portable path.
            __mmask16 nonzero = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            _mm512_mask_compressstoreu_ps(vx + n, nonzero, v);
            _mm512_mask_compressstoreu_epi32(ix + n, nonzero, columns);
            n += __builtin_popcount((unsigned)nonzero);
            columns = _mm512_add_epi32(columns, step);
        }
        for (; j < cols; j++) {
            float v = row[j];
            if (v != 0.0f) { ix[n] = (int32_t)j; vx[n] = v; n++; }
        }
        count[r] = (int32_t)n;
    }
}

// In-register transpose of a 16 x 16 tile: r[i] holds row i; afterwards r[c] holds column c.
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // r[4g + c], 128-bit lane L: rows 4g...4g+3 at column 4L + c. Transpose the lanes.
    __m512 o[16];
    for (int c = 0; c < 4; c++) {
        __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
        __m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
        o[c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        o[4 + c] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        o[8 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        o[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = o[i];
}

// scratch[j * 16 + i] = w[i * ldw + j] for i < units (<= 16), j < cols; lanes i >= units are zero.
__attribute__((target("avx512f")))
static void transpose_in(const float *w, long ldw, long units, long cols, float *scratch) {
    long j0 = 0;
    if (units == 16) {
        for (; j0 + 16 <= cols; j0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(w + i * ldw + j0);
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(scratch + (j0 + c) * 16, r[c]);
        }
    }
    for (; j0 < cols; j0++)
        for (long i = 0; i < 16; i++) scratch[j0 * 16 + i] = i < units ? w[i * ldw + j0] : 0.0f;
}

__attribute__((target("avx512f")))
static void forward_block(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                          const float *scratch, long units, const float *bias, int relu, float *y, long ldy) {
    const __mmask16 mask = units >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << units) - 1u);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : zero;
    for (long r = 0; r < rows; r++) {
        const int32_t *ix = index + r * cols;
        const float *vx = value + r * cols;
        const int32_t n = count[r];
        __m512 c0 = zero, c1 = zero, c2 = zero, c3 = zero;
        int32_t k = 0;
        for (; k + 4 <= n; k += 4) {
            c0 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k]), _mm512_loadu_ps(scratch + (long)ix[k] * 16), c0);
            c1 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k + 1]), _mm512_loadu_ps(scratch + (long)ix[k + 1] * 16), c1);
            c2 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k + 2]), _mm512_loadu_ps(scratch + (long)ix[k + 2] * 16), c2);
            c3 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k + 3]), _mm512_loadu_ps(scratch + (long)ix[k + 3] * 16), c3);
        }
        if (k < n) c0 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k]), _mm512_loadu_ps(scratch + (long)ix[k] * 16), c0);
        if (k + 1 < n) c1 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k + 1]), _mm512_loadu_ps(scratch + (long)ix[k + 1] * 16), c1);
        if (k + 2 < n) c2 = _mm512_fmadd_ps(_mm512_set1_ps(vx[k + 2]), _mm512_loadu_ps(scratch + (long)ix[k + 2] * 16), c2);
        __m512 o = _mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3));
        if (bias) o = _mm512_add_ps(o, b);
        if (relu) o = _mm512_mask_mov_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LT_OQ), zero);
        _mm512_mask_storeu_ps(y + r * ldy, mask, o);
    }
}
#endif

// MARK: entry points

long distill_sparse_count_nonzero(const float *x, long r0, long r1, long cols, long ldx) {
#if DISTILL_X86
    if (distill_sparse_fast_path()) return count_avx512(x, r0, r1, cols, ldx);
#endif
    return count_portable(x, r0, r1, cols, ldx);
}

void distill_sparse_compress_rows(const float *x, long r0, long r1, long cols, long ldx, int32_t *index,
                                  float *value, int32_t *count) {
#if DISTILL_X86
    if (distill_sparse_fast_path()) { compress_avx512(x, r0, r1, cols, ldx, index, value, count); return; }
#endif
    compress_portable(x, r0, r1, cols, ldx, index, value, count);
}

void distill_sparse_linear_forward(long rows, long cols, const int32_t *index, const float *value,
                                   const int32_t *count, const float *w, long ldw, long u0, long u1,
                                   const float *bias, int relu, float *y, long ldy, float *scratch) {
    if (u1 <= u0 || rows <= 0) return;
#if DISTILL_X86
    if (distill_sparse_fast_path()) {
        for (long lo = u0; lo < u1; lo += 16) {
            long n = u1 - lo < 16 ? u1 - lo : 16;
            transpose_in(w + lo * ldw, ldw, n, cols, scratch);
            forward_block(rows, cols, index, value, count, scratch, n, bias ? bias + lo : 0, relu, y + lo, ldy);
        }
        return;
    }
#endif
    (void)scratch;
    forward_portable(rows, cols, index, value, count, w, ldw, u0, u1, bias, relu, y, ldy);
}
