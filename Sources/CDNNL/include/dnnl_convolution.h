#ifndef DISTILL_DNNL_CONVOLUTION_H
#define DISTILL_DNNL_CONVOLUTION_H

/// Convolutions on Intel's oneDNN (Debian's libdnnl2), opened with dlopen at run time: the package builds and runs
/// without it. Tensors are plain NCHW (weights OIHW, groups contiguous in O); each call reorders them into the
/// blocked layouts oneDNN's direct kernels use and back. Every call runs on the calling thread (oneDNN's OpenMP pool
/// held at one thread there); callers split a batch over their own threads. Functions return 0 on success.

typedef struct {
    int channels, height, width, out_channels;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
} distill_conv_shape;

/// 1 when libdnnl loaded (tried once; `path` NULL tries libdnnl.so.2 then libdnnl.so), else 0.
int distill_dnnl_load(const char *path);
/// The loaded library's version, e.g. "2.6.3", or "" when none is loaded.
const char *distill_dnnl_version(void);
/// 1 with the name of the implementation oneDNN picks for a forward convolution of `shape` on `batch` images
/// written to `text` (e.g. "jit:avx512_core"); 0 with why there is none (the step oneDNN refused and its status).
int distill_dnnl_forward_implementation(const distill_conv_shape *shape, int batch, char *text, int capacity);

/// The cache of convolutions made (one per shape, batch and pass): at most `limit` of them (default 512); past it a
/// new one evicts the least recently used one not running. Returns the previous limit; `limit` < 1 only reads it.
int distill_dnnl_set_cache_limit(int limit);
/// How many convolutions the cache holds.
int distill_dnnl_cache_count(void);
/// How many calls of the three functions below returned failure (their callers ran them some other way).
long distill_dnnl_refusals(void);

/// y[batch, O, Ho, Wo] = conv(x, w) + b (b may be NULL).
int distill_dnnl_conv_forward(const distill_conv_shape *shape, int batch, const float *x, const float *w,
                              const float *b, float *y);
/// dx[batch, C, H, W] from dy and w.
int distill_dnnl_conv_backward_data(const distill_conv_shape *shape, int batch, const float *dy, const float *w,
                                    float *dx);
/// dw[O, C/groups, kh, kw] (overwritten) and db[O] (overwritten; may be NULL) from x and dy.
int distill_dnnl_conv_backward_weights(const distill_conv_shape *shape, int batch, const float *x, const float *dy,
                                       float *dw, float *db);

#endif
