#ifndef DISTILL_FLOAT_CONTROL_H
#define DISTILL_FLOAT_CONTROL_H
/// Sets (enable != 0) or clears flush-to-zero and denormals-are-zero for the calling thread's floating-point unit
/// (MXCSR FTZ|DAZ on x86-64, FPCR.FZ on arm64). Returns 1 when the platform supports it, 0 otherwise.
int distill_set_flush_denormals(int enable);
/// Whether flush-to-zero is on for the calling thread.
int distill_flush_denormals_enabled(void);
#endif
