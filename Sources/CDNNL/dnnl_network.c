// A chain of oneDNN convolutions and poolings whose tensors stay in oneDNN's layouts (see dnnl_network.h). Without
// oneDNN's header at build time every function reports that oneDNN is unavailable.
#include "dnnl_network.h"

#include "dnnl_internal.h"

#ifndef DISTILL_HAVE_DNNL

distill_dnnl_network *distill_dnnl_network_create(int c, int h, int w) { (void)c; (void)h; (void)w; return 0; }
void distill_dnnl_network_destroy(distill_dnnl_network *n) { (void)n; }
int distill_dnnl_network_conv(distill_dnnl_network *n, int i, const distill_conv_shape *s, const float *w, const float *b,
                              int r, int relu) {
    (void)n; (void)i; (void)s; (void)w; (void)b; (void)r; (void)relu; return -1;
}
int distill_dnnl_network_pool(distill_dnnl_network *n, int i, int a, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                              int dw) {
    (void)n; (void)i; (void)a; (void)kh; (void)kw; (void)sh; (void)sw; (void)ph; (void)pw; (void)dh; (void)dw; return -1;
}
int distill_dnnl_network_value_shape(const distill_dnnl_network *n, int v, int *c, int *h, int *w) {
    (void)n; (void)v; (void)c; (void)h; (void)w; return -1;
}
int distill_dnnl_network_run(distill_dnnl_network *n, int b, int t, int c, const float *x, float *y) {
    (void)n; (void)b; (void)t; (void)c; (void)x; (void)y; return -1;
}
const char *distill_dnnl_network_implementations(distill_dnnl_network *n, int b, int t) { (void)n; (void)b; (void)t; return ""; }

#else

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CONV, POOL };

// One op as the caller described it (the weights copied, plain OIHW and O).
typedef struct {
    int kind, input, residual, relu;
    distill_conv_shape shape;  // CONV: the convolution; POOL: kernel, stride, padding, dilation in the same fields
    int average;               // POOL: 0 max, 1 average with padding counted, 2 without
    float *weights, *bias;
    int groups_weights;        // weights in goihw (groups > 1)
} op_t;

// What one executing call needs besides the config: a stream, the memory objects, and one 64-byte-aligned arena
// holding the values' slots, a temporary for reordered op inputs and the scratchpad. Made per concurrent call and
// kept (taken and given back under the network's lock).
typedef struct state {
    dnnl_stream_t stream;
    void *arena;
    dnnl_memory_t input, output, scratch, *value, *temp;  // value[v] for v >= 1; temp[k]: op k's reordered input
    dnnl_memory_t *residual_copy;                          // op k's residual in its output's layout (when not in place)
    int busy;
    struct state *next;
} state_t;

// Everything made for one (batch, threads): primitives, layouts, reordered weights, the arena's plan.
typedef struct config {
    int batch, threads, count;  // count: ops
    dnnl_primitive_t *primitive, *input_reorder, *residual_reorder, output_reorder;
    dnnl_memory_desc_t *input_md, *value_md, user_input_md, user_output_md, scratch_md;
    dnnl_memory_t *weights, *bias;  // per op (CONV), the network's weights in the primitive's layout
    void **weights_data;
    int *in_place, *slot;  // slot[v]: the arena slot of value v (v >= 1)
    size_t *slot_offset, temp_offset, scratch_offset, arena_size;
    char implementations[1024];
    int failed;
    state_t *states;
    struct config *next;
} config_t;

struct distill_dnnl_network {
    int count, capacity;
    op_t *ops;
    int *channels, *height, *width;  // per value (count + 1)
    pthread_mutex_t lock;
    config_t *configs;
};

distill_dnnl_network *distill_dnnl_network_create(int channels, int height, int width) {
    if (!distill_dnnl_loaded() || channels < 1 || height < 1 || width < 1) return NULL;
    distill_dnnl_network *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    pthread_mutex_init(&n->lock, NULL);
    n->channels = malloc(sizeof(int));
    n->height = malloc(sizeof(int));
    n->width = malloc(sizeof(int));
    if (!n->channels || !n->height || !n->width) { distill_dnnl_network_destroy(n); return NULL; }
    n->channels[0] = channels;
    n->height[0] = height;
    n->width[0] = width;
    return n;
}

// Appends `op` producing a value of shape (c, h, w); its number, or -1.
static int append(distill_dnnl_network *n, op_t op, int c, int h, int w) {
    if (n->count == n->capacity) {
        int capacity = n->capacity ? 2 * n->capacity : 8;
        op_t *ops = realloc(n->ops, capacity * sizeof *ops);
        if (!ops) return -1;
        n->ops = ops;
        int *dims[3] = {n->channels, n->height, n->width};
        for (int i = 0; i < 3; i++) {
            int *grown = realloc(dims[i], (capacity + 1) * sizeof(int));
            if (!grown) return -1;
            dims[i] = grown;
        }
        n->channels = dims[0]; n->height = dims[1]; n->width = dims[2];
        n->capacity = capacity;
    }
    n->ops[n->count] = op;
    n->count++;
    n->channels[n->count] = c;
    n->height[n->count] = h;
    n->width[n->count] = w;
    return n->count;
}

static int out_size(int size, int kernel, int stride, int pad, int dilation) {
    return (size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

int distill_dnnl_network_conv(distill_dnnl_network *n, int input, const distill_conv_shape *s, const float *w,
                              const float *b, int residual, int relu) {
    if (!n || !s || !w || input < 0 || input > n->count || residual > n->count) return -1;
    if (s->channels != n->channels[input] || s->height != n->height[input] || s->width != n->width[input]) return -1;
    if (s->groups < 1 || s->channels % s->groups || s->out_channels % s->groups) return -1;
    int oh = out_size(s->height, s->kernel_h, s->stride_h, s->pad_h, s->dilation_h);
    int ow = out_size(s->width, s->kernel_w, s->stride_w, s->pad_w, s->dilation_w);
    if (oh < 1 || ow < 1) return -1;
    if (residual >= 0 && (n->channels[residual] != s->out_channels || n->height[residual] != oh || n->width[residual] != ow))
        return -1;
    op_t op = {.kind = CONV, .input = input, .residual = residual < 0 ? -1 : residual, .relu = relu != 0, .shape = *s};
    size_t count = (size_t)s->out_channels * (s->channels / s->groups) * s->kernel_h * s->kernel_w;
    op.weights = malloc(count * sizeof(float));
    op.bias = calloc((size_t)s->out_channels, sizeof(float));
    if (!op.weights || !op.bias) { free(op.weights); free(op.bias); return -1; }
    memcpy(op.weights, w, count * sizeof(float));
    if (b) memcpy(op.bias, b, (size_t)s->out_channels * sizeof(float));
    int v = append(n, op, s->out_channels, oh, ow);
    if (v < 0) { free(op.weights); free(op.bias); }
    return v;
}

int distill_dnnl_network_pool(distill_dnnl_network *n, int input, int average, int kh, int kw, int sh, int sw, int ph,
                              int pw, int dh, int dw) {
    if (!n || input < 0 || input > n->count || average < 0 || average > 2) return -1;
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0 || dh < 1 || dw < 1) return -1;
    int h = n->height[input], w = n->width[input];
    int oh = out_size(h, kh, sh, ph, dh), ow = out_size(w, kw, sw, pw, dw);
    if (oh < 1 || ow < 1) return -1;
    distill_conv_shape s = {.channels = n->channels[input], .height = h, .width = w, .out_channels = n->channels[input],
                            .kernel_h = kh, .kernel_w = kw, .stride_h = sh, .stride_w = sw, .pad_h = ph, .pad_w = pw,
                            .dilation_h = dh, .dilation_w = dw, .groups = 1};
    op_t op = {.kind = POOL, .input = input, .residual = -1, .shape = s, .average = average};
    return append(n, op, n->channels[input], oh, ow);
}

int distill_dnnl_network_value_shape(const distill_dnnl_network *n, int v, int *c, int *h, int *w) {
    if (!n || v < 0 || v > n->count) return -1;
    *c = n->channels[v];
    *h = n->height[v];
    *w = n->width[v];
    return 0;
}

static void destroy_state(state_t *st, int count) {
    dnnl_memory_t single[3] = {st->input, st->output, st->scratch};
    for (int i = 0; i < 3; i++) if (single[i]) f_dnnl_memory_destroy(single[i]);
    for (int k = 0; k <= count; k++) {
        if (st->value && st->value[k]) f_dnnl_memory_destroy(st->value[k]);
        if (k < count && st->temp && st->temp[k]) f_dnnl_memory_destroy(st->temp[k]);
        if (k < count && st->residual_copy && st->residual_copy[k]) f_dnnl_memory_destroy(st->residual_copy[k]);
    }
    free(st->value);
    free(st->temp);
    free(st->residual_copy);
    free(st->arena);
    if (st->stream) f_dnnl_stream_destroy(st->stream);
    free(st);
}

static void destroy_config(config_t *c) {
    while (c->states) {
        state_t *next = c->states->next;
        destroy_state(c->states, c->count);
        c->states = next;
    }
    for (int k = 0; k < c->count; k++) {
        if (c->primitive && c->primitive[k]) f_dnnl_primitive_destroy(c->primitive[k]);
        if (c->input_reorder && c->input_reorder[k]) f_dnnl_primitive_destroy(c->input_reorder[k]);
        if (c->residual_reorder && c->residual_reorder[k]) f_dnnl_primitive_destroy(c->residual_reorder[k]);
        if (c->weights && c->weights[k]) f_dnnl_memory_destroy(c->weights[k]);
        if (c->bias && c->bias[k]) f_dnnl_memory_destroy(c->bias[k]);
        if (c->weights_data) free(c->weights_data[k]);
    }
    if (c->output_reorder) f_dnnl_primitive_destroy(c->output_reorder);
    free(c->primitive); free(c->input_reorder); free(c->residual_reorder); free(c->input_md); free(c->value_md);
    free(c->weights); free(c->bias); free(c->weights_data); free(c->in_place); free(c->slot); free(c->slot_offset);
    free(c);
}

void distill_dnnl_network_destroy(distill_dnnl_network *n) {
    if (!n) return;
    while (n->configs) {
        config_t *next = n->configs->next;
        destroy_config(n->configs);
        n->configs = next;
    }
    for (int k = 0; k < n->count; k++) { free(n->ops[k].weights); free(n->ops[k].bias); }
    free(n->ops); free(n->channels); free(n->height); free(n->width);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int scratch_of(dnnl_primitive_desc_t pd, size_t *largest) {
    const dnnl_memory_desc_t *sp = f_dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t size = sp ? f_dnnl_memory_desc_get_size(sp) : 0;
    if (size > *largest) *largest = size;
    return 0;
}

// A reorder from `from` to `to` with a user scratchpad (its size into `scratch`); NULL when they are equal and
// `always` is 0.
static int make_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int always,
                        dnnl_primitive_attr_t attr, size_t *scratch) {
    *r = NULL;
    if (!always && f_dnnl_memory_desc_equal(from, to)) return 0;
    dnnl_primitive_desc_t pd;
    if (f_dnnl_reorder_primitive_desc_create(&pd, from, distill_dnnl_engine, to, distill_dnnl_engine, attr) != dnnl_success)
        return -1;
    scratch_of(pd, scratch);
    int status = f_dnnl_primitive_create(r, pd) == dnnl_success ? 0 : -1;
    f_dnnl_primitive_desc_destroy(pd);
    return status;
}

static int plain_md(dnnl_memory_desc_t *md, int batch, int c, int h, int w) {
    dnnl_dims_t d = {batch, c, h, w};
    return f_dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nchw) == dnnl_success ? 0 : -1;
}

static void note_implementation(config_t *c, dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (f_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return;
    size_t used = strlen(c->implementations);
    if (used + strlen(impl) + 3 < sizeof c->implementations)
        snprintf(c->implementations + used, sizeof c->implementations - used, "%s%s", used ? ", " : "", impl);
}

// Op k's primitive for `batch` images: its input layout in input_md[k] and output layout in value_md[k + 1]; for a
// convolution also the weights reordered into its layout.
static int make_op(const distill_dnnl_network *n, config_t *c, int k, dnnl_primitive_attr_t plain_attr, size_t *scratch) {
    const op_t *op = &n->ops[k];
    const distill_conv_shape *s = &op->shape;
    int batch = c->batch, v = k + 1;
    dnnl_dims_t src_d = {batch, n->channels[op->input], n->height[op->input], n->width[op->input]};
    dnnl_dims_t dst_d = {batch, n->channels[v], n->height[v], n->width[v]};
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, dilation = {s->dilation_h - 1, s->dilation_w - 1};
    dnnl_dims_t pad_l = {s->pad_h, s->pad_w};
    // The padding after the data that makes oneDNN's output size the one computed here (floor division).
    dnnl_dims_t pad_r = {(n->height[v] - 1) * s->stride_h + s->dilation_h * (s->kernel_h - 1) + 1 - s->height - s->pad_h,
                         (n->width[v] - 1) * s->stride_w + s->dilation_w * (s->kernel_w - 1) + 1 - s->width - s->pad_w};
    dnnl_memory_desc_t src_any, dst_any;
    if (f_dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_d, dnnl_f32, dnnl_format_tag_any) != dnnl_success) return -1;
    dnnl_primitive_attr_t attr;
    if (f_dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
    f_dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    int ok;
    if (op->kind == CONV) {
        dnnl_memory_desc_t wei_any, wei_plain, bias_md;
        dnnl_dims_t bias_d = {s->out_channels};
        if (s->groups == 1) {
            dnnl_dims_t d = {s->out_channels, s->channels, s->kernel_h, s->kernel_w};
            ok = f_dnnl_memory_desc_init_by_tag(&wei_any, 4, d, dnnl_f32, dnnl_format_tag_any) == dnnl_success
                && f_dnnl_memory_desc_init_by_tag(&wei_plain, 4, d, dnnl_f32, dnnl_oihw) == dnnl_success;
        } else {
            dnnl_dims_t d = {s->groups, s->out_channels / s->groups, s->channels / s->groups, s->kernel_h, s->kernel_w};
            ok = f_dnnl_memory_desc_init_by_tag(&wei_any, 5, d, dnnl_f32, dnnl_format_tag_any) == dnnl_success
                && f_dnnl_memory_desc_init_by_tag(&wei_plain, 5, d, dnnl_f32, dnnl_goihw) == dnnl_success;
        }
        ok = ok && f_dnnl_memory_desc_init_by_tag(&src_any, 4, src_d, dnnl_f32, dnnl_format_tag_any) == dnnl_success
            && f_dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_d, dnnl_f32, dnnl_x) == dnnl_success;
        dnnl_post_ops_t post = NULL;
        if (ok && (op->residual >= 0 || op->relu)) {
            ok = f_dnnl_post_ops_create(&post) == dnnl_success;
            if (ok && op->residual >= 0) ok = f_dnnl_post_ops_append_sum(post, 1.0f) == dnnl_success;
            if (ok && op->relu) ok = f_dnnl_post_ops_append_eltwise(post, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) == dnnl_success;
            ok = ok && f_dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
        }
        if (post) f_dnnl_post_ops_destroy(post);
        dnnl_convolution_desc_t cd;
        // Direct convolutions: oneDNN's Winograd kernel (jit_fp32_wino_2x3) ran ResNet-8 slower on a Zen 5 (0.53 s
        // against 0.39 s per 10,000 images at 2 threads, 0.083 ms against 0.077 ms for one image).
        ok = ok && f_dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_any,
                       &wei_any, &bias_md, &dst_any, strides, dilation, pad_l, pad_r) == dnnl_success
            && f_dnnl_primitive_desc_create(&pd, &cd, attr, distill_dnnl_engine, NULL) == dnnl_success;
        if (ok) {
            // The weights, once, in the layout this primitive reads.
            const dnnl_memory_desc_t *wei = f_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
            size_t size = f_dnnl_memory_desc_get_size(wei);
            dnnl_memory_t from = NULL;
            dnnl_primitive_t reorder = NULL;
            size_t reorder_scratch = 0;
            ok = posix_memalign(&c->weights_data[k], 64, align64(size)) == 0
                && f_dnnl_memory_create(&c->weights[k], wei, distill_dnnl_engine, c->weights_data[k]) == dnnl_success
                && f_dnnl_memory_create(&c->bias[k], &bias_md, distill_dnnl_engine, op->bias) == dnnl_success
                && f_dnnl_memory_create(&from, &wei_plain, distill_dnnl_engine, op->weights) == dnnl_success
                && make_reorder(&reorder, &wei_plain, wei, 1, NULL, &reorder_scratch) == 0;
            dnnl_stream_t stream = NULL;
            if (ok) {
                dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, c->weights[k]}};
                ok = f_dnnl_stream_create(&stream, distill_dnnl_engine, dnnl_stream_default_flags) == dnnl_success
                    && f_dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success
                    && f_dnnl_stream_wait(stream) == dnnl_success;
            }
            if (stream) f_dnnl_stream_destroy(stream);
            if (reorder) f_dnnl_primitive_destroy(reorder);
            if (from) f_dnnl_memory_destroy(from);
        }
    } else {
        // Pooling reads its input in the layout the value has (dst "any": oneDNN keeps that layout).
        dnnl_dims_t kernel = {s->kernel_h, s->kernel_w};
        dnnl_alg_kind_t alg = op->average == 0 ? dnnl_pooling_max
            : op->average == 1 ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding;
        dnnl_pooling_v2_desc_t pdesc;
        ok = f_dnnl_pooling_v2_forward_desc_init(&pdesc, dnnl_forward_inference, alg, &c->value_md[op->input], &dst_any,
                 strides, kernel, dilation, pad_l, pad_r) == dnnl_success
            && f_dnnl_primitive_desc_create(&pd, &pdesc, attr, distill_dnnl_engine, NULL) == dnnl_success;
    }
    if (ok) {
        c->input_md[k] = *f_dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        c->value_md[v] = *f_dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        scratch_of(pd, scratch);
        note_implementation(c, pd);
        ok = f_dnnl_primitive_create(&c->primitive[k], pd) == dnnl_success
            && make_reorder(&c->input_reorder[k], &c->value_md[op->input], &c->input_md[k], 0, plain_attr, scratch) == 0;
    }
    if (pd) f_dnnl_primitive_desc_destroy(pd);
    f_dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

// Plans the arena: each value v >= 1 gets a slot, reusing one whose values are no longer read; a convolution adds
// its residual in place (writes its output into the residual's slot) when the residual is an earlier op's output in
// the same layout that nothing after it reads.
static int plan(const distill_dnnl_network *n, config_t *c, size_t scratch, dnnl_primitive_attr_t plain_attr) {
    int count = n->count;
    int *last_use = calloc((size_t)count + 1, sizeof(int));
    int *slot_free_after = calloc((size_t)count + 1, sizeof(int));  // per slot: the last op reading what it holds
    size_t *slot_size = calloc((size_t)count + 1, sizeof(size_t));
    if (!last_use || !slot_free_after || !slot_size) { free(last_use); free(slot_free_after); free(slot_size); return -1; }
    for (int k = 0; k < count; k++) {
        last_use[n->ops[k].input] = k;
        if (n->ops[k].residual >= 0) last_use[n->ops[k].residual] = k;
    }
    last_use[count] = count;  // the output, read by the final reorder
    int slots = 0, ok = 1;
    size_t temp = 0;
    for (int k = 0; k < count && ok; k++) {
        const op_t *op = &n->ops[k];
        int v = k + 1, r = op->residual;
        size_t size = f_dnnl_memory_desc_get_size(&c->value_md[v]);
        if (c->input_reorder[k]) {
            size_t t = f_dnnl_memory_desc_get_size(&c->input_md[k]);
            if (t > temp) temp = t;
        }
        c->in_place[k] = r >= 1 && r != op->input && last_use[r] == k
            && f_dnnl_memory_desc_equal(&c->value_md[r], &c->value_md[v]);
        if (c->in_place[k]) {
            c->slot[v] = c->slot[r];
        } else {
            int s = 0;
            while (s < slots && slot_free_after[s] >= k) s++;
            if (s == slots) slots++;
            c->slot[v] = s;
            if (r >= 0) ok = make_reorder(&c->residual_reorder[k], &c->value_md[r], &c->value_md[v], 1, plain_attr, &scratch) == 0;
        }
        if (size > slot_size[c->slot[v]]) slot_size[c->slot[v]] = size;
        if (last_use[v] > slot_free_after[c->slot[v]]) slot_free_after[c->slot[v]] = last_use[v];
    }
    c->slot_offset = calloc((size_t)slots + 1, sizeof(size_t));
    if (!c->slot_offset) ok = 0;
    size_t offset = 0;
    for (int s = 0; s < slots && ok; s++) {
        c->slot_offset[s] = offset;
        offset += align64(slot_size[s]);
    }
    c->temp_offset = offset;
    offset += align64(temp);
    c->scratch_offset = offset;
    offset += align64(scratch);
    c->arena_size = offset;
    dnnl_dims_t d = {(dnnl_dim_t)(scratch ? scratch : 1)};
    ok = ok && f_dnnl_memory_desc_init_by_tag(&c->scratch_md, 1, d, dnnl_u8, dnnl_x) == dnnl_success;
    free(last_use); free(slot_free_after); free(slot_size);
    return ok ? 0 : -1;
}

static config_t *make_config(const distill_dnnl_network *n, int batch, int threads) {
    config_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    int count = n->count;
    c->batch = batch;
    c->threads = threads;
    c->count = count;
    c->primitive = calloc((size_t)count, sizeof(dnnl_primitive_t));
    c->input_reorder = calloc((size_t)count, sizeof(dnnl_primitive_t));
    c->residual_reorder = calloc((size_t)count, sizeof(dnnl_primitive_t));
    c->input_md = calloc((size_t)count, sizeof(dnnl_memory_desc_t));
    c->value_md = calloc((size_t)count + 1, sizeof(dnnl_memory_desc_t));
    c->weights = calloc((size_t)count, sizeof(dnnl_memory_t));
    c->bias = calloc((size_t)count, sizeof(dnnl_memory_t));
    c->weights_data = calloc((size_t)count, sizeof(void *));
    c->in_place = calloc((size_t)count, sizeof(int));
    c->slot = calloc((size_t)count + 1, sizeof(int));
    if (!c->primitive || !c->input_reorder || !c->residual_reorder || !c->input_md || !c->value_md || !c->weights
        || !c->bias || !c->weights_data || !c->in_place || !c->slot) { destroy_config(c); return NULL; }
    dnnl_primitive_attr_t plain_attr;
    if (f_dnnl_primitive_attr_create(&plain_attr) != dnnl_success) { destroy_config(c); return NULL; }
    f_dnnl_primitive_attr_set_scratchpad_mode(plain_attr, dnnl_scratchpad_mode_user);
    // oneDNN sizes its kernels' parallel split by the OpenMP thread count when a primitive is made.
    if (f_omp_set_num_threads) f_omp_set_num_threads(threads);
    size_t scratch = 0;
    int ok = plain_md(&c->value_md[0], batch, n->channels[0], n->height[0], n->width[0]) == 0;
    c->user_input_md = c->value_md[0];
    for (int k = 0; k < count && ok; k++) ok = make_op(n, c, k, plain_attr, &scratch) == 0;
    ok = ok && plain_md(&c->user_output_md, batch, n->channels[count], n->height[count], n->width[count]) == 0
        && make_reorder(&c->output_reorder, &c->value_md[count], &c->user_output_md, 1, plain_attr, &scratch) == 0
        && plan(n, c, scratch, plain_attr) == 0;
    if (f_omp_set_num_threads) f_omp_set_num_threads(1);
    f_dnnl_primitive_attr_destroy(plain_attr);
    if (!ok) { destroy_config(c); return NULL; }
    return c;
}

// The config for (batch, threads), made on first use; NULL when oneDNN cannot run the network so.
static config_t *config_for(distill_dnnl_network *n, int batch, int threads) {
    pthread_mutex_lock(&n->lock);
    config_t *c = n->configs;
    while (c && (c->batch != batch || c->threads != threads)) c = c->next;
    if (!c) {
        c = make_config(n, batch, threads);
        if (!c && (c = calloc(1, sizeof *c))) {
            c->batch = batch;
            c->threads = threads;
            c->failed = 1;
        }
        if (c) {
            c->next = n->configs;
            n->configs = c;
        }
    }
    pthread_mutex_unlock(&n->lock);
    return c && !c->failed ? c : NULL;
}

static state_t *make_state(const distill_dnnl_network *n, const config_t *c) {
    state_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    int count = n->count;
    st->value = calloc((size_t)count + 1, sizeof(dnnl_memory_t));
    st->temp = calloc((size_t)count, sizeof(dnnl_memory_t));
    st->residual_copy = calloc((size_t)count, sizeof(dnnl_memory_t));
    int ok = st->value && st->temp && st->residual_copy && posix_memalign(&st->arena, 4096, c->arena_size ? c->arena_size : 64) == 0
        && f_dnnl_stream_create(&st->stream, distill_dnnl_engine, dnnl_stream_default_flags) == dnnl_success;
    char *arena = st->arena;
    ok = ok && f_dnnl_memory_create(&st->input, &c->user_input_md, distill_dnnl_engine, DNNL_MEMORY_NONE) == dnnl_success
        && f_dnnl_memory_create(&st->output, &c->user_output_md, distill_dnnl_engine, DNNL_MEMORY_NONE) == dnnl_success
        && f_dnnl_memory_create(&st->scratch, &c->scratch_md, distill_dnnl_engine, arena + c->scratch_offset) == dnnl_success;
    for (int k = 0; k < count && ok; k++) {
        int v = k + 1;
        ok = f_dnnl_memory_create(&st->value[v], &c->value_md[v], distill_dnnl_engine, arena + c->slot_offset[c->slot[v]])
            == dnnl_success;
        if (ok && c->input_reorder[k])
            ok = f_dnnl_memory_create(&st->temp[k], &c->input_md[k], distill_dnnl_engine, arena + c->temp_offset) == dnnl_success;
    }
    if (!ok) { destroy_state(st, count); return NULL; }
    return st;
}

// A state of `c` for this call (a free one, or a new one).
static state_t *take_state(distill_dnnl_network *n, config_t *c) {
    pthread_mutex_lock(&n->lock);
    state_t *st = c->states;
    while (st && st->busy) st = st->next;
    if (!st && (st = make_state(n, c))) {
        st->next = c->states;
        c->states = st;
    }
    if (st) st->busy = 1;
    pthread_mutex_unlock(&n->lock);
    return st;
}

static void give_state(distill_dnnl_network *n, state_t *st) {
    pthread_mutex_lock(&n->lock);
    st->busy = 0;
    pthread_mutex_unlock(&n->lock);
}

static int execute(state_t *st, dnnl_primitive_t p, int count, const dnnl_exec_arg_t *args) {
    return f_dnnl_primitive_execute(p, st->stream, count, args) == dnnl_success ? 0 : -1;
}

static int reorder(state_t *st, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, st->scratch}};
    return execute(st, p, 3, args);
}

// One pass of `c` on c->batch images.
static int run_config(const distill_dnnl_network *n, config_t *c, state_t *st, const float *x, float *y) {
    if (f_dnnl_memory_set_data_handle(st->input, (void *)x) != dnnl_success
        || f_dnnl_memory_set_data_handle(st->output, y) != dnnl_success) return -1;
    int status = 0;
    for (int k = 0; k < n->count && status == 0; k++) {
        const op_t *op = &n->ops[k];
        dnnl_memory_t src = op->input == 0 ? st->input : st->value[op->input];
        if (c->input_reorder[k]) {
            status = reorder(st, c->input_reorder[k], src, st->temp[k]);
            src = st->temp[k];
        }
        dnnl_memory_t dst = st->value[k + 1];
        if (status == 0 && c->residual_reorder[k]) {
            dnnl_memory_t r = op->residual == 0 ? st->input : st->value[op->residual];
            status = reorder(st, c->residual_reorder[k], r, dst);
        }
        if (status != 0) break;
        if (op->kind == CONV) {
            dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, c->weights[k]}, {DNNL_ARG_BIAS, c->bias[k]},
                                      {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, st->scratch}};
            status = execute(st, c->primitive[k], 5, args);
        } else {
            dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, st->scratch}};
            status = execute(st, c->primitive[k], 3, args);
        }
    }
    if (status == 0) status = reorder(st, c->output_reorder, st->value[n->count], st->output);
    if (status == 0) status = f_dnnl_stream_wait(st->stream) == dnnl_success ? 0 : -1;
    return status;
}

int distill_dnnl_network_run(distill_dnnl_network *n, int batch, int threads, int chunk, const float *x, float *y) {
    if (!n || n->count == 0 || batch < 0 || !distill_dnnl_loaded()) return -1;
    if (batch == 0) return 0;
    if (!x || !y) return -1;
    if (threads < 1) threads = 1;
    if (chunk <= 0 || chunk > batch) chunk = batch;
    size_t in_image = (size_t)n->channels[0] * n->height[0] * n->width[0];
    size_t out_image = (size_t)n->channels[n->count] * n->height[n->count] * n->width[n->count];
    if (f_omp_set_num_threads) f_omp_set_num_threads(threads);
    int status = 0;
    for (int start = 0; start < batch && status == 0; start += chunk) {
        int size = batch - start < chunk ? batch - start : chunk;
        config_t *c = config_for(n, size, threads);
        state_t *st = c ? take_state(n, c) : NULL;
        if (!st) { status = -1; break; }
        if (f_omp_set_num_threads) f_omp_set_num_threads(threads);
        status = run_config(n, c, st, x + start * in_image, y + start * out_image);
        give_state(n, st);
    }
    // The calling thread's pool back at one thread, as the convolution shim expects.
    if (f_omp_set_num_threads) f_omp_set_num_threads(1);
    return status;
}

const char *distill_dnnl_network_implementations(distill_dnnl_network *n, int batch, int threads) {
    if (!n) return "";
    config_t *c = config_for(n, batch, threads);
    return c ? c->implementations : "";
}

#endif
