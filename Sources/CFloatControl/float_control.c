#include "float_control.h"
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define DISTILL_FTZ_DAZ 0x8040u
int distill_set_flush_denormals(int enable) {
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(enable ? (csr | DISTILL_FTZ_DAZ) : (csr & ~DISTILL_FTZ_DAZ));
    return 1;
}
int distill_flush_denormals_enabled(void) { return (_mm_getcsr() & DISTILL_FTZ_DAZ) == DISTILL_FTZ_DAZ; }
#elif defined(__aarch64__)
#include <stdint.h>
int distill_set_flush_denormals(int enable) {
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = enable ? (fpcr | (1ull << 24)) : (fpcr & ~(1ull << 24));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
    return 1;
}
int distill_flush_denormals_enabled(void) {
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return (fpcr >> 24) & 1;
}
#else
int distill_set_flush_denormals(int enable) { (void)enable; return 0; }
int distill_flush_denormals_enabled(void) { return 0; }
#endif
