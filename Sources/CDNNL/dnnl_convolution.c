// Convolutions on oneDNN, opened at run time (see dnnl_convolution.h). The header comes from Debian's libdnnl-dev
// when it is installed at build time; without it every function reports that oneDNN is unavailable.
#include "dnnl_convolution.h"

#include "dnnl_internal.h"

#include <stdio.h>

#ifndef DISTILL_HAVE_DNNL

int distill_dnnl_load(const char *path) { (void)path; return 0; }
const char *distill_dnnl_version(void) { return ""; }
int distill_dnnl_forward_implementation(const distill_conv_shape *s, int b, char *text, int capacity) {
    (void)s; (void)b;
    if (capacity > 0) snprintf(text, (size_t)capacity, "oneDNN's header was missing at build time");
    return 0;
}
int distill_dnnl_set_cache_limit(int limit) { (void)limit; return 0; }
int distill_dnnl_cache_count(void) { return 0; }
long distill_dnnl_refusals(void) { return 0; }
int distill_dnnl_conv_forward(const distill_conv_shape *s, int n, const float *x, const float *w, const float *b, float *y) {
    (void)s; (void)n; (void)x; (void)w; (void)b; (void)y; return -1;
}
int distill_dnnl_conv_backward_data(const distill_conv_shape *s, int n, const float *dy, const float *w, float *dx) {
    (void)s; (void)n; (void)dy; (void)w; (void)dx; return -1;
}
int distill_dnnl_conv_backward_weights(const distill_conv_shape *s, int n, const float *x, const float *dy, float *dw, float *db) {
    (void)s; (void)n; (void)x; (void)dy; (void)dw; (void)db; return -1;
}

#else

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define DEFINE(name) __typeof__(&name) f_##name;
DISTILL_DNNL_FUNCTIONS(DEFINE)

void (*f_omp_set_num_threads)(int);
dnnl_engine_t distill_dnnl_engine;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state;  // 0 not tried, 1 loaded, -1 failed
static char version_text[32];

int distill_dnnl_load(const char *path) {
    pthread_mutex_lock(&lock);
    if (load_state == 0) {
        load_state = -1;
        const char *names[] = {path, "libdnnl.so.2", "libdnnl.so"};
        void *handle = NULL;
        for (int i = path ? 0 : 1; i < 3 && !handle; i++) handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        int ok = handle != NULL;
#define RESOLVE(name) if (ok) { f_##name = (__typeof__(&name))dlsym(handle, #name); ok = f_##name != NULL; }
        DISTILL_DNNL_FUNCTIONS(RESOLVE)
        if (ok) {
            const dnnl_version_t *v = f_dnnl_version();
            ok = v->major == DNNL_VERSION_MAJOR;  // the structures of the header this was built with
            snprintf(version_text, sizeof version_text, "%d.%d.%d", v->major, v->minor, v->patch);
        }
        if (ok) {
            f_omp_set_num_threads = (void (*)(int))dlsym(handle, "omp_set_num_threads");
            ok = f_dnnl_engine_create(&distill_dnnl_engine, dnnl_cpu, 0) == dnnl_success;
        }
        if (ok) load_state = 1;
    }
    int loaded = load_state == 1;
    pthread_mutex_unlock(&lock);
    return loaded;
}

int distill_dnnl_loaded(void) { return load_state == 1; }

const char *distill_dnnl_version(void) { return load_state == 1 ? version_text : ""; }

enum kind { FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS };

// What a cached entry was made for; all ints, compared with memcmp.
typedef struct {
    distill_conv_shape shape;
    int batch, kind, bias;
} key_t_;

// One convolution: its primitive and, for each of its two inputs and its output, the plain layout, the
// convolution's layout and the reorder between them (NULL when they are the same).
typedef struct entry {
    key_t_ key;
    dnnl_primitive_desc_t pd;  // owns the implementation string
    dnnl_primitive_t conv;
    dnnl_memory_desc_t plain[3], blocked[3], bias_md;
    dnnl_primitive_t reorder[3];
    size_t blocked_size[3], scratch_size;
    const char *implementation;
    char failure[96];          // what failed, when oneDNN could not make this key (remembered, so it is asked once)
    int users;                 // callers between lookup and release: an entry in use is never evicted
    unsigned long last_use;
    struct entry *next;
} entry;

// The cache: at most `cache_limit` entries; a new key past the limit evicts the least recently used entry no caller
// is using, so a process that meets many shapes (batch sizes, say) keeps running every one of them on oneDNN.
static entry *cache;
static int cache_count;
static int cache_limit = 512;
static unsigned long use_clock;

static dnnl_status_t weights_desc(dnnl_memory_desc_t *md, const distill_conv_shape *s, int any) {
    if (s->groups == 1) {
        dnnl_dims_t d = {s->out_channels, s->channels, s->kernel_h, s->kernel_w};
        return f_dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, any ? dnnl_format_tag_any : dnnl_oihw);
    }
    dnnl_dims_t d = {s->groups, s->out_channels / s->groups, s->channels / s->groups, s->kernel_h, s->kernel_w};
    return f_dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, any ? dnnl_format_tag_any : dnnl_goihw);
}

static int out_h(const distill_conv_shape *s) { return (s->height + 2 * s->pad_h - s->dilation_h * (s->kernel_h - 1) - 1) / s->stride_h + 1; }
static int out_w(const distill_conv_shape *s) { return (s->width + 2 * s->pad_w - s->dilation_w * (s->kernel_w - 1) - 1) / s->stride_w + 1; }

// Frees an entry, its primitives and its primitive descriptor.
static void destroy_entry(entry *e) {
    if (!e) return;
    for (int i = 0; i < 3; i++) if (e->reorder[i]) f_dnnl_primitive_destroy(e->reorder[i]);
    if (e->conv) f_dnnl_primitive_destroy(e->conv);
    if (e->pd) f_dnnl_primitive_desc_destroy(e->pd);
    free(e);
}

// Marks `e` as failed at `step` with oneDNN's `status` (its primitives released) and returns it.
static entry *failed_entry(entry *e, const char *step, int status) {
    for (int i = 0; i < 3; i++) if (e->reorder[i]) { f_dnnl_primitive_destroy(e->reorder[i]); e->reorder[i] = NULL; }
    if (e->conv) { f_dnnl_primitive_destroy(e->conv); e->conv = NULL; }
    if (e->pd) { f_dnnl_primitive_desc_destroy(e->pd); e->pd = NULL; }
    e->implementation = NULL;
    snprintf(e->failure, sizeof e->failure, "%s: oneDNN status %d", step, status);
    return e;
}

// Makes the reorder from `from` to `to` (or none when equal).
static dnnl_status_t make_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                  dnnl_primitive_attr_t attr, size_t *scratch) {
    *r = NULL;
    if (f_dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = f_dnnl_reorder_primitive_desc_create(&pd, from, distill_dnnl_engine, to, distill_dnnl_engine, attr);
    if (st != dnnl_success) return st;
    const dnnl_memory_desc_t *sp = f_dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t n = sp ? f_dnnl_memory_desc_get_size(sp) : 0;
    if (n > *scratch) *scratch = n;
    st = f_dnnl_primitive_create(r, pd);
    if (st != dnnl_success) *r = NULL;
    f_dnnl_primitive_desc_destroy(pd);
    return st;
}

// Makes the entry for `key`: complete, or marked failed with the step oneDNN refused; NULL only when out of memory.
static entry *make_entry(const key_t_ *key) {
    const distill_conv_shape *s = &key->shape;
    entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = *key;
    int oh = out_h(s), ow = out_w(s);
    dnnl_dims_t src_d = {key->batch, s->channels, s->height, s->width}, dst_d = {key->batch, s->out_channels, oh, ow};
    dnnl_dims_t bias_d = {s->out_channels};
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, dilation = {s->dilation_h - 1, s->dilation_w - 1};
    dnnl_dims_t pad_l = {s->pad_h, s->pad_w};
    // The padding after the data: what makes oneDNN's output size equal ours (the last window may overhang less).
    dnnl_dims_t pad_r = {(oh - 1) * s->stride_h + s->dilation_h * (s->kernel_h - 1) + 1 - s->height - s->pad_h,
                         (ow - 1) * s->stride_w + s->dilation_w * (s->kernel_w - 1) + 1 - s->width - s->pad_w};
    dnnl_memory_desc_t src_any, wei_any, dst_any, src_plain, wei_plain, dst_plain;
    dnnl_status_t st = dnnl_success;
    if ((st = f_dnnl_memory_desc_init_by_tag(&src_any, 4, src_d, dnnl_f32, dnnl_format_tag_any)) != dnnl_success
        || (st = f_dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_d, dnnl_f32, dnnl_format_tag_any)) != dnnl_success
        || (st = f_dnnl_memory_desc_init_by_tag(&src_plain, 4, src_d, dnnl_f32, dnnl_nchw)) != dnnl_success
        || (st = f_dnnl_memory_desc_init_by_tag(&dst_plain, 4, dst_d, dnnl_f32, dnnl_nchw)) != dnnl_success
        || (st = f_dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bias_d, dnnl_f32, dnnl_x)) != dnnl_success
        || (st = weights_desc(&wei_any, s, 1)) != dnnl_success || (st = weights_desc(&wei_plain, s, 0)) != dnnl_success)
        return failed_entry(e, "memory descriptors", st);

    dnnl_primitive_attr_t attr;
    if ((st = f_dnnl_primitive_attr_create(&attr)) != dnnl_success) return failed_entry(e, "attributes", st);
    f_dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, cd;
    dnnl_primitive_desc_t forward = NULL;
    const dnnl_memory_desc_t *bias = key->bias ? &e->bias_md : NULL;
    const char *step = "forward descriptor";
    st = f_dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any,
             &wei_any, key->kind == FORWARD ? bias : NULL, &dst_any, strides, dilation, pad_l, pad_r);
    if (st == dnnl_success) {
        step = "forward primitive descriptor";
        st = f_dnnl_primitive_desc_create(&forward, &fd, key->kind == FORWARD ? attr : NULL, distill_dnnl_engine, NULL);
    }
    if (st == dnnl_success && key->kind == FORWARD) {
        e->pd = forward;
        forward = NULL;
    } else if (st == dnnl_success && key->kind == BACKWARD_DATA) {
        step = "backward-data descriptor";
        st = f_dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any,
                 strides, dilation, pad_l, pad_r);
        if (st == dnnl_success) {
            step = "backward-data primitive descriptor";
            st = f_dnnl_primitive_desc_create(&e->pd, &cd, attr, distill_dnnl_engine, forward);
        }
    } else if (st == dnnl_success) {
        step = "backward-weights descriptor";
        st = f_dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, bias,
                 &dst_any, strides, dilation, pad_l, pad_r);
        if (st == dnnl_success) {
            step = "backward-weights primitive descriptor";
            st = f_dnnl_primitive_desc_create(&e->pd, &cd, attr, distill_dnnl_engine, forward);
        }
    }
    if (forward) f_dnnl_primitive_desc_destroy(forward);
    if (st == dnnl_success) {
        // The two inputs and the output, as (plain, query) pairs.
        const dnnl_memory_desc_t *plain[3];
        dnnl_query_t query[3];
        if (key->kind == FORWARD) {
            plain[0] = &src_plain; query[0] = dnnl_query_src_md;
            plain[1] = &wei_plain; query[1] = dnnl_query_weights_md;
            plain[2] = &dst_plain; query[2] = dnnl_query_dst_md;
        } else if (key->kind == BACKWARD_DATA) {
            plain[0] = &dst_plain; query[0] = dnnl_query_diff_dst_md;
            plain[1] = &wei_plain; query[1] = dnnl_query_weights_md;
            plain[2] = &src_plain; query[2] = dnnl_query_diff_src_md;
        } else {
            plain[0] = &src_plain; query[0] = dnnl_query_src_md;
            plain[1] = &dst_plain; query[1] = dnnl_query_diff_dst_md;
            plain[2] = &wei_plain; query[2] = dnnl_query_diff_weights_md;
        }
        const dnnl_memory_desc_t *sp = f_dnnl_primitive_desc_query_md(e->pd, dnnl_query_scratchpad_md, 0);
        e->scratch_size = sp ? f_dnnl_memory_desc_get_size(sp) : 0;
        step = "reorder";
        for (int i = 0; i < 3 && st == dnnl_success; i++) {
            e->plain[i] = *plain[i];
            e->blocked[i] = *f_dnnl_primitive_desc_query_md(e->pd, query[i], 0);
            e->blocked_size[i] = f_dnnl_memory_desc_get_size(&e->blocked[i]);
            st = i < 2 ? make_reorder(&e->reorder[i], &e->plain[i], &e->blocked[i], attr, &e->scratch_size)
                       : make_reorder(&e->reorder[i], &e->blocked[i], &e->plain[i], attr, &e->scratch_size);
        }
    }
    const char *impl = NULL;
    if (st == dnnl_success && f_dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success)
        e->implementation = impl;
    if (st == dnnl_success) {
        step = "convolution primitive";
        st = f_dnnl_primitive_create(&e->conv, e->pd);
    }
    f_dnnl_primitive_attr_destroy(attr);
    return st == dnnl_success ? e : failed_entry(e, step, st);
}

// Takes the cached entry for `key`, made on first use (evicting the least recently used idle entry when the cache
// is full), for the caller to use until `release`; NULL only when memory ran out or every cached entry is in use.
// The entry may be a failed one: `e->failure` says why.
static entry *take(const key_t_ *key) {
    pthread_mutex_lock(&lock);
    entry **link = &cache;
    while (*link && memcmp(&(*link)->key, key, sizeof *key) != 0) link = &(*link)->next;
    entry *e = *link;
    while (!e && cache_count >= cache_limit) {
        // Evict the least recently used entry nobody is using (several when the limit was lowered).
        entry **oldest = NULL;
        for (entry **l = &cache; *l; l = &(*l)->next)
            if ((*l)->users == 0 && (!oldest || (*l)->last_use < (*oldest)->last_use)) oldest = l;
        if (!oldest) break;
        entry *victim = *oldest;
        *oldest = victim->next;
        destroy_entry(victim);
        cache_count--;
    }
    if (!e && cache_count < cache_limit && (e = make_entry(key))) {
        e->next = cache;
        cache = e;
        cache_count++;
    }
    if (e) {
        e->users++;
        e->last_use = ++use_clock;
    }
    pthread_mutex_unlock(&lock);
    return e;
}

static void release(entry *e) {
    pthread_mutex_lock(&lock);
    e->users--;
    pthread_mutex_unlock(&lock);
}

int distill_dnnl_set_cache_limit(int limit) {
    pthread_mutex_lock(&lock);
    int previous = cache_limit;
    if (limit >= 1) cache_limit = limit;
    pthread_mutex_unlock(&lock);
    return previous;
}

int distill_dnnl_cache_count(void) {
    pthread_mutex_lock(&lock);
    int count = cache_count;
    pthread_mutex_unlock(&lock);
    return count;
}

// Per thread: a stream, oneDNN's OpenMP pool held at one thread, and four growing 64-byte-aligned buffers (the two
// inputs and the output in the convolution's layouts, the scratchpad).
static __thread dnnl_stream_t thread_stream;
static __thread void *thread_buffer[4];
static __thread size_t thread_capacity[4];

static void *buffer(int i, size_t bytes) {
    if (bytes == 0) return NULL;
    if (thread_capacity[i] < bytes) {
        free(thread_buffer[i]);
        thread_buffer[i] = NULL;
        thread_capacity[i] = 0;
        if (posix_memalign(&thread_buffer[i], 64, bytes) != 0) { thread_buffer[i] = NULL; return NULL; }
        thread_capacity[i] = bytes;
    }
    return thread_buffer[i];
}

// Frees a finished thread's buffers (its stream is left: oneDNN's CPU streams hold no memory of note).
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static void release_thread(void *unused) {
    (void)unused;
    for (int i = 0; i < 4; i++) {
        free(thread_buffer[i]);
        thread_buffer[i] = NULL;
        thread_capacity[i] = 0;
    }
}
static void make_thread_key(void) { pthread_key_create(&thread_key, release_thread); }

static int prepare_thread(void) {
    if (thread_stream) return 0;
    pthread_once(&thread_key_once, make_thread_key);
    pthread_setspecific(thread_key, (void *)1);
    if (f_omp_set_num_threads) f_omp_set_num_threads(1);
    return f_dnnl_stream_create(&thread_stream, distill_dnnl_engine, dnnl_stream_default_flags) == dnnl_success ? 0 : -1;
}

static int execute(dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args) {
    return f_dnnl_primitive_execute(p, thread_stream, n, args) == dnnl_success ? 0 : -1;
}

// Runs `key`'s convolution: inputs `in0`, `in1` and output `out` in plain layouts, `bias` (forward: input; backward
// weights: output) in its own.
static long refusals;

long distill_dnnl_refusals(void) { return __atomic_load_n(&refusals, __ATOMIC_RELAXED); }

static int run_entry(const key_t_ *key, const float *in0, const float *in1, const float *bias, float *out);

static int run(const key_t_ *key, const float *in0, const float *in1, const float *bias, float *out) {
    int status = run_entry(key, in0, in1, bias, out);
    if (status != 0) __atomic_fetch_add(&refusals, 1, __ATOMIC_RELAXED);
    return status;
}

static int run_entry(const key_t_ *key, const float *in0, const float *in1, const float *bias, float *out) {
    if (load_state != 1 || prepare_thread() != 0) return -1;
    entry *e = take(key);
    if (!e) return -1;
    if (e->failure[0]) { release(e); return -1; }
    const void *plain_data[3] = {in0, in1, out};
    dnnl_memory_t plain[3] = {NULL, NULL, NULL}, blocked[3] = {NULL, NULL, NULL}, bias_mem = NULL, scratch = NULL;
    int status = 0;
    for (int i = 0; i < 3 && status == 0; i++) {
        status = f_dnnl_memory_create(&plain[i], &e->plain[i], distill_dnnl_engine, (void *)plain_data[i]) == dnnl_success ? 0 : -1;
        if (status == 0 && e->reorder[i]) {
            void *data = buffer(i, e->blocked_size[i]);
            status = data && f_dnnl_memory_create(&blocked[i], &e->blocked[i], distill_dnnl_engine, data) == dnnl_success ? 0 : -1;
        }
    }
    if (status == 0 && bias)
        status = f_dnnl_memory_create(&bias_mem, &e->bias_md, distill_dnnl_engine, (void *)bias) == dnnl_success ? 0 : -1;
    if (status == 0 && e->scratch_size) {
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {(dnnl_dim_t)e->scratch_size};
        void *data = buffer(3, e->scratch_size);
        status = data && f_dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_x) == dnnl_success
            && f_dnnl_memory_create(&scratch, &md, distill_dnnl_engine, data) == dnnl_success ? 0 : -1;
    }
    dnnl_memory_t use[3];
    for (int i = 0; i < 3; i++) use[i] = e->reorder[i] ? blocked[i] : plain[i];
    for (int i = 0; i < 2 && status == 0; i++) {
        if (!e->reorder[i]) continue;
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, plain[i]}, {DNNL_ARG_TO, blocked[i]}, {DNNL_ARG_SCRATCHPAD, scratch}};
        status = execute(e->reorder[i], scratch ? 3 : 2, args);
    }
    if (status == 0) {
        dnnl_exec_arg_t args[6];
        int n = 0;
        if (key->kind == FORWARD) {
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, use[0]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, use[1]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, use[2]};
            if (bias_mem) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias_mem};
        } else if (key->kind == BACKWARD_DATA) {
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, use[0]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, use[1]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, use[2]};
        } else {
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, use[0]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, use[1]};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, use[2]};
            if (bias_mem) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, bias_mem};
        }
        if (scratch) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
        status = execute(e->conv, n, args);
    }
    if (status == 0 && e->reorder[2]) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, blocked[2]}, {DNNL_ARG_TO, plain[2]}, {DNNL_ARG_SCRATCHPAD, scratch}};
        status = execute(e->reorder[2], scratch ? 3 : 2, args);
    }
    if (status == 0) status = f_dnnl_stream_wait(thread_stream) == dnnl_success ? 0 : -1;
    for (int i = 0; i < 3; i++) {
        if (plain[i]) f_dnnl_memory_destroy(plain[i]);
        if (blocked[i]) f_dnnl_memory_destroy(blocked[i]);
    }
    if (bias_mem) f_dnnl_memory_destroy(bias_mem);
    if (scratch) f_dnnl_memory_destroy(scratch);
    release(e);
    return status;
}

static key_t_ make_key(const distill_conv_shape *s, int batch, int kind, int bias) {
    key_t_ k;
    memset(&k, 0, sizeof k);
    k.shape = *s;
    k.batch = batch;
    k.kind = kind;
    k.bias = bias;
    return k;
}

int distill_dnnl_forward_implementation(const distill_conv_shape *s, int batch, char *text, int capacity) {
    if (capacity <= 0) return 0;
    if (load_state != 1) { snprintf(text, (size_t)capacity, "libdnnl did not load"); return 0; }
    key_t_ k = make_key(s, batch, FORWARD, 1);
    entry *e = take(&k);
    if (!e) { snprintf(text, (size_t)capacity, "no room: out of memory, or every cached convolution in use"); return 0; }
    int found = !e->failure[0];
    // Copied: the entry (and the string its primitive descriptor owns) may be evicted once released.
    if (found) snprintf(text, (size_t)capacity, "%s", e->implementation ? e->implementation : "unnamed");
    else snprintf(text, (size_t)capacity, "failed at %s", e->failure);
    release(e);
    return found;
}

int distill_dnnl_conv_forward(const distill_conv_shape *s, int batch, const float *x, const float *w, const float *b, float *y) {
    key_t_ k = make_key(s, batch, FORWARD, b != NULL);
    return run(&k, x, w, b, y);
}

int distill_dnnl_conv_backward_data(const distill_conv_shape *s, int batch, const float *dy, const float *w, float *dx) {
    key_t_ k = make_key(s, batch, BACKWARD_DATA, 0);
    return run(&k, dy, w, NULL, dx);
}

int distill_dnnl_conv_backward_weights(const distill_conv_shape *s, int batch, const float *x, const float *dy, float *dw, float *db) {
    key_t_ k = make_key(s, batch, BACKWARD_WEIGHTS, db != NULL);
    return run(&k, x, dy, db, dw);
}

#endif
