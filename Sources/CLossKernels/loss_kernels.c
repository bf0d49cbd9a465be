// See loss_kernels.h. One body, written with the compiler's generic vectors, is compiled three times: 16 lanes for
// AVX-512, 8 for AVX2 + FMA (each under its target attribute, so no flags are needed), 4 for the portable path.
#include "loss_kernels.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Two rows of exponentials per thread, kept between calls (grown as needed; a few hundred KiB at 128k classes).
static _Thread_local float *scratch_buffer = NULL;
static _Thread_local long scratch_capacity = 0;
static float *scratch(long n) {
    if (n > scratch_capacity) {
        float *grown = realloc(scratch_buffer, (size_t)n * sizeof(float));
        if (!grown) return NULL;
        scratch_buffer = grown;
        scratch_capacity = n;
    }
    return scratch_buffer;
}

// exp: x = n ln2 + r, |r| <= ln2/2, e^r by the Cephes degree-6 polynomial, 2^n through the exponent bits.
#define EXP_HI 88.3762626647949f
#define EXP_LO -87.3365447505531f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define P0 1.9875691500E-4f
#define P1 1.3981999507E-3f
#define P2 8.3334519073E-3f
#define P3 4.1665795894E-2f
#define P4 1.6666665459E-1f
#define P5 5.0000001201E-1f
// log: x = m 2^e, m in [sqrt(1/2), sqrt(2)), log m by the Cephes polynomial.
#define SQRTHF 0.707106781186547524f
#define L0 7.0376836292E-2f
#define L1 -1.1514610310E-1f
#define L2 1.1676998740E-1f
#define L3 -1.2420140846E-1f
#define L4 1.4249322787E-1f
#define L5 -1.6668057665E-1f
#define L6 2.0000714765E-1f
#define L7 -2.4999993993E-1f
#define L8 3.3333331174E-1f

#define DEFINE_KERNEL(SUFFIX, W, TARGET)                                                                              \
typedef float vf_##SUFFIX __attribute__((vector_size(4 * W)));                                                      \
typedef int32_t vi_##SUFFIX __attribute__((vector_size(4 * W)));                                                    \
TARGET static inline vf_##SUFFIX splat_##SUFFIX(float v) { vf_##SUFFIX r; for (int i = 0; i < W; i++) r[i] = v; return r; } \
TARGET static inline vf_##SUFFIX load_##SUFFIX(const float *p) { vf_##SUFFIX r; memcpy(&r, p, sizeof r); return r; }  \
TARGET static inline void store_##SUFFIX(float *p, vf_##SUFFIX v) { memcpy(p, &v, sizeof v); }                        \
/* mask lanes (-1 or 0, as comparisons give them) choose a, others b */                                             \
TARGET static inline vf_##SUFFIX sel_##SUFFIX(vi_##SUFFIX mask, vf_##SUFFIX a, vf_##SUFFIX b) {                      \
    vi_##SUFFIX ia, ib; memcpy(&ia, &a, sizeof ia); memcpy(&ib, &b, sizeof ib);                                       \
    vi_##SUFFIX r = (mask & ia) | (~mask & ib); vf_##SUFFIX f; memcpy(&f, &r, sizeof f); return f;                    \
}                                                                                                                    \
TARGET static inline vf_##SUFFIX vmax_##SUFFIX(vf_##SUFFIX a, vf_##SUFFIX b) { return sel_##SUFFIX(a > b, a, b); }  \
TARGET static inline vf_##SUFFIX vexp_##SUFFIX(vf_##SUFFIX x) {                                                     \
    x = vmax_##SUFFIX(x, splat_##SUFFIX(EXP_LO));                                                                   \
    x = sel_##SUFFIX(x < splat_##SUFFIX(EXP_HI), x, splat_##SUFFIX(EXP_HI));                                         \
    vf_##SUFFIX fx = x * LOG2E + 0.5f;                                                                               \
    vi_##SUFFIX n = __builtin_convertvector(fx, vi_##SUFFIX);                                                        \
    vf_##SUFFIX nf = __builtin_convertvector(n, vf_##SUFFIX);                                                        \
    nf = sel_##SUFFIX(nf > fx, nf - 1.0f, nf); /* floor */                                                          \
    n = __builtin_convertvector(nf, vi_##SUFFIX);                                                                    \
    vf_##SUFFIX r = x - nf * LN2_HI - nf * LN2_LO;                                                                   \
    vf_##SUFFIX r2 = r * r;                                                                                          \
    vf_##SUFFIX y = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;                                         \
    y = y * r2 + r + 1.0f;                                                                                           \
    vi_##SUFFIX bits = (n + 127) << 23;                                                                              \
    vf_##SUFFIX scale; memcpy(&scale, &bits, sizeof scale);                                                          \
    return y * scale;                                                                                                \
}                                                                                                                    \
TARGET static inline vf_##SUFFIX vlog_##SUFFIX(vf_##SUFFIX x) { /* x > 0, finite */                                 \
    vi_##SUFFIX sub = x < 1.17549435e-38f; /* subnormals: scaled by 2^23 first */                                    \
    x = sel_##SUFFIX(sub, x * 8388608.0f, x);                                                                        \
    vi_##SUFFIX bits; memcpy(&bits, &x, sizeof bits);                                                                \
    vi_##SUFFIX e = ((bits >> 23) & 0xff) - 126 + (sub & -23);                                                       \
    bits = (bits & 0x807fffff) | 0x3f000000; /* mantissa in [0.5, 1) */                                              \
    vf_##SUFFIX m; memcpy(&m, &bits, sizeof m);                                                                      \
    vf_##SUFFIX ef = __builtin_convertvector(e, vf_##SUFFIX);                                                        \
    vi_##SUFFIX small = m < SQRTHF;                                                                                  \
    vf_##SUFFIX smallf = __builtin_convertvector(small, vf_##SUFFIX); /* -1 where small */                           \
    ef = ef + smallf;                                                                                                \
    m = sel_##SUFFIX(small, m + m, m) - 1.0f;                                                                        \
    vf_##SUFFIX z = m * m;                                                                                           \
    vf_##SUFFIX y = ((((((((L0 * m + L1) * m + L2) * m + L3) * m + L4) * m + L5) * m + L6) * m + L7) * m + L8) * m * z; \
    y = y + ef * -2.12194440e-4f - 0.5f * z;                                                                        \
    return m + y + ef * 0.693359375f;                                                                                \
}                                                                                                                    \
TARGET static float hmax_##SUFFIX(vf_##SUFFIX v) { float m = v[0]; for (int i = 1; i < W; i++) m = m > v[i] ? m : v[i]; return m; } \
TARGET static double hsum_##SUFFIX(vf_##SUFFIX v) { double s = 0; for (int i = 0; i < W; i++) s += v[i]; return s; } \
/* The row's max, and the sum of exp((x - m) * scale), in double every 256 lanes. */                                 \
TARGET static float row_max_##SUFFIX(const float *x, long n) {                                                       \
    vf_##SUFFIX m = splat_##SUFFIX(-INFINITY); long j = 0;                                                           \
    for (; j + W <= n; j += W) m = vmax_##SUFFIX(m, load_##SUFFIX(x + j));                                          \
    float r = hmax_##SUFFIX(m);                                                                                      \
    for (; j < n; j++) r = r > x[j] ? r : x[j];                                                                      \
    return r;                                                                                                        \
}                                                                                                                    \
TARGET static double row_sum_exp_##SUFFIX(const float *x, long n, float m, float scale) {                             \
    double total = 0; long j = 0;                                                                                    \
    while (j + W <= n) {                                                                                             \
        vf_##SUFFIX acc = splat_##SUFFIX(0);                                                                         \
        long end = j + 256 * W < n ? j + 256 * W : n;                                                                \
        for (; j + W <= end; j += W) acc += vexp_##SUFFIX((load_##SUFFIX(x + j) - m) * scale);                       \
        total += hsum_##SUFFIX(acc);                                                                                 \
    }                                                                                                                \
    for (; j < n; j++) total += expf((x[j] - m) * scale);                                                             \
    return total;                                                                                                    \
}                                                                                                                    \
/* Sums of exp((x - m) * scale) as row_sum_exp, each exponential also stored in out. */                            \
TARGET static double row_sum_exp_store_##SUFFIX(const float *x, long n, float m, float scale, float *out) {            \
    double total = 0; long j = 0;                                                                                    \
    while (j + W <= n) {                                                                                             \
        vf_##SUFFIX acc = splat_##SUFFIX(0);                                                                         \
        long end = j + 256 * W < n ? j + 256 * W : n;                                                                \
        for (; j + W <= end; j += W) {                                                                               \
            vf_##SUFFIX e = vexp_##SUFFIX((load_##SUFFIX(x + j) - m) * scale);                                       \
            store_##SUFFIX(out + j, e); acc += e;                                                                    \
        }                                                                                                            \
        total += hsum_##SUFFIX(acc);                                                                                 \
    }                                                                                                                \
    for (; j < n; j++) { out[j] = expf((x[j] - m) * scale); total += out[j]; }                                       \
    return total;                                                                                                    \
}                                                                                                                    \
/* Each exponential once: exp(d) and exp(d / T) of the student and exp(u) of the teacher are stored in two rows */ \
/* of scratch and the gradient row while their sums are formed, then read back. */                                 \
TARGET static distill_loss_sums rows_##SUFFIX(const float *zs, const float *teacher, int logits, const int32_t *labels, \
                                              long r0, long r1, long cols, float inv_t, float hard_coef, float soft_coef, float *grad) { \
    distill_loss_sums sums = {0, 0, 0};                                                                              \
    float *e1 = scratch(2 * cols), *et = e1 ? e1 + cols : NULL;                                                      \
    for (long r = r0; r < r1; r++) {                                                                                 \
        const float *z = zs + r * cols, *t = teacher + r * cols;                                                     \
        float *g = grad + r * cols;                                                                                  \
        float m = row_max_##SUFFIX(z, cols);                                                                         \
        double s1, sT;                                                                                               \
        if (e1) { s1 = row_sum_exp_store_##SUFFIX(z, cols, m, 1.0f, e1); sT = row_sum_exp_store_##SUFFIX(z, cols, m, inv_t, g); } \
        else { s1 = row_sum_exp_##SUFFIX(z, cols, m, 1.0f); sT = row_sum_exp_##SUFFIX(z, cols, m, inv_t); }          \
        float mt = 0; double st = 1;                                                                                 \
        if (logits) {                                                                                                \
            mt = row_max_##SUFFIX(t, cols);                                                                          \
            st = e1 ? row_sum_exp_store_##SUFFIX(t, cols, mt, inv_t, et) : row_sum_exp_##SUFFIX(t, cols, mt, inv_t); \
        }                                                                                                            \
        double log_st = log(st), log_sT = log(sT);                                                                   \
        float inv_s1 = (float)(1 / s1), inv_sT = (float)(1 / sT), inv_st = (float)(1 / st);                          \
        float flog_sT = (float)log_sT, flog_st = (float)log_st;                                                      \
        int32_t y = labels[r];                                                                                       \
        sums.hard += log(s1) - ((double)z[y] - m);                                                                   \
        double ce = 0, ent = 0; long j = 0;                                                                          \
        while (j + W <= cols) {                                                                                      \
            vf_##SUFFIX ce_acc = splat_##SUFFIX(0), ent_acc = splat_##SUFFIX(0);                                     \
            long end = j + 256 * W < cols ? j + 256 * W : cols;                                                      \
            for (; j + W <= end; j += W) {                                                                           \
                vf_##SUFFIX d = load_##SUFFIX(z + j) - m;                                                            \
                vf_##SUFFIX dT = d * inv_t;                                                                          \
                vf_##SUFFIX q1 = (e1 ? load_##SUFFIX(e1 + j) : vexp_##SUFFIX(d)) * inv_s1;                           \
                vf_##SUFFIX qT = (e1 ? load_##SUFFIX(g + j) : vexp_##SUFFIX(dT)) * inv_sT;                           \
                vf_##SUFFIX p, logp;                                                                                 \
                if (logits) {                                                                                        \
                    vf_##SUFFIX u = (load_##SUFFIX(t + j) - mt) * inv_t;                                             \
                    p = (e1 ? load_##SUFFIX(et + j) : vexp_##SUFFIX(u)) * inv_st;                                    \
                    logp = u - flog_st;                                                                              \
                } else {                                                                                             \
                    p = load_##SUFFIX(t + j);                                                                        \
                    logp = vlog_##SUFFIX(sel_##SUFFIX(p > 0, p, splat_##SUFFIX(1)));                                 \
                }                                                                                                    \
                vf_##SUFFIX live = sel_##SUFFIX(p > 0, splat_##SUFFIX(1), splat_##SUFFIX(0));                        \
                ce_acc -= live * p * (dT - flog_sT);                                                                 \
                ent_acc -= live * p * logp;                                                                          \
                store_##SUFFIX(g + j, soft_coef * (qT - p) + hard_coef * q1);                                        \
            }                                                                                                        \
            ce += hsum_##SUFFIX(ce_acc); ent += hsum_##SUFFIX(ent_acc);                                              \
        }                                                                                                            \
        for (; j < cols; j++) {                                                                                      \
            float d = z[j] - m, dT = d * inv_t;                                                                      \
            float q1 = expf(d) * inv_s1, qT = expf(dT) * inv_sT, p, logp;                                            \
            if (logits) { float u = (t[j] - mt) * inv_t; p = expf(u) * inv_st; logp = u - flog_st; }                 \
            else { p = t[j]; logp = p > 0 ? logf(p) : 0; }                                                           \
            if (p > 0) { ce -= (double)p * (dT - flog_sT); ent -= (double)p * logp; }                                \
            g[j] = soft_coef * (qT - p) + hard_coef * q1;                                                            \
        }                                                                                                            \
        g[y] -= hard_coef;                                                                                           \
        sums.cross_entropy += ce; sums.entropy += ent;                                                               \
    }                                                                                                                \
    return sums;                                                                                                     \
}                                                                                                                    \
/* Sparse soft targets: k (class, probability) pairs per row, a per-class tail u or a tail bucket of mass P. */     \
TARGET static distill_loss_sums sparse_rows_##SUFFIX(const float *zs, const int32_t *labels, const int32_t *classes,  \
        const float *probs, long k, const float *tail_u, const float *tail_mass, int bucket, long r0, long r1,       \
        long cols, float inv_t, float hard_coef, float soft_coef, float *grad) {                                     \
    distill_loss_sums sums = {0, 0, 0};                                                                              \
    for (long r = r0; r < r1; r++) {                                                                                 \
        const float *z = zs + r * cols, *p = probs + r * k;                                                          \
        const int32_t *c = classes + r * k;                                                                          \
        float *g = grad + r * cols;                                                                                  \
        float m = row_max_##SUFFIX(z, cols);                                                                         \
        double s1 = row_sum_exp_##SUFFIX(z, cols, m, 1.0f), sT = row_sum_exp_##SUFFIX(z, cols, m, inv_t);            \
        double log_s1 = log(s1), log_sT = log(sT);                                                                   \
        float inv_s1 = (float)(1 / s1), inv_sT = (float)(1 / sT);                                                    \
        double q_kept = 0, ce = 0, log_kept = 0;                                                                     \
        for (long i = 0; i < k; i++) {                                                                               \
            double lq = ((double)z[c[i]] - m) * inv_t - log_sT;                                                      \
            q_kept += exp(lq); ce -= (double)p[i] * lq; log_kept += lq;                                              \
        }                                                                                                            \
        float u = tail_u ? tail_u[r] : 0, a = 0;                                                                     \
        double mass = tail_mass ? tail_mass[r] : 0, q_tail = 1 - q_kept;                                             \
        if (q_tail < 1e-30) q_tail = 1e-30;                                                                          \
        if (bucket && mass > 0) { a = (float)(mass / q_tail); ce -= mass * log(q_tail); }                            \
        float keep = 1 - a;                                                                                          \
        double dsum = 0; long j = 0;                                                                                 \
        while (j + W <= cols) {                                                                                      \
            vf_##SUFFIX d_acc = splat_##SUFFIX(0);                                                                   \
            long end = j + 256 * W < cols ? j + 256 * W : cols;                                                      \
            for (; j + W <= end; j += W) {                                                                           \
                vf_##SUFFIX d = load_##SUFFIX(z + j) - m;                                                            \
                vf_##SUFFIX q1 = vexp_##SUFFIX(d) * inv_s1;                                                          \
                vf_##SUFFIX qT = vexp_##SUFFIX(d * inv_t) * inv_sT;                                                  \
                d_acc += d;                                                                                          \
                store_##SUFFIX(g + j, soft_coef * (qT * keep - u) + hard_coef * q1);                                 \
            }                                                                                                        \
            dsum += hsum_##SUFFIX(d_acc);                                                                            \
        }                                                                                                            \
        for (; j < cols; j++) {                                                                                      \
            float d = z[j] - m;                                                                                      \
            float q1 = expf(d) * inv_s1, qT = expf(d * inv_t) * inv_sT;                                              \
            dsum += d;                                                                                               \
            g[j] = soft_coef * (qT * keep - u) + hard_coef * q1;                                                     \
        }                                                                                                            \
        if (u > 0) ce -= (double)u * ((dsum * inv_t - (double)cols * log_sT) - log_kept);                            \
        for (long i = 0; i < k; i++) {                                                                               \
            double d = (double)z[c[i]] - m;                                                                          \
            g[c[i]] = soft_coef * (float)(exp(d * inv_t - log_sT) - p[i]) + hard_coef * (float)exp(d - log_s1);      \
        }                                                                                                            \
        int32_t y = labels[r];                                                                                       \
        sums.hard += log_s1 - ((double)z[y] - m);                                                                    \
        g[y] -= hard_coef;                                                                                           \
        sums.cross_entropy += ce;                                                                                    \
    }                                                                                                                \
    return sums;                                                                                                     \
}                                                                                                                    \
TARGET static void exp_##SUFFIX(const float *x, float *out, long n) {                                                \
    long j = 0; for (; j + W <= n; j += W) store_##SUFFIX(out + j, vexp_##SUFFIX(load_##SUFFIX(x + j)));           \
    for (; j < n; j++) { float v[W] = {0}; v[0] = x[j]; vf_##SUFFIX r = vexp_##SUFFIX(load_##SUFFIX(v)); out[j] = r[0]; } \
}                                                                                                                    \
TARGET static void log_##SUFFIX(const float *x, float *out, long n) {                                                \
    long j = 0; for (; j + W <= n; j += W) store_##SUFFIX(out + j, vlog_##SUFFIX(load_##SUFFIX(x + j)));           \
    for (; j < n; j++) { float v[W]; for (int i = 0; i < W; i++) v[i] = 1; v[0] = x[j]; vf_##SUFFIX r = vlog_##SUFFIX(load_##SUFFIX(v)); out[j] = r[0]; } \
}

#if defined(__x86_64__)
DEFINE_KERNEL(avx512, 16, __attribute__((target("avx512f"))))
DEFINE_KERNEL(avx2, 8, __attribute__((target("avx2,fma"))))
#endif
DEFINE_KERNEL(portable, 4, )

static int limit = 2;

static int cpu_path(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int distill_loss_path(void) {
    int p = cpu_path();
    return p < limit ? p : limit;
}

void distill_loss_limit_path(int l) { limit = l; }

distill_loss_sums distill_loss_rows(const float *zs, const float *teacher, int teacher_is_logits, const int32_t *labels,
                                    long r0, long r1, long cols, float inv_t, float hard_coef, float soft_coef, float *grad) {
    switch (distill_loss_path()) {
#if defined(__x86_64__)
    case 2: return rows_avx512(zs, teacher, teacher_is_logits, labels, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
    case 1: return rows_avx2(zs, teacher, teacher_is_logits, labels, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
#endif
    default: return rows_portable(zs, teacher, teacher_is_logits, labels, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
    }
}

distill_loss_sums distill_loss_sparse_rows(const float *zs, const int32_t *labels, const int32_t *classes, const float *probs,
                                           long k, const float *tail_u, const float *tail_mass, int bucket, long r0, long r1,
                                           long cols, float inv_t, float hard_coef, float soft_coef, float *grad) {
    switch (distill_loss_path()) {
#if defined(__x86_64__)
    case 2: return sparse_rows_avx512(zs, labels, classes, probs, k, tail_u, tail_mass, bucket, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
    case 1: return sparse_rows_avx2(zs, labels, classes, probs, k, tail_u, tail_mass, bucket, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
#endif
    default: return sparse_rows_portable(zs, labels, classes, probs, k, tail_u, tail_mass, bucket, r0, r1, cols, inv_t, hard_coef, soft_coef, grad);
    }
}

void distill_loss_exp(const float *x, float *out, long n) {
    switch (distill_loss_path()) {
#if defined(__x86_64__)
    case 2: exp_avx512(x, out, n); return;
    case 1: exp_avx2(x, out, n); return;
#endif
    default: exp_portable(x, out, n);
    }
}

void distill_loss_log(const float *x, float *out, long n) {
    switch (distill_loss_path()) {
#if defined(__x86_64__)
    case 2: log_avx512(x, out, n); return;
    case 1: log_avx2(x, out, n); return;
#endif
    default: log_portable(x, out, n);
    }
}
