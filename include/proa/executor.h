/* Executors: run blocking functions on other threads, get a future back. */
#ifndef PROA_EXECUTOR_H
#define PROA_EXECUTOR_H

#include "proa/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A blocking function for an executor; runs on a worker thread. It returns 0
 * and may store a value in *result (the future takes it, and releases it with
 * the free function given to proa_run_in_executor), or returns a negative
 * PROA_E* code that becomes the future's error.
 */
typedef int (*proa_work_fn)(void *arg, void **result);

/*
 * What an executor runs: work(ctx, 0) to do the job, or work(ctx,
 * PROA_ECANCELED) when the executor drops a job it accepted without running
 * it (at shutdown). Each accepted job gets exactly one of the two calls.
 */
typedef void (*proa_executor_job)(void *ctx, int status);

/*
 * An executor, asyncio's Executor: anything that can run jobs on threads
 * other than the loop's. To plug in your own, embed this struct (usually
 * first) in yours and fill in both functions.
 */
typedef struct proa_executor proa_executor;
struct proa_executor {
  /*
   * Accepts job(ctx, ...) to be called later, on another thread. Returns 0,
   * or an error (then the job is never called). Called on loop threads,
   * possibly of several loops at once.
   */
  int (*submit)(proa_executor *self, proa_executor_job job, void *ctx);
  /*
   * Stops accepting jobs and drops the queued ones (calling them with
   * PROA_ECANCELED), without waiting for running jobs.
   */
  void (*shutdown)(proa_executor *self);
};

/*
 * Creates a thread pool with at most `max_threads` workers (0: the number of
 * CPUs plus 4, at most 32, as asyncio's default). Workers start on demand.
 * Errors: PROA_EINVAL (out NULL), PROA_ENOMEM.
 */
PROA_API int proa_thread_pool_new(unsigned max_threads, proa_executor **out);

/*
 * Shuts the pool down (as its shutdown function) and releases it. Jobs that
 * are running finish in the background; the memory goes when the last
 * worker exits. Does not wait. Any thread.
 */
PROA_API void proa_thread_pool_free(proa_executor *pool);

/*
 * Runs fn(arg) on `executor` (NULL: the loop's default executor, a thread
 * pool started on first use) and stores in *out a future (the caller owns a
 * reference) that completes on the loop thread with fn's result or error. If
 * the job is dropped, the future is cancelled. Cancelling the future does not
 * stop fn, but its result is then released with free_result. Loop thread
 * only. Errors: PROA_EINVAL, PROA_ENOMEM, PROA_ECLOSED, PROA_EWRONGTHREAD
 * (debug mode), or the executor's submit error.
 */
PROA_API int proa_run_in_executor(proa_loop *loop, proa_executor *executor,
                                  proa_work_fn fn, void *arg,
                                  proa_free_fn free_result, proa_future **out);

/*
 * Makes `executor` the loop's default (NULL: back to the built-in pool). The
 * loop does not own it: proa_loop_close() calls its shutdown function, and
 * freeing it stays the caller's job, after the loop is closed. Loop thread
 * only. Errors: PROA_ECLOSED, PROA_EWRONGTHREAD (debug mode).
 */
PROA_API int proa_loop_set_default_executor(proa_loop *loop,
                                            proa_executor *executor);

#ifdef __cplusplus
}
#endif

#endif /* PROA_EXECUTOR_H */
