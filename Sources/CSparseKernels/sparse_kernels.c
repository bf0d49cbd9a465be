// Sparse-input linear forward pass and weight gradient (see sparse_kernels.h for the arithmetic contracts).
//
// Forward: per block of 64 units, the block's weight rows are transposed into a scratch of 64 * cols floats (200 KB
// for 784 inputs, in the L2 cache); then for each row, four fmas of 16 units per nonzero input (its index and value
// loaded once), spread over four accumulator chains per 16 units. Gradient: see gradient_block. No compiler flags are
// needed: the AVX-512 functions here and the AVX2 ones in avx2.c carry target attributes and are chosen at run time
// (distill_sparse_fast_path); the portable paths compute the same chains one unit at a time.
#include "sparse_kernels.h"
#include "avx2.h"

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

// The widest vector path this CPU runs (2 AVX-512, 1 AVX2 + FMA, 0 none), capped by distill_sparse_limit_path.
static int path_limit = 2;

static int detected_path = -1;   // -1 until detected; read and written atomically

static int detect_path(void) {
#if DISTILL_X86
    __builtin_cpu_init();
    int p = __builtin_cpu_supports("avx512f") ? 2
          : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    if (p == 1) distill_avx2_prepare();
    return p;
#else
    return 0;
#endif
}

// Every kernel call asks, so the detected value is one atomic load (acquire: the AVX2 table built before the store
// is visible); threads that race on the first call detect the same value (distill_avx2_prepare is once-only).
int distill_sparse_cpu_path(void) {
    int p = __atomic_load_n(&detected_path, __ATOMIC_ACQUIRE);
    if (p < 0) {
        p = detect_path();
        __atomic_store_n(&detected_path, p, __ATOMIC_RELEASE);
    }
    return p;
}

int distill_sparse_fast_path(void) {
    int p = distill_sparse_cpu_path();
    return p < path_limit ? p : path_limit;
}

void distill_sparse_limit_path(int limit) {
#if DISTILL_X86
    if (limit >= 1) distill_avx2_prepare();
#endif
    path_limit = limit < 0 ? 0 : limit;
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

static void compress_columns_portable(const float *x, long rows, long ldx, long j0, long j1, int32_t *index,
                                      float *value, int32_t *count) {
    for (long j = j0; j < j1; j++) {
        int32_t *ix = index + j * rows;
        float *vx = value + j * rows;
        int32_t n = 0;
        for (long r = 0; r < rows; r++) {
            float v = x[r * ldx + j];
            if (v != 0.0f) { ix[n] = (int32_t)r; vx[n] = v; n++; }
        }
        count[j] = n;
    }
}

static void gradient_portable(long rows, const int32_t *index, const float *value, const int32_t *count, long j0,
                              long j1, const float *g, long ldg, long u0, long u1, int accumulate, float *dw,
                              long lddw) {
    for (long u = u0; u < u1; u++)
        for (long j = j0; j < j1; j++) {
            const int32_t *ix = index + j * rows;
            const float *vx = value + j * rows;
            float s = 0.0f;
            for (int32_t e = 0; e < count[j]; e++) s = fmaf(vx[e], g[(long)ix[e] * ldg + u], s);
            float *d = dw + u * lddw + j;
            *d = accumulate ? *d + s : s;
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
            // Skipped when empty: a compressing store of nothing still costs about 10x a full one here (all-zero
            // rows of transposed image columns took 150 us a batch instead of 20).
            if (nonzero) {
                _mm512_mask_compressstoreu_ps(vx + n, nonzero, v);
                _mm512_mask_compressstoreu_epi32(ix + n, nonzero, columns);
                n += __builtin_popcount((unsigned)nonzero);
            }
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

// scratch[j * 64 + i] = w[i * ldw + j] for i < units (<= 64), j < cols; lanes up to the next multiple of 16 past
// `units` are zero.
__attribute__((target("avx512f")))
static void transpose_in(const float *w, long ldw, long units, long cols, float *scratch) {
    for (long i0 = 0; i0 < units; i0 += 16) {
        const long n = units - i0 < 16 ? units - i0 : 16;
        const float *wb = w + i0 * ldw;
        long j0 = 0;
        for (; j0 + 16 <= cols; j0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = i < n ? _mm512_loadu_ps(wb + i * ldw + j0) : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_store_ps(scratch + (j0 + c) * 64 + i0, r[c]);
        }
        for (; j0 < cols; j0++)
            for (long i = 0; i < 16; i++) scratch[j0 * 64 + i0 + i] = i < n ? wb[i * ldw + j0] : 0.0f;
    }
}

// One nonzero into chain c of every sub-block: acc[c][s] += v * scratch[k][16 s ...].
#define DISTILL_FORWARD_STEP(c, k) do { \
        const __m512 v_ = _mm512_set1_ps(vx[k]); \
        const float *w_ = scratch + (long)ix[k] * 64; \
        for (int s_ = 0; s_ < subs; s_++) acc[c][s_] = _mm512_fmadd_ps(v_, _mm512_load_ps(w_ + 16 * s_), acc[c][s_]); \
    } while (0)

// Rows' outputs for one block of up to 64 units (`subs` sub-blocks of 16, a constant at each call): per row, four
// chains per sub-block over the row's nonzeros (each nonzero's index and value loaded once for all sub-blocks).
__attribute__((target("avx512f"), always_inline))
static inline void forward_block(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                                 const float *scratch, long units, const int subs, const float *bias, int relu,
                                 float *y, long ldy, const char *prefetch, long prefetch_lines) {
    __mmask16 mask[4];
    __m512 b[4];
    const __m512 zero = _mm512_setzero_ps();
    for (int s = 0; s < subs; s++) {
        long k = units - 16 * s;
        mask[s] = k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
        b[s] = bias ? _mm512_maskz_loadu_ps(mask[s], bias + 16 * s) : zero;
    }
    for (long r = 0; r < rows; r++) {
        const int32_t *ix = index + r * cols;
        const float *vx = value + r * cols;
        const int32_t n = count[r];
        if (prefetch)
            for (long l = r * prefetch_lines / rows, e = (r + 1) * prefetch_lines / rows; l < e; l++)
                _mm_prefetch(prefetch + 64 * l, _MM_HINT_T1);
        __m512 acc[4][4];
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < subs; s++) acc[c][s] = zero;
        int32_t k = 0;
        for (; k + 4 <= n; k += 4) {
            DISTILL_FORWARD_STEP(0, k);
            DISTILL_FORWARD_STEP(1, k + 1);
            DISTILL_FORWARD_STEP(2, k + 2);
            DISTILL_FORWARD_STEP(3, k + 3);
        }
        if (k < n) DISTILL_FORWARD_STEP(0, k);
        if (k + 1 < n) DISTILL_FORWARD_STEP(1, k + 1);
        if (k + 2 < n) DISTILL_FORWARD_STEP(2, k + 2);
        for (int s = 0; s < subs; s++) {
            __m512 o = _mm512_add_ps(_mm512_add_ps(acc[0][s], acc[1][s]), _mm512_add_ps(acc[2][s], acc[3][s]));
            if (bias) o = _mm512_add_ps(o, b[s]);
            if (relu) o = _mm512_mask_mov_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LT_OQ), zero);
            _mm512_mask_storeu_ps(y + r * ldy + 16 * s, mask[s], o);
        }
    }
}
#undef DISTILL_FORWARD_STEP

__attribute__((target("avx512f")))
static void forward_avx512(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                           const float *w, long ldw, long u0, long u1, const float *bias, int relu, float *y,
                           long ldy, float *scratch) {
    for (long lo = u0; lo < u1; lo += 64) {
        const long n = u1 - lo < 64 ? u1 - lo : 64;
        const float *bb = bias ? bias + lo : 0;
        transpose_in(w + lo * ldw, ldw, n, cols, scratch);
        switch ((n + 15) / 16) {
        case 1: forward_block(rows, cols, index, value, count, scratch, n, 1, bb, relu, y + lo, ldy, 0, 0); break;
        case 2: forward_block(rows, cols, index, value, count, scratch, n, 2, bb, relu, y + lo, ldy, 0, 0); break;
        case 3: forward_block(rows, cols, index, value, count, scratch, n, 3, bb, relu, y + lo, ldy, 0, 0); break;
        default: forward_block(rows, cols, index, value, count, scratch, n, 4, bb, relu, y + lo, ldy, 0, 0); break;
        }
    }
}

// strip[c * rows + r] = x[r * ldx + c] for c < n (<= 16), r < rows: 16 columns of x as rows.
__attribute__((target("avx512f")))
static void transpose_strip(const float *x, long rows, long ldx, long n, float *strip) {
    const __mmask16 mask = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    long r0 = 0;
    for (; r0 + 16 <= rows; r0 += 16) {
        __m512 t[16];
        for (int i = 0; i < 16; i++) t[i] = _mm512_maskz_loadu_ps(mask, x + (r0 + i) * ldx);
        transpose16(t);
        for (long c = 0; c < n; c++) _mm512_storeu_ps(strip + c * rows + r0, t[c]);
    }
    for (; r0 < rows; r0++)
        for (long c = 0; c < n; c++) strip[c * rows + r0] = x[r0 * ldx + c];
}

// One step of a column's chains: row r of g's block (subs x 16 units) times the broadcast input value.
#define DISTILL_GRAD_STEP(acc, row, v) do { \
        const float *gr_ = g + (long)(row) * ldg; \
        const __m512 b_ = _mm512_set1_ps(v); \
        for (int s_ = 0; s_ < subs; s_++) \
            acc[s_] = _mm512_fmadd_ps(b_, _mm512_maskz_loadu_ps(m[s_], gr_ + 16 * s_), acc[s_]); \
    } while (0)

// dw rows [lo, lo + un) (un <= 16 * subs), columns [j0, j1): per tile of 16 columns, each column's chains (two
// columns at a time: 2 * subs independent chains) into a 16 x 16 tile per 16 units, transposed in registers onto
// dw's rows. g's block (rows x 64 units: 32 KB for a batch of 128) stays in the L1 cache. `subs` is a constant at
// each call, so the accumulators live in registers and a block of 10 units does one fma per nonzero, not four.
__attribute__((target("avx512f"), always_inline))
static inline void gradient_block(long rows, const int32_t *index, const float *value, const int32_t *count, long j0,
                                  long j1, const float *g, long ldg, long lo, long un, const int subs,
                                  int accumulate, float *dw, long lddw, float tile[4][16][16]) {
    __mmask16 m[4];
    for (int s = 0; s < 4; s++) {
        long k = un - 16 * s;
        m[s] = k >= 16 ? (__mmask16)0xFFFF : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1u);
    }
    for (long jb = j0; jb < j1; jb += 16) {
        const long jn = j1 - jb < 16 ? j1 - jb : 16;
        // The next tile's rows of dw (from L3 when dw outgrows L2) load while this tile computes.
        if (jb + 16 < j1)
            for (long uu = 0; uu < un; uu++) _mm_prefetch((const char *)(dw + (lo + uu) * lddw + jb + 16), _MM_HINT_T0);
        for (long jj = 0; jj < jn; jj += 2) {
            const long ja = jb + jj;
            const int32_t *ia = index + ja * rows;
            const float *va = value + ja * rows;
            const int32_t na = count[ja];
            __m512 a[4], b[4];
            for (int s = 0; s < subs; s++) a[s] = b[s] = _mm512_setzero_ps();
            if (jj + 1 < jn) {
                const int32_t *ib = ia + rows;
                const float *vb = va + rows;
                const int32_t nb = count[ja + 1];
                const int32_t both = na < nb ? na : nb;
                int32_t e = 0;
                for (; e < both; e++) {
                    DISTILL_GRAD_STEP(a, ia[e], va[e]);
                    DISTILL_GRAD_STEP(b, ib[e], vb[e]);
                }
                for (int32_t f = e; f < na; f++) DISTILL_GRAD_STEP(a, ia[f], va[f]);
                for (int32_t f = e; f < nb; f++) DISTILL_GRAD_STEP(b, ib[f], vb[f]);
                for (int s = 0; s < subs; s++) _mm512_store_ps(tile[s][jj + 1], b[s]);
            } else {
                for (int32_t f = 0; f < na; f++) DISTILL_GRAD_STEP(a, ia[f], va[f]);
            }
            for (int s = 0; s < subs; s++) _mm512_store_ps(tile[s][jj], a[s]);
        }
        const __mmask16 columns = jn >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << jn) - 1u);
        for (int s = 0; s < subs; s++) {
            const long sn = un - 16 * s < 16 ? un - 16 * s : 16;
            __m512 t[16];
            for (int i = 0; i < 16; i++) t[i] = i < jn ? _mm512_load_ps(tile[s][i]) : _mm512_setzero_ps();
            transpose16(t);
            for (long uu = 0; uu < sn; uu++) {
                float *d = dw + (lo + 16 * s + uu) * lddw + jb;
                __m512 o = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(columns, d), t[uu]) : t[uu];
                _mm512_mask_storeu_ps(d, columns, o);
            }
        }
    }
}
#undef DISTILL_GRAD_STEP

// dw rows [u0, u1) in blocks of 64 units (the last one 16 * subs wide).
__attribute__((target("avx512f")))
static void gradient_avx512(long rows, const int32_t *index, const float *value, const int32_t *count, long j0,
                            long j1, const float *g, long ldg, long u0, long u1, int accumulate, float *dw,
                            long lddw) {
    __attribute__((aligned(64))) float tile[4][16][16];
    for (long lo = u0; lo < u1; lo += 64) {
        const long un = u1 - lo < 64 ? u1 - lo : 64;
        switch ((un + 15) / 16) {
        case 1: gradient_block(rows, index, value, count, j0, j1, g + lo, ldg, lo, un, 1, accumulate, dw, lddw, tile); break;
        case 2: gradient_block(rows, index, value, count, j0, j1, g + lo, ldg, lo, un, 2, accumulate, dw, lddw, tile); break;
        case 3: gradient_block(rows, index, value, count, j0, j1, g + lo, ldg, lo, un, 3, accumulate, dw, lddw, tile); break;
        default: gradient_block(rows, index, value, count, j0, j1, g + lo, ldg, lo, un, 4, accumulate, dw, lddw, tile); break;
        }
    }
}
#endif

// MARK: entry points

long distill_sparse_count_nonzero(const float *x, long r0, long r1, long cols, long ldx) {
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2: return count_avx512(x, r0, r1, cols, ldx);
    case 1: return distill_avx2_count(x, r0, r1, cols, ldx);
    }
#endif
    return count_portable(x, r0, r1, cols, ldx);
}

void distill_sparse_compress_rows(const float *x, long r0, long r1, long cols, long ldx, int32_t *index,
                                  float *value, int32_t *count) {
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2: compress_avx512(x, r0, r1, cols, ldx, index, value, count); return;
    case 1: distill_avx2_compress(x, r0, r1, cols, ldx, index, value, count); return;
    }
#endif
    compress_portable(x, r0, r1, cols, ldx, index, value, count);
}

void distill_sparse_linear_forward(long rows, long cols, const int32_t *index, const float *value,
                                   const int32_t *count, const float *w, long ldw, long u0, long u1,
                                   const float *bias, int relu, float *y, long ldy, float *scratch) {
    if (u1 <= u0 || rows <= 0) return;
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2: forward_avx512(rows, cols, index, value, count, w, ldw, u0, u1, bias, relu, y, ldy, scratch); return;
    case 1: distill_avx2_forward(rows, cols, index, value, count, w, ldw, u0, u1, bias, relu, y, ldy, scratch); return;
    }
#endif
    (void)scratch;
    forward_portable(rows, cols, index, value, count, w, ldw, u0, u1, bias, relu, y, ldy);
}

void distill_sparse_compress_columns(const float *x, long rows, long ldx, long j0, long j1, float *strip,
                                     int32_t *index, float *value, int32_t *count) {
    if (j1 <= j0 || rows <= 0) {
        for (long j = j0; j < j1; j++) count[j] = 0;
        return;
    }
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2:
        for (long jb = j0; jb < j1; jb += 16) {
            long n = j1 - jb < 16 ? j1 - jb : 16;
            transpose_strip(x + jb, rows, ldx, n, strip);
            compress_avx512(strip, 0, n, rows, rows, index + jb * rows, value + jb * rows, count + jb);
        }
        return;
    case 1: distill_avx2_compress_columns(x, rows, ldx, j0, j1, strip, index, value, count); return;
    }
#endif
    (void)strip;
    compress_columns_portable(x, rows, ldx, j0, j1, index, value, count);
}

void distill_sparse_weight_gradient(long rows, const int32_t *index, const float *value, const int32_t *count,
                                    long j0, long j1, const float *g, long ldg, long u0, long u1, int accumulate,
                                    float *dw, long lddw) {
    if (u1 <= u0 || j1 <= j0) return;
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2: gradient_avx512(rows, index, value, count, j0, j1, g, ldg, u0, u1, accumulate, dw, lddw); return;
    case 1: distill_avx2_weight_gradient(rows, index, value, count, j0, j1, g, ldg, u0, u1, accumulate, dw, lddw); return;
    }
#endif
    gradient_portable(rows, index, value, count, j0, j1, g, ldg, u0, u1, accumulate, dw, lddw);
}

// MARK: packed weights (inference)

long distill_sparse_packed_size(long units, long cols) { return (units + 63) / 64 * 64 * cols; }

void distill_sparse_pack_weights(const float *w, long ldw, long units, long cols, float *packed) {
    for (long lo = 0; lo < units; lo += 64) {
        float *block = packed + (lo / 64) * 64 * cols;
        for (long j = 0; j < cols; j++)
            for (long i = 0; i < 64; i++) block[j * 64 + i] = lo + i < units ? w[(lo + i) * ldw + j] : 0.0f;
    }
}

static void forward_packed_portable(long rows, long cols, const int32_t *index, const float *value,
                                    const int32_t *count, const float *packed, long u0, long u1, const float *bias,
                                    int relu, float *y, long ldy) {
    for (long r = 0; r < rows; r++) {
        const int32_t *ix = index + r * cols;
        const float *vx = value + r * cols;
        for (long u = u0; u < u1; u++) {
            const float *wu = packed + (u / 64) * 64 * cols + u % 64;
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int32_t k = 0; k < count[r]; k++) c[k & 3] = fmaf(vx[k], wu[(long)ix[k] * 64], c[k & 3]);
            float o = (c[0] + c[1]) + (c[2] + c[3]);
            if (bias) o = o + bias[u];
            y[r * ldy + u] = relu && o < 0.0f ? 0.0f : o;
        }
    }
}

#if DISTILL_X86
__attribute__((target("avx512f")))
static void forward_packed_avx512(long rows, long cols, const int32_t *index, const float *value,
                                  const int32_t *count, const float *packed, long u0, long u1, const float *bias,
                                  int relu, float *y, long ldy) {
    // A block's rows are read in the order of the inputs' nonzeros, which the hardware prefetchers cannot follow:
    // with many rows, the next block is prefetched into L2 while this one computes (spread over the rows).
    const int ahead = rows >= 32;
    if (ahead)
        for (long l = 0; l < cols * 4; l++) _mm_prefetch((const char *)(packed + (u0 / 64) * 64 * cols) + 64 * l, _MM_HINT_T1);
    for (long lo = u0; lo < u1; lo += 64) {
        const long n = u1 - lo < 64 ? u1 - lo : 64;
        const float *bb = bias ? bias + lo : 0;
        const float *block = packed + (lo / 64) * 64 * cols;
        const char *next = ahead && lo + 64 < u1 ? (const char *)(block + 64 * cols) : 0;
        const long lines = next ? cols * 4 : 0;
        switch ((n + 15) / 16) {
        case 1: forward_block(rows, cols, index, value, count, block, n, 1, bb, relu, y + lo, ldy, next, lines); break;
        case 2: forward_block(rows, cols, index, value, count, block, n, 2, bb, relu, y + lo, ldy, next, lines); break;
        case 3: forward_block(rows, cols, index, value, count, block, n, 3, bb, relu, y + lo, ldy, next, lines); break;
        default: forward_block(rows, cols, index, value, count, block, n, 4, bb, relu, y + lo, ldy, next, lines); break;
        }
    }
}
#endif

void distill_sparse_linear_forward_packed(long rows, long cols, const int32_t *index, const float *value,
                                          const int32_t *count, const float *packed, long u0, long u1,
                                          const float *bias, int relu, float *y, long ldy) {
    if (u1 <= u0 || rows <= 0) return;
#if DISTILL_X86
    switch (distill_sparse_fast_path()) {
    case 2: forward_packed_avx512(rows, cols, index, value, count, packed, u0, u1, bias, relu, y, ldy); return;
    case 1: distill_avx2_forward_packed(rows, cols, index, value, count, packed, u0, u1, bias, relu, y, ldy); return;
    }
#endif
    forward_packed_portable(rows, cols, index, value, count, packed, u0, u1, bias, relu, y, ldy);
}

// MARK: row groups (inference)

void distill_sparse_group_rows(const float *x, long ldx, long rows, long cols, int32_t *index, float *panel,
                               long ldp, int32_t *used) {
    long n = 0;
    for (long j = 0; j < cols; j++) {
        int any = 0;
        for (long r = 0; r < rows; r++) any |= x[r * ldx + j] != 0.0f;  // NaN != 0: kept
        if (!any) continue;
        index[n] = (int32_t)j;
        for (long r = 0; r < rows; r++) panel[r * ldp + n] = x[r * ldx + j];
        n++;
    }
    *used = (int32_t)n;
}

static void grouped_portable(long rows, long used, const int32_t *index, const float *panel, long ldp,
                             const float *packed, long cols, long u0, long u1, const float *bias, int relu, float *y,
                             long ldy) {
    for (long r = 0; r < rows; r++)
        for (long u = u0; u < u1; u++) {
            const float *wu = packed + (u / 64) * 64 * cols + u % 64;
            float c = 0.0f;
            for (long k = 0; k < used; k++) c = fmaf(panel[r * ldp + k], wu[(long)index[k] * 64], c);
            if (bias) c = c + bias[u];
            y[r * ldy + u] = relu && c < 0.0f ? 0.0f : c;
        }
}

#if DISTILL_X86
// Rows (R <= 6) times one packed block of up to 64 units (S <= 4 vectors of 16; both constants at each call): R * S
// accumulators, each weight vector loaded once for the R rows.
__attribute__((target("avx512f"), always_inline))
static inline void grouped_block(const int R, const int S, long used, const int32_t *index, const float *panel,
                                 long ldp, const float *block, long units, const float *bias, int relu, float *y,
                                 long ldy) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++) acc[r][s] = _mm512_setzero_ps();
    for (long k = 0; k < used; k++) {
        const float *w = block + (long)index[k] * 64;
        __m512 wv[4];
        for (int s = 0; s < S; s++) wv[s] = _mm512_load_ps(w + 16 * s);
        for (int r = 0; r < R; r++) {
            const __m512 v = _mm512_set1_ps(panel[r * ldp + k]);
            for (int s = 0; s < S; s++) acc[r][s] = _mm512_fmadd_ps(v, wv[s], acc[r][s]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int s = 0; s < S; s++) {
        const long k = units - 16 * s;
        if (k <= 0) break;
        const __mmask16 mask = k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + 16 * s) : zero;
        for (int r = 0; r < R; r++) {
            __m512 o = acc[r][s];
            if (bias) o = _mm512_add_ps(o, b);
            if (relu) o = _mm512_mask_mov_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LT_OQ), zero);
            _mm512_mask_storeu_ps(y + r * ldy + 16 * s, mask, o);
        }
    }
}

__attribute__((target("avx512f")))
static void group_rows_avx512(const float *x, long ldx, long rows, long cols, int32_t *index, float *panel, long ldp,
                              int32_t *used) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    long n = 0, j = 0;
    for (; j + 16 <= cols; j += 16) {
        __mmask16 any = 0;
        __m512 v[6];
        for (long r = 0; r < rows; r++) {
            v[r] = _mm512_loadu_ps(x + r * ldx + j);
            any |= _mm512_cmp_ps_mask(v[r], _mm512_setzero_ps(), _CMP_NEQ_UQ);
        }
        if (!any) continue;
        // Compressed in registers and stored whole (the panel and index have 16 elements of slack): a compressing
        // store to memory is microcoded on AMD's cores.
        _mm512_storeu_si512((void *)(index + n), _mm512_maskz_compress_epi32(any, _mm512_add_epi32(lanes, _mm512_set1_epi32((int)j))));
        for (long r = 0; r < rows; r++) _mm512_storeu_ps(panel + r * ldp + n, _mm512_maskz_compress_ps(any, v[r]));
        n += __builtin_popcount((unsigned)any);
    }
    for (; j < cols; j++) {
        int any = 0;
        for (long r = 0; r < rows; r++) any |= x[r * ldx + j] != 0.0f;
        if (!any) continue;
        index[n] = (int32_t)j;
        for (long r = 0; r < rows; r++) panel[r * ldp + n] = x[r * ldx + j];
        n++;
    }
    *used = (int32_t)n;
}

#define DISTILL_GROUPED_ROWS(S) do { switch (rows) { \
    case 1: grouped_block(1, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; \
    case 2: grouped_block(2, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; \
    case 3: grouped_block(3, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; \
    case 4: grouped_block(4, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; \
    case 5: grouped_block(5, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; \
    default: grouped_block(6, S, used, index, panel, ldp, block, units, bias, relu, y, ldy); break; } } while (0)

__attribute__((target("avx512f")))
static void grouped_avx512(long rows, long used, const int32_t *index, const float *panel, long ldp,
                           const float *block, long units, const float *bias, int relu, float *y, long ldy) {
    switch ((units + 15) / 16) {
    case 1: DISTILL_GROUPED_ROWS(1); break;
    case 2: DISTILL_GROUPED_ROWS(2); break;
    case 3: DISTILL_GROUPED_ROWS(3); break;
    default: DISTILL_GROUPED_ROWS(4); break;
    }
}
#undef DISTILL_GROUPED_ROWS
#endif

int distill_sparse_grouped_path(void) {
#if DISTILL_X86
    return distill_sparse_fast_path() == 2;
#else
    return 0;
#endif
}

void distill_sparse_group_rows_fast(const float *x, long ldx, long rows, long cols, int32_t *index, float *panel,
                                    long ldp, int32_t *used) {
#if DISTILL_X86
    if (distill_sparse_fast_path() == 2) { group_rows_avx512(x, ldx, rows, cols, index, panel, ldp, used); return; }
#endif
    distill_sparse_group_rows(x, ldx, rows, cols, index, panel, ldp, used);
}

void distill_sparse_linear_forward_grouped(long groups, long group_size, const int32_t *group_rows, const int32_t *used,
                                           const int32_t *index, long ldi, const float *panel, long ldp,
                                           long group_stride, const float *packed, long cols, long u0, long u1,
                                           const float *bias, int relu, float *y, long ldy) {
    if (u1 <= u0 || groups <= 0) return;
#if DISTILL_X86
    if (distill_sparse_fast_path() == 2) {
        for (long lo = u0; lo < u1;) {
            // A part may start or end inside a 64-unit block (at a multiple of 16).
            const long offset = lo % 64, n = u1 - lo < 64 - offset ? u1 - lo : 64 - offset;
            const float *block = packed + (lo / 64) * 64 * cols + offset;
            // The next block into L2 while this one computes (its rows are read in no order a prefetcher follows).
            if (lo + n < u1) {
                const char *next = (const char *)(packed + (lo / 64 + 1) * 64 * cols);
                for (long g = 0, lines = cols * 4; g < groups; g++)
                    for (long l = g * lines / groups, e = (g + 1) * lines / groups; l < e; l++)
                        _mm_prefetch(next + 64 * l, _MM_HINT_T1);
            }
            for (long g = 0; g < groups; g++)
                grouped_avx512(group_rows[g], used[g], index + g * ldi, panel + g * group_stride, ldp, block, n,
                               bias ? bias + lo : 0, relu, y + group_size * g * ldy + lo, ldy);
            lo += n;
        }
        return;
    }
#endif
    for (long g = 0; g < groups; g++)
        grouped_portable(group_rows[g], used[g], index + g * ldi, panel + g * group_stride, ldp, packed, cols, u0, u1,
                         bias, relu, y + group_size * g * ldy, ldy);
}
