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
 * The calls below are the whole contract: the loop core's (poll, wake-up,
 * post, signals), the sockets' (open, operations, cancel), and a few
 * services (clock, threads, locks). Synchronous socket calls that are the
 * same on every OS (bind, listen, getsockname, setsockopt, getaddrinfo) live
 * in src/common/socket.c behind sockets.h instead.
 */

#include <stdint.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

#include "proa/loop.h"
#include "proa/stream.h"

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
 * The loop core has only checked that `signum` is in range; the backend
 * rejects what its OS cannot catch (PROA_EINVAL, PROA_ENOTSUP) and reports
 * PROA_EBUSY when another loop owns the signal.
 */
int proa__backend_signal_start(proa__backend *be, int signum);

/* Stops delivering `signum` and restores its default disposition. */
void proa__backend_signal_stop(proa__backend *be, int signum);

/* Implemented by the loop core; the backend calls it from poll. */
void proa__loop_on_signal(proa_loop *loop, int signum);

/* ---- sockets ---- */

/* The backend's state for one socket (opaque above this header). */
typedef struct proa__socket proa__socket;

/* An accept operation; the listener may have several in flight. */
typedef struct proa__accept_op {
  proa__op op;
  proa__socket *accepted; /* on success: the new connection's socket */
#ifdef _WIN32
  uintptr_t pending; /* the SOCKET that AcceptEx fills */
  /* AcceptEx writes both addresses here: (sizeof(sockaddr_in6) + 16) x 2
   * with room to spare. */
  char addresses[2 * (128 + 16)];
#endif
} proa__accept_op;

/*
 * Creates a socket (PROA_AF_*, PROA_SOCK_*, protocol) that is non-blocking,
 * not inherited by children, and associated with the loop. Returns 0 or the
 * error (PROA_EAFNOSUPPORT, PROA_EMFILE, ...).
 */
int proa__socket_open(proa__backend *be, int family, int type, int protocol,
                      proa__socket **out);

/* Takes over an existing socket (an fd or a SOCKET) in the same way. */
int proa__socket_adopt(proa__backend *be, intptr_t fd, proa__socket **out);

/* Closes the socket and frees its state; no operation may be in flight. */
void proa__socket_close(proa__socket *s);

/* The OS socket (an fd or a SOCKET). */
intptr_t proa__socket_fd(const proa__socket *s);

/*
 * Non-blocking calls made on the spot (the speculative path). try_recv
 * returns the bytes read, 0 at end of stream, PROA_EAGAIN when nothing is
 * there, or the error; try_send the bytes sent (perhaps fewer than offered)
 * or PROA_EAGAIN or the error. Neither ever raises SIGPIPE.
 */
intptr_t proa__socket_try_recv(proa__socket *s, void *buf, size_t len);
intptr_t proa__socket_try_send(proa__socket *s, const proa_buf *bufs,
                               size_t count);

/*
 * Operations. Each completes through op->complete from a later poll, with
 * op->result set as described; errors that happen on submission arrive the
 * same way. At most one read-side (wait_readable, accept on Unix) and one
 * write-side (send, connect) operation may be in flight per socket.
 *
 * wait_readable: 0 once data (or end of stream, or an error) can be read.
 * On Windows this is a zero-byte overlapped receive.
 */
void proa__socket_wait_readable(proa__socket *s, proa__op *op);

/*
 * send: the bytes sent, at least 1 (the Unix engine may send fewer than
 * offered; the caller re-submits the rest). The array and the buffers stay
 * untouched and valid until completion. Only the first PROA__MAX_SEND_BUFS
 * buffers are used.
 */
#define PROA__MAX_SEND_BUFS 16
void proa__socket_send(proa__socket *s, proa__op *op, const proa_buf *bufs,
                       size_t count);

/* connect: 0 once connected. An unbound socket is bound to the wildcard
 * address first where the OS needs that (ConnectEx). */
void proa__socket_connect(proa__socket *s, proa__op *op,
                          const proa_sockaddr *addr);

/* accept: 0 with op->accepted set to the new connection's socket. A
 * listener may have up to proa__accept_ops_max() accepts in flight. */
int proa__accept_ops_max(void);
void proa__socket_accept(proa__socket *s, proa__accept_op *op);

/*
 * Datagrams. try_recvfrom reads one datagram into buf and its sender into
 * *from: the bytes read, PROA_EAGAIN, PROA_EMSGSIZE when the datagram was
 * larger than len (the rest is lost; the caller reports it), or the error.
 * try_sendto sends one datagram to `to` (NULL: the connected peer): the
 * bytes sent, PROA_EAGAIN, or the error. wait_readable (above) waits for a
 * datagram; sendto is the write-side op that sends one datagram when the
 * socket can take it (the buffer and address stay valid until completion).
 * Errors reported by ICMP (PROA_ECONNREFUSED on a connected socket) come
 * back from these calls like any other error; on Windows, unconnected UDP
 * sockets are opened with SIO_UDP_CONNRESET off so that they do not.
 */
intptr_t proa__socket_try_recvfrom(proa__socket *s, void *buf, size_t len,
                                   proa_sockaddr *from);
intptr_t proa__socket_try_sendto(proa__socket *s, const void *buf, size_t len,
                                 const proa_sockaddr *to);
void proa__socket_sendto(proa__socket *s, proa__op *op, const void *buf,
                         size_t len, const proa_sockaddr *to);

/*
 * Ends `op` early: it completes with PROA_ECANCELED, or with its real
 * result if it finished first. Does nothing for an op not in flight.
 */
void proa__socket_cancel(proa__socket *s, proa__op *op);

/* Translates a socket error (errno, or WSAGetLastError) to PROA_E*. */
int proa__translate_socket_error(int err);

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
