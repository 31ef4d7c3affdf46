/* The event loop: lifetime, running and stopping, callbacks, timers, clock. */
#ifndef PROA_LOOP_H
#define PROA_LOOP_H

#include "proa/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct proa_loop proa_loop;
typedef struct proa_handle proa_handle;
typedef struct proa_future proa_future;

/* A callback scheduled on the loop; `arg` is passed through untouched. */
typedef void (*proa_callback)(void *arg);

/* Options for proa_loop_new_ex(); start from PROA_LOOP_OPTIONS_INIT. */
typedef struct proa_loop_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  /*
   * Which backend to use: "iocp" on Windows; "epoll", "kqueue" or "poll" on
   * Unix. NULL means the PROA_BACKEND environment variable if it is set and
   * non-empty, else the best one for the OS.
   */
  const char *backend;
  /* 1 or 0 forces debug mode on or off; -1 reads PROA_DEBUG (set, non-empty
   * and not "0" means on). */
  int debug;
} proa_loop_options;

#define PROA_LOOP_OPTIONS_INIT                                                 \
  { sizeof(proa_loop_options), NULL, -1 }

/*
 * Creates a loop with the default options. On success stores it in *out (the
 * caller owns one reference) and returns 0. Errors: PROA_EINVAL (out is NULL,
 * or PROA_BACKEND names a backend this OS does not have), PROA_ENOMEM, or the
 * OS error that prevented creating the poller.
 */
PROA_API int proa_loop_new(proa_loop **out);

/* As proa_loop_new() with options; `opts` may be NULL. */
PROA_API int proa_loop_new_ex(proa_loop **out, const proa_loop_options *opts);

/*
 * Reference counting. Futures and other objects bound to a loop hold a
 * reference, so the memory outlives them; unref of the last reference closes
 * the loop if needed and frees it. The count is atomic, so a reference may be
 * dropped on any thread, but the last one only while the loop is not running.
 */
PROA_API proa_loop *proa_loop_ref(proa_loop *loop);
PROA_API void proa_loop_unref(proa_loop *loop);

/*
 * Closes the loop: pending callbacks and timers are dropped (never run),
 * signal handlers are removed, the executor is told to shut down without
 * waiting, unfinished tasks are dropped, and transports, endpoints and
 * servers still open have their sockets closed without further callbacks
 * (their futures end cancelled; debug mode names them). Idempotent and
 * irreversible: afterwards every scheduling function fails with
 * PROA_ECLOSED. Returns PROA_ERUNNING (and does nothing) while the loop runs.
 */
PROA_API int proa_loop_close(proa_loop *loop);

/*
 * proa_loop_close() followed by proa_loop_unref(): the usual way to end a
 * loop's life. Returns PROA_ERUNNING (and keeps the reference) while the loop
 * runs. NULL is accepted and ignored.
 */
PROA_API int proa_loop_free(proa_loop *loop);

/* The name of the backend in use ("epoll", "poll", "iocp", ...). Static. */
PROA_API const char *proa_loop_backend(const proa_loop *loop);

/*
 * Runs until proa_loop_stop() is called. If stop was called before, polls for
 * I/O once with a zero timeout, runs what is ready and returns. Returns 0,
 * PROA_ERUNNING if this or another loop already runs on this thread,
 * PROA_ECLOSED if the loop is closed.
 */
PROA_API int proa_loop_run_forever(proa_loop *loop);

/*
 * Runs until `future` is done and returns its outcome: 0 with the result in
 * *result (may be NULL; the future keeps ownership of the value), or the
 * future's error code (PROA_ECANCELED when it was cancelled). PROA_ESTOPPED if
 * the loop was stopped before the future completed; PROA_EINVAL if the future
 * belongs to another loop; plus the errors of proa_loop_run_forever().
 */
PROA_API int proa_loop_run_until_complete(proa_loop *loop, proa_future *future,
                                          void **result);

/*
 * Asks run_forever to return: the batch of callbacks being run finishes, and
 * callbacks scheduled by that batch wait for the next run. Loop thread only
 * (PROA_EWRONGTHREAD in debug mode); otherwise returns 0.
 */
PROA_API int proa_loop_stop(proa_loop *loop);

PROA_API bool proa_loop_is_running(const proa_loop *loop);
PROA_API bool proa_loop_is_closed(const proa_loop *loop);

/* The loop's monotonic clock, in seconds. Thread-safe. */
PROA_API double proa_loop_time(const proa_loop *loop);

/*
 * Schedules cb(arg) to run once, in FIFO order, on a later iteration. If `out`
 * is non-NULL the caller receives a reference to the handle (release it with
 * proa_handle_unref). Errors: PROA_EINVAL (cb is NULL), PROA_ECLOSED,
 * PROA_ENOMEM, PROA_EWRONGTHREAD (debug mode, called from a foreign thread).
 */
PROA_API int proa_call_soon(proa_loop *loop, proa_callback cb, void *arg,
                            proa_handle **out);

/*
 * As proa_call_soon() but callable from any thread: it wakes the loop if it is
 * waiting for I/O. Safe to race with proa_loop_close(): after the close it
 * fails with PROA_ECLOSED and cb never runs.
 */
PROA_API int proa_call_soon_threadsafe(proa_loop *loop, proa_callback cb,
                                       void *arg, proa_handle **out);

/*
 * Schedules cb(arg) to run once, `delay` seconds from now (a negative delay
 * means as soon as possible). Never runs before its deadline; callbacks with
 * equal deadlines run in an unspecified order. Errors as proa_call_soon(),
 * plus PROA_EINVAL for a NaN delay.
 */
PROA_API int proa_call_later(proa_loop *loop, double delay, proa_callback cb,
                             void *arg, proa_handle **out);

/* As proa_call_later() with an absolute deadline on proa_loop_time()'s clock.
 */
PROA_API int proa_call_at(proa_loop *loop, double when, proa_callback cb,
                          void *arg, proa_handle **out);

/*
 * Cancels the call: the callback will not run. Cancelling a handle whose
 * callback already ran, or that was already cancelled, does nothing. Loop
 * thread only.
 */
PROA_API void proa_handle_cancel(proa_handle *handle);
PROA_API bool proa_handle_cancelled(const proa_handle *handle);
/* A timer's deadline on the loop clock; 0 for a call_soon handle. */
PROA_API double proa_handle_when(const proa_handle *handle);
/* Reference counting; thread-safe. */
PROA_API proa_handle *proa_handle_ref(proa_handle *handle);
PROA_API void proa_handle_unref(proa_handle *handle);

/* ---- debug mode ---- */

/*
 * Debug mode: slow callbacks are logged, non-thread-safe calls from a foreign
 * thread fail with PROA_EWRONGTHREAD and are reported to the exception
 * handler, and objects freed without being closed are reported.
 */
PROA_API void proa_loop_set_debug(proa_loop *loop, bool enabled);
PROA_API bool proa_loop_get_debug(const proa_loop *loop);
/* Threshold above which a callback counts as slow in debug mode (0.1 s). */
PROA_API void proa_loop_set_slow_callback_duration(proa_loop *loop,
                                                   double seconds);
PROA_API double proa_loop_get_slow_callback_duration(const proa_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* PROA_LOOP_H */
