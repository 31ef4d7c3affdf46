/* Tasks: stackful coroutines that await futures in straight-line C code. */
#ifndef PROA_TASK_H
#define PROA_TASK_H

#include "proa/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The body of a task; runs on the task's own stack, on the loop thread. It
 * returns 0 and may store a value in *result (the task's future takes it,
 * releasing it with the options' free_result), or a negative PROA_E* code
 * that becomes the task's error.
 */
typedef int (*proa_task_fn)(void *arg, void **result);

/* Options for proa_create_task; start from PROA_TASK_OPTIONS_INIT. */
typedef struct proa_task_options {
  size_t size;       /* sizeof the struct: set by the _INIT macro (common.h) */
  size_t stack_size; /* 0: 256 KiB; rounded up to whole pages */
  proa_free_fn free_result; /* releases the result when the task is freed */
  const char *name;         /* for reports; copied; may be NULL */
} proa_task_options;

#define PROA_TASK_OPTIONS_INIT                                                 \
  { sizeof(proa_task_options), 0, NULL, NULL }

/*
 * Creates a task that runs fn(arg) on its own stack, starting on the loop's
 * next iteration, through the loop's task factory if one is set. The task
 * is a future: *out receives it (the caller owns a reference), to await,
 * add done callbacks to, cancel or pass to proa_loop_run_until_complete.
 * A task holds a reference to itself until its body returns; one still
 * pending when the loop closes is destroyed there, and each such task is
 * reported to the exception handler ("Task was destroyed but it is
 * pending", with the task as the context's future), in every mode.
 * Loop thread only. Errors: PROA_EINVAL (also a stack_size too large to
 * round up to whole pages plus a guard page), PROA_ENOMEM (no memory for
 * the stack), PROA_ECLOSED, PROA_EWRONGTHREAD (debug mode).
 */
PROA_API int proa_create_task(proa_loop *loop, proa_task_fn fn, void *arg,
                              const proa_task_options *opts, proa_future **out);

/*
 * Inside a task: suspends it until `future` is done, then returns the
 * outcome as proa_future_result() does (the value stays owned by the
 * future). A future that is already done returns at once.
 *
 * Cancellation follows asyncio. Cancelling a task (proa_future_cancel,
 * with an optional message) cancels the future it awaits, with the same
 * message, so every other awaiter of that future sees the cancellation
 * too; the await returns PROA_ECANCELED once. If the awaited future cannot
 * be cancelled any more (it is done), or the task awaits nothing yet, the
 * task's next await returns PROA_ECANCELED. A cancelled task ends
 * cancelled (proa_future_cancelled, with the cancel's message), whatever
 * its body returns; so does a task whose body returns PROA_ECANCELED (what
 * an await of a cancelled future gave it): either way that is no error,
 * and it is never reported as one nobody retrieved.
 *
 * Errors, returned at once: PROA_ENOTINTASK outside a task; PROA_EINVAL
 * when `future` is NULL, is the task itself, or belongs to another loop
 * than the task's (its callbacks would run on that loop's thread).
 */
PROA_API int proa_await(proa_future *future, void **result);

/* The task running now on the calling thread, or NULL (borrowed). */
PROA_API proa_future *proa_current_task(void);

/* Whether `future` is a task. */
PROA_API bool proa_future_is_task(const proa_future *future);

/*
 * A future that completes (with a NULL result) after `seconds`; awaiting
 * it is asyncio's sleep(). Cancelling it cancels the timer.
 */
PROA_API int proa_sleep(proa_loop *loop, double seconds, proa_future **out);

/*
 * A future that completes when all `count` futures are done: with a NULL
 * result when all succeeded, or with the error of the first one that failed
 * (the others go on; read each one's outcome from it). Cancelling the
 * gather cancels the futures not yet done. The array is copied; each future
 * gets a reference held until it is done.
 */
PROA_API int proa_gather(proa_loop *loop, proa_future *const *futures,
                         size_t count, proa_future **out);

/*
 * A future that completes with `future`'s outcome, or with PROA_ETIMEDOUT
 * after `timeout` seconds, in which case `future` is cancelled (a task's
 * body sees PROA_ECANCELED at its await).
 */
PROA_API int proa_wait_for(proa_loop *loop, proa_future *future, double timeout,
                           proa_future **out);

/*
 * A task factory makes the task for proa_create_task (asyncio's
 * set_task_factory). It may call proa_task_new to build the default task
 * and decorate it. NULL restores the default.
 */
typedef int (*proa_task_factory)(proa_loop *loop, proa_task_fn fn, void *arg,
                                 const proa_task_options *opts,
                                 void *factory_arg, proa_future **out);
PROA_API int proa_loop_set_task_factory(proa_loop *loop,
                                        proa_task_factory factory,
                                        void *factory_arg);
/* The factory, or NULL when the default is in use; *arg may be NULL. */
PROA_API proa_task_factory proa_loop_get_task_factory(const proa_loop *loop,
                                                      void **arg);

/* The default task constructor, bypassing the factory. */
PROA_API int proa_task_new(proa_loop *loop, proa_task_fn fn, void *arg,
                           const proa_task_options *opts, proa_future **out);

#ifdef __cplusplus
}
#endif

#endif /* PROA_TASK_H */
