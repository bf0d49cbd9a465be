#ifndef DISTILL_CBLAS_SHIM_H
#define DISTILL_CBLAS_SHIM_H
// The only link to BLAS on Linux: Debian's OpenBLAS (libopenblas-dev).
#include <cblas.h>
// OpenBLAS extensions used to honour --threads.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif
