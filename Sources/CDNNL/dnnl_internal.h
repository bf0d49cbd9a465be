// Shared by the CDNNL sources (not part of the module's interface): whether oneDNN's header was there at build time
// (DISTILL_HAVE_DNNL; without it every source compiles stubs that report oneDNN unavailable) and, where it was,
// oneDNN's entry points resolved with dlsym by distill_dnnl_load in dnnl_convolution.c, the CPU engine and the load
// state.
#ifndef DISTILL_DNNL_INTERNAL_H
#define DISTILL_DNNL_INTERNAL_H

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl.h>)
#define DISTILL_HAVE_DNNL 1
#endif
#endif

#ifdef DISTILL_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

#define DISTILL_DNNL_FUNCTIONS(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_destroy) X(dnnl_memory_desc_init_by_tag) \
    X(dnnl_memory_desc_get_size) X(dnnl_memory_desc_equal) X(dnnl_memory_create) X(dnnl_memory_destroy) \
    X(dnnl_memory_set_data_handle) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_set_scratchpad_mode) \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_primitive_attr_destroy) X(dnnl_post_ops_create) \
    X(dnnl_post_ops_append_sum) X(dnnl_post_ops_append_eltwise) X(dnnl_post_ops_destroy) \
    X(dnnl_dilated_convolution_forward_desc_init) X(dnnl_dilated_convolution_backward_data_desc_init) \
    X(dnnl_dilated_convolution_backward_weights_desc_init) X(dnnl_pooling_v2_forward_desc_init) \
    X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query_md) \
    X(dnnl_primitive_desc_query) X(dnnl_reorder_primitive_desc_create) X(dnnl_primitive_create) \
    X(dnnl_primitive_destroy) X(dnnl_primitive_execute) X(dnnl_stream_wait) X(dnnl_version) X(dnnl_sgemm)

#define DISTILL_DNNL_DECLARE(name) extern __attribute__((visibility("hidden"))) __typeof__(&name) f_##name;
DISTILL_DNNL_FUNCTIONS(DISTILL_DNNL_DECLARE)

/// omp_set_num_threads from the library's OpenMP runtime (NULL when it has none).
extern __attribute__((visibility("hidden"))) void (*f_omp_set_num_threads)(int);
/// The CPU engine, once loaded.
extern __attribute__((visibility("hidden"))) dnnl_engine_t distill_dnnl_engine;
/// 1 once oneDNN loaded and resolved.
__attribute__((visibility("hidden"))) int distill_dnnl_loaded(void);

#endif  // DISTILL_HAVE_DNNL

#endif
