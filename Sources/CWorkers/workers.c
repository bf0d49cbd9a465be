#include "workers.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>

#define MAX_HELPERS 63

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;   // one task at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER; // guards sleeping on `wake`
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
// The current task's generation (high 32 bits: bumped once per task, which wakes the helpers) and its next unclaimed
// part (low 32 bits). Every part but the calling thread's first is claimed by one compare-and-swap, so a helper that
// is not running when a task starts (preempted by another process on a busy machine) leaves its part to the calling
// thread instead of holding it up. Written under `sleep_lock` (helpers sleep until the generation changes).
static _Atomic unsigned long long claim;
static atomic_int finished;             // parts of the current task finished
// The current task, written before `claim` moves to its generation (release) and read after (acquire). A helper
// that read them for a task that ended before it could claim a part fails its compare-and-swap and discards them.
static _Atomic(distill_task_fn) current_task;
static _Atomic(void *) current_context;
static atomic_int current_parts;
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

static unsigned generation(void) { return (unsigned)(atomic_load_explicit(&claim, memory_order_acquire) >> 32); }

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

// Claims and runs parts of the task of generation `g` until none is left.
static void run_parts(unsigned g) {
    for (;;) {
        unsigned long long c = atomic_load_explicit(&claim, memory_order_acquire);
        distill_task_fn task = atomic_load_explicit(&current_task, memory_order_relaxed);
        void *context = atomic_load_explicit(&current_context, memory_order_relaxed);
        int parts = atomic_load_explicit(&current_parts, memory_order_relaxed);
        unsigned part = (unsigned)(c & 0xFFFFFFFFu);
        if ((unsigned)(c >> 32) != g || part >= (unsigned)parts) return;
        if (!atomic_compare_exchange_weak_explicit(&claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        inside_task = 1;
        task(context, (int)part);
        inside_task = 0;
        atomic_fetch_add_explicit(&finished, 1, memory_order_release);
    }
}

static void *helper_main(void *arg) {
    int index = (int)(long)arg;
    // Not a fresh load: the helper may first run after the task that created it was published.
    unsigned seen = start_generation[index];
    for (;;) {
        // Spin a little, then sleep until the generation changes.
        long long deadline = now_ns() + atomic_load_explicit(&spin_ns, memory_order_relaxed);
        unsigned spins = 0;
        while (generation() == seen) {
            cpu_relax();
            if ((++spins & 255) != 0) continue;
            if (spins > 4096) sched_yield();  // let a runnable thread have this core when they are oversubscribed
            if (now_ns() > deadline || atomic_load_explicit(&lent, memory_order_relaxed) > 0) {
                pthread_mutex_lock(&sleep_lock);
                while (generation() == seen)
                    pthread_cond_wait(&wake, &sleep_lock);
                pthread_mutex_unlock(&sleep_lock);
            }
        }
        seen = generation();
        run_parts(seen);
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
        start_generation[helper_count] = generation();
        if (pthread_create(&thread, &attributes, helper_main, (void *)(long)helper_count) != 0) {
            pthread_attr_destroy(&attributes);
            break;
        }
        pthread_attr_destroy(&attributes);
        helper_count += 1;
    }
    if (parts > helper_count + 1) parts = helper_count + 1;
    atomic_store_explicit(&current_task, task, memory_order_relaxed);
    atomic_store_explicit(&current_context, context, memory_order_relaxed);
    atomic_store_explicit(&current_parts, parts, memory_order_relaxed);
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    unsigned g = generation() + 1;
    pthread_mutex_lock(&sleep_lock);
    atomic_store_explicit(&claim, ((unsigned long long)g << 32) | 1u, memory_order_release);  // part 0: this thread
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    // Part 0 here, then any part no helper has claimed yet; then wait for the parts helpers claimed. After a short
    // spin it yields, so that on oversubscribed cores a helper that was preempted in the middle of a part gets this
    // core back instead of waiting for the end of our time slice.
    inside_task = 1;
    task(context, 0);
    inside_task = 0;
    atomic_fetch_add_explicit(&finished, 1, memory_order_release);
    run_parts(g);
    for (unsigned spins = 0; atomic_load_explicit(&finished, memory_order_acquire) < parts; spins++) {
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
