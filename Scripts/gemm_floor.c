// The GEMM floor of one student training step (784-800-800-10, batch 128): the eight sgemm calls the engine makes,
// with the same shapes and transposes, timed alone. Benchmarks.md compares a whole student epoch against it.
//
//   gcc -O2 -o /tmp/gemm_floor Scripts/gemm_floor.c -lopenblas
//   OPENBLAS_CORETYPE=SkylakeX /tmp/gemm_floor 2 400      # threads, steps
//
// The same with MKL (Debian non-free's libmkl-rt), its OpenMP threads:
//   gcc -O2 -DUSE_MKL -o /tmp/gemm_floor_mkl Scripts/gemm_floor.c -lmkl_rt -Wl,--no-as-needed -lgomp
//   MKL_THREADING_LAYER=GNU /tmp/gemm_floor_mkl 2 400
//
// Prints milliseconds and GFLOP/s per product and the total scaled to a 469-step epoch (60,000 images).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef USE_MKL
// The CBLAS declarations used here (MKL's headers are in libmkl-dev, not needed for these few).
typedef enum { CblasRowMajor = 101 } CBLAS_LAYOUT;
typedef enum { CblasNoTrans = 111, CblasTrans = 112 } CBLAS_TRANSPOSE;
void cblas_sgemm(CBLAS_LAYOUT, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float, const float *, int, const float *,
                 int, float, float *, int);
void MKL_Set_Num_Threads(int);
#define set_threads MKL_Set_Num_Threads
#else
#include <cblas.h>
extern void openblas_set_num_threads(int);
#define set_threads openblas_set_num_threads
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *matrix(long n) {
    float *p = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) p[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    return p;
}

#define GEMM(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc) \
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 400, B = 128;
    set_threads(threads);
    float *X = matrix(B * 784), *W1 = matrix(800 * 784), *W2 = matrix(800 * 800), *W3 = matrix(10 * 800);
    float *H1 = matrix(B * 800), *H2 = matrix(B * 800), *O = matrix(B * 10);
    float *g3 = matrix(B * 10), *g2 = matrix(B * 800), *g1 = matrix(B * 800);
    float *gW1 = matrix(800 * 784), *gW2 = matrix(800 * 800), *gW3 = matrix(10 * 800);
    double t[7] = {0};
    for (int s = 0; s < steps; s++) {
        double t0 = now();
        GEMM(CblasNoTrans, CblasTrans, B, 800, 784, X, 784, W1, 784, 1, H1, 800);       // forward, bias pre-filled
        double t1 = now(); t[0] += t1 - t0;
        GEMM(CblasNoTrans, CblasTrans, B, 800, 800, H1, 800, W2, 800, 1, H2, 800);
        double t2 = now(); t[1] += t2 - t1;
        GEMM(CblasNoTrans, CblasTrans, B, 10, 800, H2, 800, W3, 800, 1, O, 10);
        double t3 = now(); t[2] += t3 - t2;
        GEMM(CblasNoTrans, CblasNoTrans, B, 800, 10, g3, 10, W3, 800, 0, g2, 800);     // output layer backward
        GEMM(CblasTrans, CblasNoTrans, 10, 800, B, g3, 10, H2, 800, 0, gW3, 800);
        double t4 = now(); t[3] += t4 - t3;
        GEMM(CblasNoTrans, CblasNoTrans, B, 800, 800, g2, 800, W2, 800, 0, g1, 800);   // dX of layer 2
        double t5 = now(); t[4] += t5 - t4;
        GEMM(CblasTrans, CblasNoTrans, 800, 800, B, g2, 800, H1, 800, 0, gW2, 800);    // dW of layer 2
        double t6 = now(); t[5] += t6 - t5;
        GEMM(CblasTrans, CblasNoTrans, 800, 784, B, g1, 800, X, 784, 0, gW1, 784);     // dW of layer 1
        double t7 = now(); t[6] += t7 - t6;
    }
    const char *name[] = {"forward 1", "forward 2", "forward 3", "backward 3", "dX 2", "dW 2", "dW 1"};
    double flops[] = {2.0 * B * 800 * 784, 2.0 * B * 800 * 800, 2.0 * B * 10 * 800, 4.0 * B * 800 * 10,
                      2.0 * B * 800 * 800, 2.0 * B * 800 * 800, 2.0 * B * 800 * 784};
    double total = 0;
    for (int i = 0; i < 7; i++) {
        total += t[i];
        printf("%-10s %7.3f ms %6.1f GFLOP/s\n", name[i], t[i] / steps * 1e3, flops[i] * steps / t[i] / 1e9);
    }
    printf("all sgemm calls of a 469-step epoch: %.3f s (%d threads)\n", total / steps * 469, threads);
    return 0;
}
