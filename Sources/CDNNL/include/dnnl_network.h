#ifndef DISTILL_DNNL_NETWORK_H
#define DISTILL_DNNL_NETWORK_H

#include "dnnl_convolution.h"

/// A chain of convolutions and poolings on oneDNN (opened at run time, see dnnl_convolution.h) whose tensors stay in
/// oneDNN's blocked layouts between the ops: the input is reordered from NCHW once, each convolution has its bias,
/// ReLU and a residual sum fused in, and only the result is reordered back to NCHW.
///
/// Values are numbered: 0 is the network's input, op k's output is value k + 1. Each op reads one earlier value
/// (a convolution may add a second one, its residual, before its ReLU); the last op's output is the network's
/// output. The network owns copies of the weights given; primitives (and the weights reordered into their layouts)
/// are made on first use for each (batch, thread count) and kept. Calls may run at the same time on different threads.
typedef struct distill_dnnl_network distill_dnnl_network;

/// A network whose input is images [channels, height, width]; NULL when oneDNN is not loaded.
distill_dnnl_network *distill_dnnl_network_create(int channels, int height, int width);
void distill_dnnl_network_destroy(distill_dnnl_network *network);

/// Appends y = conv(value input; w [O, C/groups, kh, kw], b [O] or NULL) (+ value `residual` when >= 0) (then
/// max(0, .) when `relu`); returns the output's value number, or -1 when shapes do not fit.
int distill_dnnl_network_conv(distill_dnnl_network *network, int input, const distill_conv_shape *shape, const float *w,
                              const float *b, int residual, int relu);

/// Appends max pooling (`average` 0) or average pooling (`average` 1: divided by the whole window, padding included;
/// 2: by the window's part inside the image) of value `input`; returns the output's value number, or -1.
int distill_dnnl_network_pool(distill_dnnl_network *network, int input, int average, int kernel_h, int kernel_w,
                              int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w);

/// The shape [channels, height, width] of value `value`; 0 on success.
int distill_dnnl_network_value_shape(const distill_dnnl_network *network, int value, int *channels, int *height, int *width);

/// y[batch, ...] (NCHW) = the network on x[batch, C, H, W] (NCHW), on the calling thread with oneDNN's OpenMP pool
/// at `threads` threads, `chunk` images at a time (<= 0: all at once). 0 on success.
int distill_dnnl_network_run(distill_dnnl_network *network, int batch, int threads, int chunk, const float *x, float *y);

/// The implementations oneDNN picked for the ops at (batch, threads) after a run, e.g. "jit:avx512_core, ...", or "".
const char *distill_dnnl_network_implementations(distill_dnnl_network *network, int batch, int threads);

#endif
