#ifndef DISTILL_LOSS_KERNELS_H
#define DISTILL_LOSS_KERNELS_H
// The fused distillation loss for many classes, in float with vector exp and log (AVX-512, AVX2 + FMA, or a portable
// path chosen at run time): one pass for the row's softmax sums, one for the value's parts and the gradient.
//
// For rows [r0, r1) of student logits zs [rows x cols] and the teacher's soft targets, given either as logits zt
// (softened here: p = softmax(zt / T)) or as probabilities p, with labels y:
//   grad[j] = soft_coef * (softmax(zs / T)[j] - p[j]) + hard_coef * (softmax(zs)[j] - [j == y])
//   hard         += -log softmax(zs)[y]
//   cross_entropy += -sum_j p[j] log softmax(zs / T)[j]   (over p[j] > 0)
//   entropy      += -sum_j p[j] log p[j]                  (over p[j] > 0)
// Sums accumulate per row in double. exp and log are polynomial approximations within 2 ulp of float's (the Double
// reference in DistillationLoss.swift is the test).
#include <stdint.h>

typedef struct {
    double hard;
    double cross_entropy;
    double entropy;
} distill_loss_sums;

distill_loss_sums distill_loss_rows(const float *zs, const float *teacher, int teacher_is_logits, const int32_t *labels,
                                    long r0, long r1, long cols, float inv_t, float hard_coef, float soft_coef, float *grad);

// The same loss from sparse soft targets, never densified: row r's teacher is k pairs (classes[r*k+i], probs[r*k+i])
// (distinct classes) plus, for the C - k classes not listed, either a probability tail_u[r] each (tail_u may be NULL:
// 0) or, with `bucket`, one bucket of mass tail_mass[r] compared with the student's mass on those classes, Q:
//   cross_entropy += -sum_i p_i log q_T[c_i] - u sum_{j not listed} log q_T[j] - P log Q
//   grad[j] = soft_coef * (q_T[j] - p_j) + hard part           (j listed)
//   grad[j] = soft_coef * (q_T[j] (1 - P / Q) - u) + hard part (j not listed)
// `entropy` is left 0 (the caller has the teacher's entropy without touching C columns).
distill_loss_sums distill_loss_sparse_rows(const float *zs, const int32_t *labels, const int32_t *classes, const float *probs,
                                           long k, const float *tail_u, const float *tail_mass, int bucket, long r0, long r1,
                                           long cols, float inv_t, float hard_coef, float soft_coef, float *grad);

/// The path the kernel takes: 2 AVX-512, 1 AVX2 + FMA, 0 portable; `distill_loss_limit_path` caps it (tests).
int distill_loss_path(void);
void distill_loss_limit_path(int limit);

/// Vector exp and log of `n` floats (tests check them against libm).
void distill_loss_exp(const float *x, float *out, long n);
void distill_loss_log(const float *x, float *out, long n);
#endif
