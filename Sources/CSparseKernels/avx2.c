// AVX2 + FMA paths of the sparse kernels (x86-64 CPUs without AVX-512: AMD Zen 1-3, Intel Haswell to Comet Lake).
//
// The same arithmetic as the portable and AVX-512 paths (sparse_kernels.h): per output, the forward pass's four fma
// chains over the row's nonzeros (chain c takes the k-th nonzero for k = c mod 4) summed as (c0 + c1) + (c2 + c3),
// and the weight gradient's single chain over the column's nonzero rows in row order. Only the vector width and the
// blocking differ: 8 units per vector, blocks of 32 units, so the bits equal the other paths' on every input.
//
// Forward: 16 ymm registers do not hold four chains of 32 units (16 accumulators) plus the broadcast input, so each
// row takes two passes over its nonzeros: chains 0 and 1 (k = 0, 1 mod 4), summed, then chains 2 and 3 with that sum
// held in 4 registers (13 live). Per nonzero: its index, its broadcast value and 4 loads of the transposed weight
// block for 4 fmas; measured on Zen 3 at about one fma per cycle (of two), 0.40x OpenBLAS's sgemm time for MNIST's
// first layer. One pass of four chains on 8, 16 or 24 units was slower (Benchmarks.md, the AVX2 kernels).
#include "avx2.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>

#define AVX2_TARGET __attribute__((target("avx2,fma,popcnt")))

// MARK: compression

// avx2_lut[m] lists the set bits of m (lanes of a nonzero mask) in increasing order, then zeros: a permutation that packs
// the selected lanes to the front (AVX2 has no compressing store).
static int32_t avx2_lut[256][8];
static pthread_once_t avx2_lut_once = PTHREAD_ONCE_INIT;

static void avx2_lut_build(void) {
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int lane = 0; lane < 8; lane++)
            if (m & (1 << lane)) avx2_lut[m][n++] = lane;
        for (; n < 8; n++) avx2_lut[m][n] = 0;
    }
}

void distill_avx2_prepare(void) { pthread_once(&avx2_lut_once, avx2_lut_build); }

AVX2_TARGET long distill_avx2_count(const float *x, long r0, long r1, long cols, long ldx) {
    long n = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * ldx;
        long j = 0;
        for (; j + 8 <= cols; j += 8)
            n += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + j), zero, _CMP_NEQ_UQ)));
        for (; j < cols; j++) n += row[j] != 0.0f;
    }
    return n;
}

// Row r's nonzeros to index/value[r * cols ...]. Each chunk of 8 stores 8 lanes at the current end (the packed
// nonzeros first): n <= j, so the store ends before column j + 8 <= cols, inside the row's own region.
AVX2_TARGET void distill_avx2_compress(const float *x, long r0, long r1, long cols, long ldx, int32_t *index,
                                       float *value, int32_t *count) {
    const __m256 zero = _mm256_setzero_ps();
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * ldx;
        int32_t *ix = index + r * cols;
        float *vx = value + r * cols;
        long n = 0, j = 0;
        for (; j + 8 <= cols; j += 8) {
            __m256 v = _mm256_loadu_ps(row + j);
            // Not equal, unordered: NaN counts as nonzero, as in the portable path.
            unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
            if (m) {
                __m256i perm = _mm256_loadu_si256((const __m256i *)avx2_lut[m]);
                _mm256_storeu_ps(vx + n, _mm256_permutevar8x32_ps(v, perm));
                _mm256_storeu_si256((__m256i *)(ix + n), _mm256_add_epi32(perm, _mm256_set1_epi32((int)j)));
                n += __builtin_popcount(m);
            }
        }
        for (; j < cols; j++) {
            float v = row[j];
            if (v != 0.0f) { ix[n] = (int32_t)j; vx[n] = v; n++; }
        }
        count[r] = (int32_t)n;
    }
}

// In-register transpose of an 8 x 8 tile: r[i] holds row i; afterwards r[c] holds column c.
AVX2_TARGET static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {
        u[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

AVX2_TARGET static inline __m256i lanes_below(long n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// strip[c * rows + r] = x[r * ldx + c] for c < n (<= 8), r < rows: 8 columns of x as rows.
AVX2_TARGET static void avx2_transpose_strip(const float *x, long rows, long ldx, long n, float *strip) {
    const __m256i mask = lanes_below(n);
    long r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8) {
        __m256 t[8];
        for (int i = 0; i < 8; i++)
            t[i] = n >= 8 ? _mm256_loadu_ps(x + (r0 + i) * ldx) : _mm256_maskload_ps(x + (r0 + i) * ldx, mask);
        transpose8(t);
        for (long c = 0; c < n; c++) _mm256_storeu_ps(strip + c * rows + r0, t[c]);
    }
    for (; r0 < rows; r0++)
        for (long c = 0; c < n; c++) strip[c * rows + r0] = x[r0 * ldx + c];
}

AVX2_TARGET void distill_avx2_compress_columns(const float *x, long rows, long ldx, long j0, long j1, float *strip,
                                               int32_t *index, float *value, int32_t *count) {
    for (long jb = j0; jb < j1; jb += 8) {
        long n = j1 - jb < 8 ? j1 - jb : 8;
        avx2_transpose_strip(x + jb, rows, ldx, n, strip);
        distill_avx2_compress(strip, 0, n, rows, rows, index + jb * rows, value + jb * rows, count + jb);
    }
}

// MARK: forward

// scratch[j * 32 + i] = w[i * ldw + j] for i < units (<= 32), j < cols; lanes up to the next multiple of 8 past
// `units` are zero.
AVX2_TARGET static void avx2_transpose_in(const float *w, long ldw, long units, long cols, float *scratch) {
    for (long i0 = 0; i0 < units; i0 += 8) {
        const long n = units - i0 < 8 ? units - i0 : 8;
        const float *wb = w + i0 * ldw;
        long j0 = 0;
        for (; j0 + 8 <= cols; j0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = i < n ? _mm256_loadu_ps(wb + i * ldw + j0) : _mm256_setzero_ps();
            transpose8(r);
            for (int c = 0; c < 8; c++) _mm256_store_ps(scratch + (j0 + c) * 32 + i0, r[c]);
        }
        for (; j0 < cols; j0++)
            for (long i = 0; i < 8; i++) scratch[j0 * 32 + i0 + i] = i < n ? wb[i * ldw + j0] : 0.0f;
    }
}

// Nonzero k into the accumulators acc[s] of every sub-block: acc[s] += v * scratch[k][8 s ...].
#define FORWARD_STEP(acc, k) do { \
        const __m256 v_ = _mm256_broadcast_ss(vx + (k)); \
        const float *w_ = scratch + (long)ix[k] * lds; \
        for (int s_ = 0; s_ < subs; s_++) acc[s_] = _mm256_fmadd_ps(v_, _mm256_load_ps(w_ + 8 * s_), acc[s_]); \
    } while (0)

// Rows' outputs for one block of up to 32 units (`subs` sub-blocks of 8, a constant at each call); the block's
// transposed weights have row stride `lds` (32 in the scratch, 64 in a packed block).
AVX2_TARGET __attribute__((always_inline))
static inline void avx2_forward_block(long rows, long cols, const int32_t *index, const float *value, const int32_t *count,
                                 const float *scratch, long lds, long units, const int subs, const float *bias, int relu,
                                 float *y, long ldy) {
    __m256i mask[4];
    __m256 b[4];
    const __m256 zero = _mm256_setzero_ps();
    for (int s = 0; s < subs; s++) {
        mask[s] = lanes_below(units - 8 * s);
        b[s] = bias ? _mm256_maskload_ps(bias + 8 * s, mask[s]) : zero;
    }
    for (long r = 0; r < rows; r++) {
        const int32_t *ix = index + r * cols;
        const float *vx = value + r * cols;
        const int32_t n = count[r];
        const int32_t full = n & ~3;
        __m256 a0[4], a1[4], sum[4];
        for (int s = 0; s < subs; s++) a0[s] = a1[s] = zero;
        // Chains 0 and 1: nonzeros k = 0, 1 mod 4.
        for (int32_t k = 0; k < full; k += 4) {
            FORWARD_STEP(a0, k);
            FORWARD_STEP(a1, k + 1);
        }
        if (full < n) FORWARD_STEP(a0, full);
        if (full + 1 < n) FORWARD_STEP(a1, full + 1);
        for (int s = 0; s < subs; s++) { sum[s] = _mm256_add_ps(a0[s], a1[s]); a0[s] = a1[s] = zero; }
        // Chains 2 and 3: k = 2, 3 mod 4.
        for (int32_t k = 0; k < full; k += 4) {
            FORWARD_STEP(a0, k + 2);
            FORWARD_STEP(a1, k + 3);
        }
        if (full + 2 < n) FORWARD_STEP(a0, full + 2);
        for (int s = 0; s < subs; s++) {
            __m256 o = _mm256_add_ps(sum[s], _mm256_add_ps(a0[s], a1[s]));
            if (bias) o = _mm256_add_ps(o, b[s]);
            if (relu) o = _mm256_blendv_ps(o, zero, _mm256_cmp_ps(o, zero, _CMP_LT_OQ));
            float *out = y + r * ldy + 8 * s;
            if (units - 8 * s >= 8) _mm256_storeu_ps(out, o);
            else _mm256_maskstore_ps(out, mask[s], o);
        }
    }
}
#undef FORWARD_STEP

AVX2_TARGET void distill_avx2_forward(long rows, long cols, const int32_t *index, const float *value,
                                      const int32_t *count, const float *w, long ldw, long u0, long u1,
                                      const float *bias, int relu, float *y, long ldy, float *scratch) {
    for (long lo = u0; lo < u1; lo += 32) {
        const long n = u1 - lo < 32 ? u1 - lo : 32;
        const float *bb = bias ? bias + lo : 0;
        avx2_transpose_in(w + lo * ldw, ldw, n, cols, scratch);
        switch ((n + 7) / 8) {
        case 1: avx2_forward_block(rows, cols, index, value, count, scratch, 32, n, 1, bb, relu, y + lo, ldy); break;
        case 2: avx2_forward_block(rows, cols, index, value, count, scratch, 32, n, 2, bb, relu, y + lo, ldy); break;
        case 3: avx2_forward_block(rows, cols, index, value, count, scratch, 32, n, 3, bb, relu, y + lo, ldy); break;
        default: avx2_forward_block(rows, cols, index, value, count, scratch, 32, n, 4, bb, relu, y + lo, ldy); break;
        }
    }
}

AVX2_TARGET void distill_avx2_forward_packed(long rows, long cols, const int32_t *index, const float *value,
                                             const int32_t *count, const float *packed, long u0, long u1,
                                             const float *bias, int relu, float *y, long ldy) {
    for (long lo = u0; lo < u1; lo += 32) {
        const long n = u1 - lo < 32 ? u1 - lo : 32;
        const float *bb = bias ? bias + lo : 0;
        // Packed blocks hold 64 units: this half starts 32 lanes in when lo is not a multiple of 64.
        const float *block = packed + (lo / 64) * 64 * cols + lo % 64;
        switch ((n + 7) / 8) {
        case 1: avx2_forward_block(rows, cols, index, value, count, block, 64, n, 1, bb, relu, y + lo, ldy); break;
        case 2: avx2_forward_block(rows, cols, index, value, count, block, 64, n, 2, bb, relu, y + lo, ldy); break;
        case 3: avx2_forward_block(rows, cols, index, value, count, block, 64, n, 3, bb, relu, y + lo, ldy); break;
        default: avx2_forward_block(rows, cols, index, value, count, block, 64, n, 4, bb, relu, y + lo, ldy); break;
        }
    }
}

// MARK: weight gradient

// One step of a column's chains: row `row` of g's block (subs x 8 units) times the broadcast input value. Only the
// last sub-block of a partial block loads with a mask (`partial`, a constant at each call).
#define GRAD_STEP(acc, row, v) do { \
        const float *gr_ = g + (long)(row) * ldg; \
        const __m256 b_ = _mm256_set1_ps(v); \
        for (int s_ = 0; s_ < subs; s_++) { \
            const __m256 l_ = partial && s_ == subs - 1 ? _mm256_maskload_ps(gr_ + 8 * s_, last) \
                                                        : _mm256_loadu_ps(gr_ + 8 * s_); \
            acc[s_] = _mm256_fmadd_ps(b_, l_, acc[s_]); \
        } \
    } while (0)

// dw rows [lo, lo + un) (un <= 8 * subs), columns [j0, j1): per tile of 8 columns, each column's chain (two columns
// at a time: 2 * subs independent chains) into an 8 x 8 tile per 8 units, transposed in registers onto dw's rows.
// g's block (rows x 32 units: 16 KB for a batch of 128) stays in the L1 cache.
AVX2_TARGET __attribute__((always_inline))
static inline void avx2_gradient_block(long rows, const int32_t *index, const float *value, const int32_t *count, long j0,
                                  long j1, const float *g, long ldg, long lo, long un, const int subs,
                                  const int partial, int accumulate, float *dw, long lddw, float tile[4][8][8]) {
    const __m256i last = lanes_below(un - 8 * (subs - 1));
    for (long jb = j0; jb < j1; jb += 8) {
        const long jn = j1 - jb < 8 ? j1 - jb : 8;
        if (jb + 8 < j1)
            for (long uu = 0; uu < un; uu++) _mm_prefetch((const char *)(dw + (lo + uu) * lddw + jb + 8), _MM_HINT_T0);
        for (long jj = 0; jj < jn; jj += 2) {
            const long ja = jb + jj;
            const int32_t *ia = index + ja * rows;
            const float *va = value + ja * rows;
            const int32_t na = count[ja];
            __m256 a[4], b[4];
            for (int s = 0; s < subs; s++) a[s] = b[s] = _mm256_setzero_ps();
            if (jj + 1 < jn) {
                const int32_t *ib = ia + rows;
                const float *vb = va + rows;
                const int32_t nb = count[ja + 1];
                const int32_t both = na < nb ? na : nb;
                int32_t e = 0;
                for (; e < both; e++) {
                    GRAD_STEP(a, ia[e], va[e]);
                    GRAD_STEP(b, ib[e], vb[e]);
                }
                for (int32_t f = e; f < na; f++) GRAD_STEP(a, ia[f], va[f]);
                for (int32_t f = e; f < nb; f++) GRAD_STEP(b, ib[f], vb[f]);
                for (int s = 0; s < subs; s++) _mm256_store_ps(tile[s][jj + 1], b[s]);
            } else {
                for (int32_t f = 0; f < na; f++) GRAD_STEP(a, ia[f], va[f]);
            }
            for (int s = 0; s < subs; s++) _mm256_store_ps(tile[s][jj], a[s]);
        }
        const __m256i columns = lanes_below(jn);
        for (int s = 0; s < subs; s++) {
            const long sn = un - 8 * s < 8 ? un - 8 * s : 8;
            __m256 t[8];
            for (int i = 0; i < 8; i++) t[i] = i < jn ? _mm256_load_ps(tile[s][i]) : _mm256_setzero_ps();
            transpose8(t);
            for (long uu = 0; uu < sn; uu++) {
                float *d = dw + (lo + 8 * s + uu) * lddw + jb;
                if (jn == 8) {
                    _mm256_storeu_ps(d, accumulate ? _mm256_add_ps(_mm256_loadu_ps(d), t[uu]) : t[uu]);
                } else {
                    __m256 o = accumulate ? _mm256_add_ps(_mm256_maskload_ps(d, columns), t[uu]) : t[uu];
                    _mm256_maskstore_ps(d, columns, o);
                }
            }
        }
    }
}
#undef GRAD_STEP

AVX2_TARGET void distill_avx2_weight_gradient(long rows, const int32_t *index, const float *value,
                                              const int32_t *count, long j0, long j1, const float *g, long ldg,
                                              long u0, long u1, int accumulate, float *dw, long lddw) {
    __attribute__((aligned(32))) float tile[4][8][8];
    for (long lo = u0; lo < u1; lo += 32) {
        const long un = u1 - lo < 32 ? u1 - lo : 32;
        const int subs = (int)((un + 7) / 8);
        const float *gb = g + lo;
#define GRAD_CALL(S, P) avx2_gradient_block(rows, index, value, count, j0, j1, gb, ldg, lo, un, S, P, accumulate, dw, lddw, tile)
        if (un % 8 == 0) {
            switch (subs) {
            case 1: GRAD_CALL(1, 0); break;
            case 2: GRAD_CALL(2, 0); break;
            case 3: GRAD_CALL(3, 0); break;
            default: GRAD_CALL(4, 0); break;
            }
        } else {
            switch (subs) {
            case 1: GRAD_CALL(1, 1); break;
            case 2: GRAD_CALL(2, 1); break;
            case 3: GRAD_CALL(3, 1); break;
            default: GRAD_CALL(4, 1); break;
            }
        }
#undef GRAD_CALL
    }
}
#endif
