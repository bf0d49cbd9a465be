// Probe: can a layer whose input is mostly zeros (MNIST pixels, ~19 % nonzero) beat dense sgemm by multiplying
// only the nonzeros? Times, on one core, the two products of the student's first layer that see the images (batch
// 128, 784 inputs, one thread's half of the 800 units): the forward pass y = x W^T and the weight gradient
// dW = G^T x, dense (OpenBLAS sgemm) against sparse kernels (the widest path the CPU runs: AVX-512 or AVX2), then the same
// on 1200 hidden-layer inputs of density 0.1-0.4:
//   forward: per block of 64 units, W's rows transposed into a 64 x 784 scratch (200 KB), then for each image four
//            fmas per nonzero pixel (four accumulator chains per 16 units);
//   gradient: the batch compressed by columns (16 columns transposed at a time, then compressed like rows), then per
//            block of 64 units and input column an fma per nonzero and 16 units (two columns at a time), the 16 x 16
//            tiles transposed into dW's rows.
// All kernels are the library's (Sources/CSparseKernels, included below; used by linearForward and linear's
// backward, --dense-inputs turns them off). The gradient is checked bit for bit against OpenBLAS's (whose kernel
// sums each output in one fma chain in row order, zeros adding nothing, on this CPU), the forward pass to 1e-4.
// Benchmarks.md ("What the kernels buy, and what was tried") has the figures.
//
//   clang -O2 -ISources/CSparseKernels/include -ISources/CSparseKernels -o /tmp/sparse_input_probe Scripts/sparse_input_probe.c \
//       -lopenblas -lz -lm -lpthread   (the Swift toolchain's clang)
//   OPENBLAS_CORETYPE=SkylakeX /tmp/sparse_input_probe Data/mnist/train-images-idx3-ubyte.gz   (AVX-512 CPUs)
//   /tmp/sparse_input_probe Data/mnist/train-images-idx3-ubyte.gz                             (AVX2: Zen)
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
#include "../Sources/CSparseKernels/avx2.c"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
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
    float *w = malloc(4 * U * C), *y = malloc(4 * R * U), *yd = malloc(4 * R * U), *g = aligned_alloc(64, 4 * R * U);
    float *dw = malloc(4 * U * C), *dwd = malloc(4 * U * C);
    // The library takes its scratch from distill_sparse_thread_scratch: 64-byte aligned (unaligned, every W load
    // splits a cache line and the forward pass took 0.74x of sgemm's time instead of 0.48x).
    float *scratch = aligned_alloc(64, 4 * 64 * C), *strip = aligned_alloc(64, 4 * 16 * R);
    srand(1);
    for (long i = 0; i < U * C; i++) w[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    for (long i = 0; i < R * U; i++) g[i] = rand() / (float)RAND_MAX - 0.5f;
    memset(dwd, 0, 4 * U * C);
    int32_t *ix = malloc(4 * R * C), *cnt = malloc(4 * R), *ci = malloc(4 * R * C), *cc = malloc(4 * C);
    float *vx = malloc(4 * R * C), *cv = malloc(4 * R * C);
    double best[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    long nonzeros = 0, gradientBitsDiffer = 0;
    for (int rep = 0; rep < 40; rep++) {
        const float *batch = x + (rep % (images / R)) * R * C;
        double t;
        t = now(); distill_sparse_compress_rows(batch, 0, R, C, C, ix, vx, cnt); t = now() - t; if (t < best[0]) best[0] = t;
        for (long r = 0; r < R; r++) nonzeros += cnt[r];
        t = now(); distill_sparse_compress_columns(batch, R, C, 0, C, strip, ci, cv, cc); t = now() - t; if (t < best[1]) best[1] = t;
        t = now(); distill_sparse_linear_forward(R, C, ix, vx, cnt, w, C, 0, u1, NULL, 0, y, U, scratch);
        t = now() - t; if (t < best[2]) best[2] = t;
        t = now(); cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, u1, C, 1, batch, C, w, C, 0, yd, U);
        t = now() - t; if (t < best[3]) best[3] = t;
        t = now(); distill_sparse_weight_gradient(R, ci, cv, cc, 0, C, g, U, 0, u1, 0, dw, C); t = now() - t; if (t < best[4]) best[4] = t;
        t = now(); cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, u1, C, R, 1, g, U, batch, C, 0, dwd, C);
        t = now() - t; if (t < best[5]) best[5] = t;
        double dy = 0, dg = 0;
        for (long i = 0; i < R; i++) for (long u = 0; u < u1; u++) dy = fmax(dy, fabs(y[i * U + u] - yd[i * U + u]));
        for (long u = 0; u < u1; u++) for (long j = 0; j < C; j++) dg = fmax(dg, fabs(dw[u * C + j] - dwd[u * C + j]));
        for (long u = 0; u < u1; u++) gradientBitsDiffer += memcmp(dw + u * C, dwd + u * C, 4 * C) != 0;
        if (dy > 1e-4 || dg > 1e-4) { fprintf(stderr, "batch %d: sparse and dense differ (%g, %g)\n", rep, dy, dg); return 1; }
    }
    printf("%.1f nonzeros per image of 784; best of 40 batches, microseconds, one core, %ld of 800 units:\n",
           nonzeros / (40.0 * R), u1);
    printf("  compress rows %.1f, by columns %.1f\n", best[0] * 1e6, best[1] * 1e6);
    printf("  forward  y = x W^T : sparse %.1f  dense %.1f  (%.2fx)\n", best[2] * 1e6, best[3] * 1e6, best[2] / best[3]);
    printf("  gradient dW = G^T x: sparse %.1f  dense %.1f  (%.2fx)\n", best[4] * 1e6, best[5] * 1e6, best[4] / best[5]);
    printf("  gradient rows whose bits differ from sgemm's: %ld of %ld\n", gradientBitsDiffer, 40 * u1);

    // Hidden-layer inputs (the teacher's 1200 units under dropout): uniform random masks of a given density, one
    // thread's 576 of 1200 units; the sparse times include the compression each product pays for.
    const long HC = 1200, HU = 1200, hu1 = 576;
    float *hx = malloc(4 * R * HC), *hw = malloc(4 * HU * HC), *hy = malloc(4 * R * HU), *hg = aligned_alloc(64, 4 * R * HU);
    float *hdw = malloc(4 * HU * HC), *hscratch = aligned_alloc(64, 4 * 64 * HC), *hstrip = aligned_alloc(64, 4 * 16 * R);
    int32_t *hix = malloc(4 * R * HC), *hcnt = malloc(4 * R), *hci = malloc(4 * R * HC), *hcc = malloc(4 * HC);
    float *hvx = malloc(4 * R * HC), *hcv = malloc(4 * R * HC);
    for (long i = 0; i < HU * HC; i++) hw[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    for (long i = 0; i < R * HU; i++) hg[i] = rand() / (float)RAND_MAX - 0.5f;
    printf("1200 inputs of the given density, 128 rows, 576 of 1200 units, best of 20, one core (sparse/dense):\n");
    const double densities[] = {0.1, 0.2, 0.3, 0.4};
    for (int d = 0; d < 4; d++) {
        for (long i = 0; i < R * HC; i++) hx[i] = rand() / (double)RAND_MAX < densities[d] ? rand() / (float)RAND_MAX + 0.01f : 0.0f;
        double hb[4] = {1e9, 1e9, 1e9, 1e9}, t;
        for (int rep = 0; rep < 20; rep++) {
            t = now(); distill_sparse_compress_rows(hx, 0, R, HC, HC, hix, hvx, hcnt);
            distill_sparse_linear_forward(R, HC, hix, hvx, hcnt, hw, HC, 0, hu1, NULL, 0, hy, HU, hscratch);
            t = now() - t; if (t < hb[0]) hb[0] = t;
            t = now(); cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, hu1, HC, 1, hx, HC, hw, HC, 0, hy, HU);
            t = now() - t; if (t < hb[1]) hb[1] = t;
            t = now(); distill_sparse_compress_columns(hx, R, HC, 0, HC, hstrip, hci, hcv, hcc);
            distill_sparse_weight_gradient(R, hci, hcv, hcc, 0, HC, hg, HU, 0, hu1, 0, hdw, HC);
            t = now() - t; if (t < hb[2]) hb[2] = t;
            t = now(); cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hu1, HC, R, 1, hg, HU, hx, HC, 0, hdw, HC);
            t = now() - t; if (t < hb[3]) hb[3] = t;
        }
        printf("  density %.1f: forward %.0f / %.0f us (%.2fx), gradient %.0f / %.0f us (%.2fx)\n", densities[d],
               hb[0] * 1e6, hb[1] * 1e6, hb[0] / hb[1], hb[2] * 1e6, hb[3] * 1e6, hb[2] / hb[3]);
    }
    return 0;
}
