#include "workers.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>

#define MAX_HELPERS 63

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;   // one task at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER; // guards sleeping on `wake`
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_uint generation;          // bumped once per task
static atomic_int pending;              // helpers that have not finished the current task
static distill_task_fn current_task;    // written before `generation` is bumped (release), read after (acquire)
static void *current_context;
static int current_parts;
static int helper_count;                // helpers started (under run_lock)
static atomic_int spin_ns = 200000;
static unsigned start_generation[MAX_HELPERS]; // the generation before a helper's first task (set before it starts)
static _Thread_local int inside_task;          // set while this thread runs a part: nested calls run inline
static atomic_int lent;                        // cores lent to work beside the tasks (distill_workers_lend)
static _Thread_local int alone_depth;          // distill_thread_alone_push depth

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *helper_main(void *arg) {
    int index = (int)(long)arg;  // this helper runs part index + 1
    // Not a fresh load: the helper may first run after the task that created it was published.
    unsigned seen = start_generation[index];
    for (;;) {
        // Spin a little, then sleep until the generation changes.
        long long deadline = now_ns() + atomic_load_explicit(&spin_ns, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
            cpu_relax();
            if ((++spins & 255) != 0) continue;
            if (spins > 4096) sched_yield();  // let a runnable thread have this core when they are oversubscribed
            if (now_ns() > deadline || atomic_load_explicit(&lent, memory_order_relaxed) > 0) {
                pthread_mutex_lock(&sleep_lock);
                while (atomic_load_explicit(&generation, memory_order_acquire) == seen)
                    pthread_cond_wait(&wake, &sleep_lock);
                pthread_mutex_unlock(&sleep_lock);
            }
        }
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        if (index + 1 < current_parts) {
            inside_task = 1;
            current_task(current_context, index + 1);
            inside_task = 0;
        }
        atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
    }
    return 0;
}

int distill_workers_run(int parts, distill_task_fn task, void *context) {
    if (parts > MAX_HELPERS + 1) parts = MAX_HELPERS + 1;
    if (parts <= 1 || inside_task || atomic_load_explicit(&lent, memory_order_acquire) > 0) {
        // A task that starts another (from any of its parts) would wait for helpers busy with itself: run it here.
        for (int p = 0; p < (parts < 1 ? 1 : parts); p++) task(context, p);
        return parts < 1 ? 1 : parts;
    }
    pthread_mutex_lock(&run_lock);
    while (helper_count < parts - 1) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        start_generation[helper_count] = atomic_load_explicit(&generation, memory_order_relaxed);
        if (pthread_create(&thread, &attributes, helper_main, (void *)(long)helper_count) != 0) {
            pthread_attr_destroy(&attributes);
            break;
        }
        pthread_attr_destroy(&attributes);
        helper_count += 1;
    }
    if (parts > helper_count + 1) parts = helper_count + 1;
    current_task = task;
    current_context = context;
    current_parts = parts;
    // Every helper acknowledges every task (those without a part just count down), so none can still be reading
    // the previous task's fields when the next one is published.
    atomic_store_explicit(&pending, helper_count, memory_order_relaxed);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    inside_task = 1;
    task(context, 0);
    inside_task = 0;
    // Wait for the helpers; after a short spin yield, so that on oversubscribed cores a helper that was preempted
    // gets this core back instead of waiting for the end of our time slice.
    for (unsigned spins = 0; atomic_load_explicit(&pending, memory_order_acquire) > 0; spins++) {
        cpu_relax();
        if (spins > 2048) sched_yield();
    }
    pthread_mutex_unlock(&run_lock);
    return parts;
}

void distill_workers_lend(int delta) { atomic_fetch_add_explicit(&lent, delta, memory_order_acq_rel); }

int distill_workers_lent(void) { return atomic_load_explicit(&lent, memory_order_acquire); }

void distill_thread_alone_push(void) { alone_depth += 1; }

void distill_thread_alone_pop(void) { if (alone_depth > 0) alone_depth -= 1; }

int distill_thread_is_alone(void) { return alone_depth > 0; }

void distill_workers_set_spin(int spin_microseconds) {
    atomic_store_explicit(&spin_ns, spin_microseconds < 0 ? 0 : spin_microseconds * 1000, memory_order_relaxed);
}
