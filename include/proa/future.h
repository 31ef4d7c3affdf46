/* Futures: a result or an error that arrives later, observed on the loop. */
#ifndef PROA_FUTURE_H
#define PROA_FUTURE_H

#include "proa/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called (through the loop, never synchronously) once the future is done. */
typedef void (*proa_done_callback)(proa_future *future, void *arg);
/* Releases a result value when its future is freed. */
typedef void (*proa_free_fn)(void *value);

/*
 * Creates a pending future bound to `loop` (asyncio's create_future). The
 * caller owns one reference. Errors: PROA_EINVAL, PROA_ENOMEM, PROA_ECLOSED,
 * PROA_EWRONGTHREAD (debug mode). Futures are not thread-safe: use them on the
 * loop thread (complete them from elsewhere via proa_call_soon_threadsafe).
 * Only proa_future_ref() and proa_future_unref() may be called from any
 * thread (the count is atomic), and the last reference of a future made by
 * proa_create_task, proa_sleep, proa_gather or proa_wait_for must still be
 * dropped on the loop thread: freeing those touches the loop.
 */
PROA_API int proa_future_new(proa_loop *loop, proa_future **out);

PROA_API proa_future *proa_future_ref(proa_future *future);
/*
 * Drops a reference. When the last one goes, a result is released with its
 * free function, and an error that was never retrieved (by result/error) is
 * reported to the loop's exception handler.
 */
PROA_API void proa_future_unref(proa_future *future);

PROA_API proa_loop *proa_future_loop(const proa_future *future);
PROA_API bool proa_future_done(const proa_future *future);
PROA_API bool proa_future_cancelled(const proa_future *future);

/*
 * Completes the future with `value` and schedules the done callbacks.
 *
 * Who owns `value`: on 0 the future does, and releases it with `free_value`
 * (may be NULL) when it is freed. The only errors come before anything is
 * taken, and then `value` stays the caller's: PROA_EINVAL (future NULL) and
 * PROA_ESTATE (already done, e.g. cancelled). Nothing fails once the value
 * is taken: without memory to queue the callbacks the loop still runs them
 * at its next iteration, and on a closed loop, where they can never run,
 * they are dropped. So a caller frees `value` only when this returns an
 * error, and never after a 0.
 */
PROA_API int proa_future_set_result(proa_future *future, void *value,
                                    proa_free_fn free_value);

/*
 * Completes the future with an error (`error` < 0, else PROA_EINVAL) and an
 * optional message, which is copied (if it cannot be, for want of memory,
 * the future completes without it). Errors, before anything changes:
 * PROA_EINVAL, PROA_ESTATE if already done. As for set_result, nothing
 * fails once the future is completed.
 */
PROA_API int proa_future_set_error(proa_future *future, int error,
                                   const char *message);

/*
 * Cancels a pending future (its error becomes PROA_ECANCELED, with a copy of
 * `message` if not NULL and there is memory for it) and schedules its done
 * callbacks. Returns true if it was cancelled, false if it was already done.
 * A task is cancelled as task.h describes (true while its body still has to
 * see the cancellation).
 */
PROA_API bool proa_future_cancel(proa_future *future, const char *message);

/*
 * The outcome: 0 with the value in *value (may be NULL; still owned by the
 * future), the error code, PROA_ECANCELED, or PROA_ENOTDONE while pending.
 * Marks the error as retrieved.
 */
PROA_API int proa_future_result(proa_future *future, void **value);

/* The error code (0 for a result, PROA_ENOTDONE while pending); marks it
 * retrieved. */
PROA_API int proa_future_error(proa_future *future);

/* The message given with the error or cancellation, or NULL. Owned by the
 * future. */
PROA_API const char *proa_future_error_message(const proa_future *future);

/*
 * Adds a done callback: scheduled with call_soon when the future completes,
 * or right away if it is already done; callbacks run in the order added.
 * Errors, all meaning the callback was not added: PROA_EINVAL, PROA_ENOMEM,
 * PROA_ECLOSED (done future on a closed loop). A callback added (0) runs
 * exactly once, unless the loop closes first.
 */
PROA_API int proa_future_add_done_callback(proa_future *future,
                                           proa_done_callback cb, void *arg);

/* Removes every pending (cb, arg) registration; returns how many. */
PROA_API int proa_future_remove_done_callback(proa_future *future,
                                              proa_done_callback cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* PROA_FUTURE_H */
