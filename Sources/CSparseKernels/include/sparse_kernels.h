#ifndef DISTILL_SPARSE_KERNELS_H
#define DISTILL_SPARSE_KERNELS_H
// The forward pass and the weight gradient of a linear layer whose input is mostly zeros (MNIST pixels: about 19 %
// nonzero; hidden units under dropout): only the nonzero inputs are multiplied, 150 instead of 784 multiply-adds per
// image and unit.
//
// Forward arithmetic contract (what `SparseKernels.naiveLinearForward` in TensorCore computes, bit for bit): each output is
// four fma chains from 0, chain c over the row's nonzeros k = c, c + 4, c + 8, ... in increasing column order,
// summed as (c0 + c1) + (c2 + c3), then + bias, then ReLU (x < 0 ? 0 : x). No output depends on how the units or rows
// are split between threads, on the vector width, or on the machine.
#include <stddef.h>
#include <stdint.h>

/// The vector path the kernels take on this CPU: 2 AVX-512, 1 AVX2 + FMA, 0 none (the portable path: the same bits
/// but slower than BLAS, so callers use the sparse kernels only where this is not 0).
int distill_sparse_fast_path(void);

/// The widest path this CPU supports, whatever the cap.
int distill_sparse_cpu_path(void);

/// Caps the path (tests: 1 runs the AVX2 path on an AVX-512 CPU, 0 the portable one; 2, the default, lifts the cap).
/// Set it while no kernel runs.
void distill_sparse_limit_path(int limit);

/// Number of elements of rows [r0, r1) of x (row stride ldx, cols columns) that are not zero (NaN counts).
long distill_sparse_count_nonzero(const float *x, long r0, long r1, long cols, long ldx);

/// Compresses rows [r0, r1) of x to their nonzero entries (x != 0; NaN counts as nonzero): row r's column indices,
/// increasing, go to index[r * cols ...], its values to value[r * cols ...], its count to count[r].
void distill_sparse_compress_rows(const float *x, long r0, long r1, long cols, long ldx, int32_t *index,
                                  float *value, int32_t *count);

/// y[r * ldy + u] for every row r < rows and the units u in [u0, u1) (see the contract above); bias may be NULL.
/// w is [units x cols] with row stride ldw (PyTorch's [out, in]). scratch: 64 * cols floats, 64-byte aligned (one block of w,
/// transposed).
void distill_sparse_linear_forward(long rows, long cols, const int32_t *index, const float *value,
                                   const int32_t *count, const float *w, long ldw, long u0, long u1,
                                   const float *bias, int relu, float *y, long ldy, float *scratch);

/// Floats that `units` x `cols` weights take packed (`distill_sparse_pack_weights`): whole blocks of 64 units.
long distill_sparse_packed_size(long units, long cols);

/// Packs w ([units x cols], row stride ldw) for `distill_sparse_linear_forward_packed`, once per model (inference):
/// blocks of 64 units, each transposed, packed[(u / 64) * 64 * cols + j * 64 + u % 64] = w[u * ldw + j], lanes past
/// `units` zero. packed: `distill_sparse_packed_size` floats, 64-byte aligned.
void distill_sparse_pack_weights(const float *w, long ldw, long units, long cols, float *packed);

/// `distill_sparse_linear_forward` (the same contract, the same bits) on weights packed by
/// `distill_sparse_pack_weights`: no per-call transposition and no scratch. u0 a multiple of 64 (AVX2: of 32).
void distill_sparse_linear_forward_packed(long rows, long cols, const int32_t *index, const float *value,
                                          const int32_t *count, const float *packed, long u0, long u1,
                                          const float *bias, int relu, float *y, long ldy);

/// Row groups (inference): a batch is taken 6 rows at a time; a group's columns where any of its rows is nonzero
/// (NaN counts) are listed once, so each weight vector loaded serves all rows of the group. Arithmetic contract: each
/// output is ONE fma chain from +0 over the group's listed columns in increasing order, plus the bias, then ReLU;
/// for finite weights the listed columns where the row itself is zero add exact zeros, so the bits equal one chain
/// over the row's own nonzeros whatever rows share its group or how work is split.

/// Lists the columns of rows [0, rows) of x (rows <= 6, row stride ldx) where any row is nonzero: their indices,
/// increasing, to index[0 ..< *used], and row r's values at those columns to panel[r * ldp ...]. index and each
/// panel row need cols + 16 elements (the vector path stores whole vectors past the end).
void distill_sparse_group_rows(const float *x, long ldx, long rows, long cols, int32_t *index, float *panel,
                               long ldp, int32_t *used);
/// `distill_sparse_group_rows` on the AVX-512 path where this CPU has it (the same results).
void distill_sparse_group_rows_fast(const float *x, long ldx, long rows, long cols, int32_t *index, float *panel,
                                    long ldp, int32_t *used);
/// 1 when the grouped product has a vector path here (AVX-512); elsewhere it runs the portable loop.
int distill_sparse_grouped_path(void);

/// y = act(x W^T + b) for `groups` groups of rows as `distill_sparse_group_rows` left them (group g: group_rows[g]
/// rows, used[g] columns, its index at index + g * ldi and its panel at panel + g * group_stride) on weights packed
/// by `distill_sparse_pack_weights`, units [u0, u1) (u0 a multiple of 16); group g's rows are y's rows group_size * g ...
/// (every group but the last has group_size <= 6 rows).
void distill_sparse_linear_forward_grouped(long groups, long group_size, const int32_t *group_rows, const int32_t *used,
                                           const int32_t *index, long ldi, const float *panel, long ldp,
                                           long group_stride, const float *packed, long cols, long u0, long u1,
                                           const float *bias, int relu, float *y, long ldy);

/// Compresses columns [j0, j1) of x (rows x ?, row stride ldx) to their nonzero entries (x != 0; NaN counts): column
/// j's row indices, increasing, go to index[j * rows ...], its values to value[j * rows ...], its count to count[j].
/// strip: 16 * rows floats (16 columns at a time, transposed).
void distill_sparse_compress_columns(const float *x, long rows, long ldx, long j0, long j1, float *strip,
                                     int32_t *index, float *value, int32_t *count);

/// The weight gradient of a linear layer whose input x is mostly zeros, dW = G^T x, from x's columns as
/// `distill_sparse_compress_columns` left them: for the units u in [u0, u1) and columns j in [j0, j1),
///     s = one fma chain from +0 over the rows r of column j's nonzeros, increasing: s = fma(x[r, j], g[r, u], s);
///     dw[u * lddw + j] = accumulate ? dw[u * lddw + j] + s : s.
/// g is [rows x units] with row stride ldg. No output depends on how units or columns are split between threads.
void distill_sparse_weight_gradient(long rows, const int32_t *index, const float *value, const int32_t *count,
                                    long j0, long j1, const float *g, long ldg, long u0, long u1, int accumulate,
                                    float *dw, long lddw);

/// The calling thread's scratch for one sparse product: at least `bytes` bytes, 64-byte aligned, kept for the thread's
/// next call (grown when a call needs more, freed when the thread exits), so steady-state calls allocate nothing
/// whichever threads make them at the same time (the student's step and an overlapped teacher's forward pass).
/// Valid until the thread's next call; NULL when memory runs out.
void *distill_sparse_thread_scratch(size_t bytes);
#endif
