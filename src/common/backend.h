/* The contract between the OS-independent loop and each OS backend. */
#ifndef PROA_BACKEND_H
#define PROA_BACKEND_H

/*
 * Everything above this header is written once for all OSes; everything
 * below (src/win, src/unix) implements it.
 *
 * proa is a proactor. I/O is expressed as operations (proa__op) that are
 * submitted now and complete later. On Windows an operation is a real
 * overlapped call whose OVERLAPPED lives inside the op; on Unix the engine
 * emulates completions over a readiness poller (epoll, kqueue, poll) by
 * performing the call when the handle is ready. Rules every backend keeps:
 *
 * - A completion is delivered only from proa__backend_poll(), never
 *   re-entrantly from the call that submitted it. A backend may try the system
 *   call at once (the Unix fast path) but then queues the completion.
 * - At most one operation per direction per handle is in flight; transports
 *   keep their own queues.
 * - Cancel always ends in a completion with PROA_ECANCELED. Memory an op
 *   points at stays valid until its completion has been seen, and a handle is
 *   closed only after all its operations completed.
 * - An idle connection pins no read buffer: wait-readable comes first, then a
 *   non-blocking read into a buffer the caller supplies.
 *
 * The socket operations (recv, send, recvfrom, sendto, accept, connect, pipe
 * read/write, wait-readable/-writable, cancel) are added to this header by
 * the transports that use them; the loop core needs only the calls below.
 */

#include <stdint.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

#include "proa/loop.h"

typedef struct proa__backend proa__backend;
typedef struct proa__op proa__op;

/* Runs on the loop thread, in the poll phase, when `op` has completed. */
typedef void (*proa__op_fn)(proa__op *op);

/* An operation, embedded in the object that owns it. */
struct proa__op {
#ifdef _WIN32
  OVERLAPPED overlapped; /* what the kernel completes; must stay first */
#endif
  proa__op_fn complete; /* called once with `result` set */
  intptr_t result;      /* bytes transferred, or a negative PROA_E* code */
  proa__op *next;       /* link in the backend's completion queue */
};

/*
 * Creates the backend for `loop`. `name` is the backend requested (NULL for
 * the OS default). Returns 0, PROA_EINVAL for a name this OS does not have,
 * or the OS error.
 */
int proa__backend_init(proa_loop *loop, const char *name, proa__backend **out);

/* Releases the backend; no operation may be in flight. */
void proa__backend_free(proa__backend *be);

/* The name of the backend in use (a static string). */
const char *proa__backend_name(const proa__backend *be);

/*
 * Waits up to `timeout_ms` (-1 forever, 0 not at all) for completions and
 * delivers them: op->complete() for operations, proa__loop_on_signal() for
 * signals. A wake-up ends the wait early. Returns 0 or a PROA_E* code.
 */
int proa__backend_poll(proa__backend *be, int64_t timeout_ms);

/* Ends a current or the next wait early. Thread-safe and cheap. */
void proa__backend_wakeup(proa__backend *be);

/*
 * Queues `op` (with op->result already set) to be completed from the next
 * poll. Loop thread only. On Windows this posts the op's OVERLAPPED to the
 * completion port, so it travels the same path as kernel completions.
 */
void proa__backend_post(proa__backend *be, proa__op *op);

/*
 * Starts delivering `signum` to this loop through proa__loop_on_signal().
 * The loop core has validated nothing but the range check of the public
 * API; the backend rejects what its OS cannot catch (PROA_EINVAL,
 * PROA_ENOTSUP) and reports PROA_EBUSY when another loop owns the signal.
 */
int proa__backend_signal_start(proa__backend *be, int signum);

/* Stops delivering `signum` and restores its default disposition. */
void proa__backend_signal_stop(proa__backend *be, int signum);

/* Implemented by the loop core; the backend calls it from poll. */
void proa__loop_on_signal(proa_loop *loop, int signum);

/* ---- services every backend provides for the OS-independent code ---- */

/* A monotonic clock in nanoseconds. Thread-safe. */
uint64_t proa__clock_ns(void);

/* An id of the calling thread, never 0. */
uint64_t proa__thread_id(void);

/* A mutex for the few structures shared across threads. */
typedef struct proa__mutex proa__mutex;
proa__mutex *proa__mutex_new(void);
void proa__mutex_free(proa__mutex *m);
void proa__mutex_lock(proa__mutex *m);
void proa__mutex_unlock(proa__mutex *m);

/* A condition variable paired with a proa__mutex. */
typedef struct proa__cond proa__cond;
proa__cond *proa__cond_new(void);
void proa__cond_free(proa__cond *c);
void proa__cond_wait(proa__cond *c, proa__mutex *m);
void proa__cond_signal(proa__cond *c);
void proa__cond_broadcast(proa__cond *c);

/* Starts a detached thread running fn(arg). Returns 0 or a PROA_E* code. */
int proa__thread_start(void (*fn)(void *arg), void *arg);

/* How many CPUs this process may use (at least 1). */
unsigned proa__cpu_count(void);

/* The highest signal number the OS has (signals are 1 .. this). */
int proa__signal_max(void);

#endif /* PROA_BACKEND_H */
