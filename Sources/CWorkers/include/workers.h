#ifndef DISTILL_WORKERS_H
#define DISTILL_WORKERS_H
/// A part of a parallel task.
typedef void (*distill_task_fn)(void *context, int part);

/// Runs `task(context, p)` for p in 0..<parts concurrently, each part once, on the calling thread and persistent
/// helper threads (created on first use, at most 63), and returns when all parts are done. Threads claim parts in
/// order (part 0 on the calling thread; a helper that is not running, e.g. preempted on a busy
/// machine, leaves its parts to the threads that are), so which thread runs parts 1... is not fixed. Calls from several
/// threads are serialised; a call from inside a running part runs all its parts on the calling thread, in order.
/// Returns the number of parts run (parts is clamped to 1...64).
///
/// Helpers spin for about `spin_microseconds` after each task before sleeping on a condition variable, so
/// back-to-back tasks (single-image inference, one layer after another) start within a microsecond instead of
/// paying a thread wake-up, while an idle process costs nothing.
int distill_workers_run(int parts, distill_task_fn task, void *context);

/// How long helpers spin between tasks before sleeping (default 200 microseconds; 0 = sleep at once).
void distill_workers_set_spin(int spin_microseconds);

/// Cores lent to work beside the parallel tasks (the trainer's teacher overlap): `delta` +1 when such work starts,
/// -1 when it ends. While any are lent, `distill_workers_run` runs every part on the calling thread, in order (same
/// results: parts are independent), and spinning helpers go to sleep, so the lent core is left to that work.
void distill_workers_lend(int delta);
int distill_workers_lent(void);

/// Marks the calling thread as one that must not split work over threads (1) or clears the mark (0); nests.
void distill_thread_alone_push(void);
void distill_thread_alone_pop(void);
int distill_thread_is_alone(void);
#endif
