// Probe: can a layer whose input is mostly zeros (MNIST pixels, ~19 % nonzero) beat dense sgemm by multiplying
// only the nonzeros? Times, on one core, the two products of the student's first layer that see the images (batch
// 128, 784 inputs, one thread's half of the 800 units): the forward pass y = x W^T and the weight gradient
// dW = G^T x, dense (OpenBLAS sgemm) against sparse kernels (AVX-512):
//   forward: per block of 16 units, W's rows transposed into a 16 x 784 scratch (50 KB), then for each image an fma
//            per nonzero pixel and 16 units (four accumulator chains);
//   gradient: the batch compressed by columns (CSC), then per block of 64 units and input column an fma per nonzero
//            and 16 units, the 16 x 16 tiles transposed into dW's rows.
// The row compression and the forward kernel are the library's (Sources/CSparseKernels, included below; used by
// linearForward, --dense-inputs turns it off); the column compression and the gradient kernel exist only here.
// Benchmarks.md (sessions 7 and 8) has the figures.
//
//   clang -O2 -ISources/CSparseKernels/include -o /tmp/sparse_input_probe Scripts/sparse_input_probe.c \
//       -lopenblas -lz -lm -lpthread   (the Swift toolchain's clang)
//   OPENBLAS_CORETYPE=SkylakeX /tmp/sparse_input_probe Data/mnist/train-images-idx3-ubyte.gz
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <cblas.h>
extern void openblas_set_num_threads(int);

// The library's kernels: distill_sparse_compress_rows, distill_sparse_linear_forward, transpose16.
#include "../Sources/CSparseKernels/sparse_kernels.c"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// CSC: colStart[cols+1], rowIdx[], val[]
static void csc_build(long rows, long cols, const int32_t *index, const float *value, const int32_t *count, int32_t *colStart, int32_t *fill, int32_t *rowIdx, float *val) {
    memset(colStart, 0, sizeof(int32_t) * (cols + 1));
    for (long r = 0; r < rows; r++) for (int k = 0; k < count[r]; k++) colStart[index[r*cols+k] + 1]++;
    for (long j = 0; j < cols; j++) colStart[j+1] += colStart[j];
    memcpy(fill, colStart, sizeof(int32_t) * cols);
    for (long r = 0; r < rows; r++) for (int k = 0; k < count[r]; k++) { int32_t j = index[r*cols+k]; int32_t p = fill[j]++; rowIdx[p] = (int32_t)r; val[p] = value[r*cols+k]; }
}
// dW rows u0..u1 (a multiple of 64 units), cols a multiple of 16: per column an fma chain over its nonzeros, in row order.
__attribute__((target("avx512f")))
static void csc_grad(long cols, const int32_t *colStart, const int32_t *rowIdx, const float *val, const float *g, long ldg, long u0, long u1, float *dw, long lddw) {
    for (long lo = u0; lo < u1; lo += 64) {
        for (long j0 = 0; j0 < cols; j0 += 16) {
            __m512 tile[4][16];
            for (int jj = 0; jj < 16; jj++) {
                long j = j0 + jj;
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int32_t e = colStart[j]; e < colStart[j+1]; e++) {
                    const float *gr = g + (long)rowIdx[e] * ldg + lo;
                    __m512 v = _mm512_set1_ps(val[e]);
                    a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(gr), a0);
                    a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(gr + 16), a1);
                    a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(gr + 32), a2);
                    a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(gr + 48), a3);
                }
                tile[0][jj] = a0; tile[1][jj] = a1; tile[2][jj] = a2; tile[3][jj] = a3;
            }
            for (int i = 0; i < 4; i++) {
                transpose16(tile[i]);
                for (int uu = 0; uu < 16; uu++) _mm512_storeu_ps(dw + (lo + 16*i + uu) * lddw + j0, tile[i][uu]);
            }
        }
    }
}

static float *read_images(const char *path, int *count) {
    gzFile f = gzopen(path, "rb");
    unsigned char header[16];
    if (!f || gzread(f, header, 16) != 16) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
    int n = (header[4] << 24) | (header[5] << 16) | (header[6] << 8) | header[7];
    unsigned char *bytes = malloc((size_t)n * 784);
    if (gzread(f, bytes, (unsigned)(n * 784)) != n * 784) { fprintf(stderr, "%s is truncated\n", path); exit(1); }
    gzclose(f);
    float *x = malloc(sizeof(float) * (size_t)n * 784);
    for (long i = 0; i < (long)n * 784; i++) x[i] = bytes[i] / 255.0f;
    free(bytes);
    *count = n;
    return x;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s train-images-idx3-ubyte.gz\n", argv[0]); return 2; }
    openblas_set_num_threads(1);
    int images;
    float *x = read_images(argv[1], &images);
    const long R = 128, C = 784, U = 800, u1 = 384;  // one thread's share of the units (a multiple of 64 here)
    float *w = malloc(4 * U * C), *y = malloc(4 * R * U), *yd = malloc(4 * R * U), *g = malloc(4 * R * U);
    float *dw = malloc(4 * U * C), *dwd = malloc(4 * U * C), *scratch = malloc(4 * 16 * C);
    srand(1);
    for (long i = 0; i < U * C; i++) w[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    for (long i = 0; i < R * U; i++) g[i] = rand() / (float)RAND_MAX - 0.5f;
    int32_t *ix = malloc(4 * R * C), *cnt = malloc(4 * R), *cs = malloc(4 * (C + 1)), *fill = malloc(4 * C);
    int32_t *ri = malloc(4 * R * C);
    float *vx = malloc(4 * R * C), *cv = malloc(4 * R * C);
    double best[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    long nonzeros = 0;
    for (int rep = 0; rep < 40; rep++) {
        const float *batch = x + (rep % (images / R)) * R * C;
        double t;
        t = now(); distill_sparse_compress_rows(batch, 0, R, C, C, ix, vx, cnt); t = now() - t; if (t < best[0]) best[0] = t;
        for (long r = 0; r < R; r++) nonzeros += cnt[r];
        t = now(); csc_build(R, C, ix, vx, cnt, cs, fill, ri, cv); t = now() - t; if (t < best[1]) best[1] = t;
        t = now(); distill_sparse_linear_forward(R, C, ix, vx, cnt, w, C, 0, u1, NULL, 0, y, U, scratch);
        t = now() - t; if (t < best[2]) best[2] = t;
        t = now(); cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, u1, C, 1, batch, C, w, C, 0, yd, U);
        t = now() - t; if (t < best[3]) best[3] = t;
        t = now(); csc_grad(C, cs, ri, cv, g, U, 0, u1, dw, C); t = now() - t; if (t < best[4]) best[4] = t;
        t = now(); cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, u1, C, R, 1, g, U, batch, C, 0, dwd, C);
        t = now() - t; if (t < best[5]) best[5] = t;
        double dy = 0, dg = 0;
        for (long i = 0; i < R; i++) for (long u = 0; u < u1; u++) dy = fmax(dy, fabs(y[i * U + u] - yd[i * U + u]));
        for (long u = 0; u < u1; u++) for (long j = 0; j < C; j++) dg = fmax(dg, fabs(dw[u * C + j] - dwd[u * C + j]));
        if (dy > 1e-4 || dg > 1e-4) { fprintf(stderr, "batch %d: sparse and dense differ (%g, %g)\n", rep, dy, dg); return 1; }
    }
    printf("%.1f nonzeros per image of 784; best of 40 batches, microseconds, one core, %ld of 800 units:\n",
           nonzeros / (40.0 * R), u1);
    printf("  compress rows %.1f, by columns %.1f\n", best[0] * 1e6, best[1] * 1e6);
    printf("  forward  y = x W^T : sparse %.1f  dense %.1f  (%.2fx)\n", best[2] * 1e6, best[3] * 1e6, best[2] / best[3]);
    printf("  gradient dW = G^T x: sparse %.1f  dense %.1f  (%.2fx)\n", best[4] * 1e6, best[5] * 1e6, best[4] / best[5]);
    return 0;
}
