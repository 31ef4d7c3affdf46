/* The contract between the OS-independent loop and each OS backend. */
#ifndef PROA_BACKEND_H
#define PROA_BACKEND_H

/*
 * Everything above this header is written once for all OSes; everything
 * below (src/win, src/unix) implements it. docs/design.md tells the life of
 * a read and a write on each backend.
 *
 * proa is a proactor. I/O is expressed as operations (proa__op) on handles
 * (proa__ioh: a socket, a pipe or a file) that are submitted now and
 * complete later. On Windows an operation is a real overlapped call whose
 * OVERLAPPED lives inside the op; on Unix the engine emulates completions
 * over a readiness poller (epoll, poll) by performing the call when the
 * handle is ready. A backend is a const table of functions
 * (proa__backend_ops) chosen when the loop is created, so a new backend
 * (io_uring, say) is a new file with a new table.
 *
 * Rules every backend keeps (debug builds check them with PROA_ASSERT, so a
 * broken rule fails a test instead of losing a completion):
 *
 * - A completion is delivered only from poll(), never re-entrantly from the
 *   call that submitted it. A backend may try the system call at once (the
 *   Unix fast path) but then queues the completion.
 * - At most one read-side and one write-side operation per handle is in
 *   flight (accepts excepted: up to accept_max). A second one is a broken
 *   contract: it asserts in debug builds and completes with PROA_EBUSY in
 *   release builds; the first one is never orphaned.
 * - Cancel always ends in a completion: PROA_ECANCELED, or the real result
 *   if the op finished first. Memory an op points at stays valid until its
 *   completion has been seen.
 * - A handle is closed only once each of its operations has completed or
 *   been cancelled (it asserts otherwise). Cancelled ones still complete
 *   after the close, and the backend frees the handle's state after the
 *   last; closing at once is what lets a server refuse connections the
 *   moment it closes. inflight() counts every operation of a backend from
 *   submission to delivery, so that closing the loop can wait for them.
 * - An idle connection pins no read buffer: a read asks for its buffer
 *   (proa__read_op.alloc) only when data is there, or borrows the backend's.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

#include "proa/error.h"
#include "proa/loop.h"
#include "proa/stream.h"

/* ---- checked rules ---- */

/* Prints what rule was broken and where, then aborts. */
void proa__assert_fail(const char *rule, const char *cond, const char *file,
                       int line);

#ifdef NDEBUG
#define PROA_ASSERT(cond, rule) ((void)0)
#else
#define PROA_ASSERT(cond, rule)                                                \
  ((cond) ? (void)0 : proa__assert_fail(rule, #cond, __FILE__, __LINE__))
#endif

typedef struct proa__backend proa__backend; /* each backend's own state */
typedef struct proa__backend_ops proa__backend_ops;
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

/* ---- handles ---- */

enum proa__ioh_kind {
  PROA__IOH_SOCKET = 1,
  PROA__IOH_PIPE = 2, /* a pipe, a FIFO, a character device */
  PROA__IOH_FILE = 3  /* a regular file: always ready on Unix */
};

/*
 * The part of every backend's handle that the code above may read; the
 * backend's own state follows it. `os` is the fd, SOCKET or HANDLE (-1 once
 * closed).
 */
typedef struct proa__ioh {
  const proa__backend_ops *ops;
  intptr_t os;
  unsigned char kind; /* enum proa__ioh_kind */
} proa__ioh;

/*
 * A read: completes with the bytes read (> 0), 0 at end of stream, or an
 * error. Where the bytes go, and who owns that memory:
 *
 * - alloc set: the backend calls alloc(op, &len) when it is about to read
 *   (once data is there, where the OS allows: so idle handles pin nothing)
 *   and reads into what it returns. The memory is the caller's; it must
 *   stay valid until the completion. NULL or a zero len completes the read
 *   with PROA_ENOBUFS.
 * - alloc NULL, buf set: the caller's buffer of `len` bytes, pinned from
 *   submission to completion.
 * - alloc NULL, buf NULL: the backend lends its own memory. At completion
 *   buf points at the bytes; they are valid only until the completion
 *   function returns, and the caller frees nothing.
 *
 * In every case op->data points at the bytes when the completion runs; the
 * inputs (alloc, buf, len) are left as they were, so the op can be
 * submitted again as it is.
 */
typedef struct proa__read_op proa__read_op;
struct proa__read_op {
  proa__op op; /* first */
  void *(*alloc)(proa__read_op *op, size_t *len);
  void *buf;
  size_t len;
  void *data; /* out: where the bytes are */
};

/* A vectored write: completes with the bytes written, at least 1 (perhaps
 * fewer than offered: the caller submits the rest), or an error. The array
 * and the buffers stay untouched and valid until completion; only the
 * first PROA__MAX_SEND_BUFS buffers are used. */
#define PROA__MAX_SEND_BUFS 16
typedef struct proa__write_op {
  proa__op op; /* first */
  const proa_buf *bufs;
  size_t count;
} proa__write_op;

/* A datagram send: `len` bytes at `buf` to `to` (NULL: the connected
 * peer). The bytes and the address stay valid until completion. */
typedef struct proa__sendto_op {
  proa__op op; /* first */
  const void *buf;
  size_t len;
  const proa_sockaddr *to;
} proa__sendto_op;

/* An accept operation; the listener may have several in flight. */
typedef struct proa__accept_op {
  proa__op op;
  proa__ioh *accepted; /* on success: the new connection's socket */
#ifdef _WIN32
  uintptr_t pending; /* the SOCKET that AcceptEx fills */
  /* AcceptEx writes both addresses here: (sizeof(sockaddr_un) + 16) x 2,
   * the largest family's, with room to spare. */
  char addresses[2 * (128 + 16)];
#endif
} proa__accept_op;

/* How pipe_listen sets up a local server (Windows named pipes). */
typedef struct proa__pipe_listen_opts {
  int instances;             /* instances kept waiting for clients, >= 1 */
  void *security_descriptor; /* a SECURITY_DESCRIPTOR, NULL: the default */
} proa__pipe_listen_opts;

/* ---- the table of a backend ---- */

struct proa__backend_ops {
  const char *name;
  /* Another table to try when init fails (io_uring forbidden, say). */
  const proa__backend_ops *fallback;

  /* The loop's side. init creates the backend for `loop` (0 or the OS
   * error); free releases it, with nothing in flight. */
  int (*init)(proa_loop *loop, proa__backend **out);
  void (*free)(proa__backend *be);
  /*
   * Waits up to `timeout_ms` (-1 forever, 0 not at all) for completions
   * and delivers them: op->complete() for operations,
   * proa__loop_on_signal() for signals. A wake-up ends the wait early.
   */
  int (*poll)(proa__backend *be, int64_t timeout_ms);
  /* Ends a current or the next wait early. Thread-safe and cheap. */
  void (*wakeup)(proa__backend *be);
  /* Operations submitted and not yet completed. */
  size_t (*inflight)(const proa__backend *be);
  /*
   * Starts delivering `signum` through proa__loop_on_signal(). The loop
   * core has checked the range; the backend rejects what its OS cannot
   * catch (PROA_EINVAL, PROA_ENOTSUP), PROA_EBUSY when another loop owns
   * it. stop restores the default disposition.
   */
  int (*signal_start)(proa__backend *be, int signum);
  void (*signal_stop)(proa__backend *be, int signum);

  /*
   * Handles. socket_open creates a socket (PROA_AF_*, PROA_SOCK_*,
   * protocol) that is non-blocking, not inherited by children and
   * associated with the loop. adopt takes over an fd, SOCKET or HANDLE in
   * the same way and finds its kind. close closes it and frees the state
   * (see the rules: what is in flight must be cancelled first, and still
   * completes). Errors: PROA_EAFNOSUPPORT, PROA_EMFILE,
   * PROA_EBADF, ...
   */
  int (*socket_open)(proa__backend *be, int family, int type, int protocol,
                     proa__ioh **out);
  int (*adopt)(proa__backend *be, intptr_t os, proa__ioh **out);
  void (*close)(proa__ioh *h);
  /* As close, but the OS handle stays open: it is the caller's again (an
   * adopted handle that turned out unfit, a pipe with keep_open), with the
   * flags adopt changed restored where the OS allows. */
  void (*detach)(proa__ioh *h);

  /* Read-side: read, wait_readable, accept. Write-side: write,
   * wait_writable, connect, sendto. wait_* complete with 0 once the handle
   * is ready (or has an error or end of stream to report). */
  void (*read)(proa__ioh *h, proa__read_op *op);
  void (*write)(proa__ioh *h, proa__write_op *op);
  void (*wait_readable)(proa__ioh *h, proa__op *op);
  void (*wait_writable)(proa__ioh *h, proa__op *op);
  /*
   * Read-side: completes with 0 once the reader of a pipe's write end has
   * gone (what a write pipe watches while it has nothing to write), or at
   * once with PROA_ENOTSUP where the OS cannot tell without a write (a
   * character device, a socket, a Windows handle not opened for
   * overlapped I/O): a write then finds out, with PROA_EPIPE.
   */
  void (*wait_peer_closed)(proa__ioh *h, proa__op *op);
  /* Ends `op` early (see the rules); nothing for an op not in flight. */
  void (*cancel)(proa__ioh *h, proa__op *op);
  /*
   * The speculative path: a non-blocking write made on the spot, returning
   * the bytes written, PROA_EAGAIN, or the error. Never raises SIGPIPE.
   */
  intptr_t (*try_write)(proa__ioh *h, const proa_buf *bufs, size_t count);

  /* Sockets only. connect: 0 once connected (an unbound socket is bound to
   * the wildcard first where the OS needs it). accept: 0 with
   * op->accepted set; up to accept_max in flight per listener. */
  void (*connect)(proa__ioh *h, proa__op *op, const proa_sockaddr *addr);
  void (*accept)(proa__ioh *h, proa__accept_op *op);
  int accept_max;
  /*
   * Datagrams. try_recvfrom reads one datagram and its sender: the bytes,
   * PROA_EAGAIN, PROA_EMSGSIZE when it was larger than len (the rest is
   * lost; the caller reports it), or the error. try_sendto sends one to
   * `to` (NULL: the connected peer). sendto is the write-side op that sends
   * op's datagram when the socket can take it. ICMP errors come back from these
   * like any other error; on Windows unconnected UDP sockets have
   * SIO_UDP_CONNRESET off.
   */
  intptr_t (*try_recvfrom)(proa__ioh *h, void *buf, size_t len,
                           proa_sockaddr *from);
  intptr_t (*try_sendto)(proa__ioh *h, const void *buf, size_t len,
                         const proa_sockaddr *to);
  void (*sendto)(proa__ioh *h, proa__sendto_op *op);

  /*
   * Ends the write side of a connected stream once what was written has
   * been sent: the peer reads its end of stream (0) after all the data,
   * and may still write back. Sockets: shutdown(SHUT_WR / SD_SEND).
   * Windows named pipes: see pipe.c. Returns 0 or the error; PROA_ENOTSUP
   * for a handle that cannot half-close.
   */
  int (*shutdown_write)(proa__ioh *h);
  /* The process id of the local peer (the other end of a named pipe);
   * PROA_ENOTSUP where the handle or the OS cannot say. NULL: never. */
  int (*peer_pid)(proa__ioh *h, int64_t *pid);

  /*
   * Local servers by name (Windows named pipes; NULL in the Unix tables,
   * where they are Unix sockets). The name comes as pipe_server.c's
   * proa__pipe_full_name made it (\\.\pipe\NAME, already checked); the
   * backend takes a NAME without the prefix too, and checks either again:
   * PROA_EINVAL or PROA_ENAMETOOLONG for a bad one, never truncated.
   *
   * pipe_listen makes a listener handle that owns its pipe instances. Its
   * accept ops (proa__socket_accept, up to accept_max in flight) complete
   * with op->accepted = a connected pipe handle (PROA__IOH_PIPE), which
   * reads, writes and closes like any other. Errors: PROA_EADDRINUSE (a
   * server has the name), PROA_EACCES, PROA_ENOMEM, ...
   *
   * pipe_connect opens a connected client pipe handle, at once. Errors:
   * PROA_EBUSY (every instance is busy: the caller retries a little
   * later), PROA_ENOENT (no server), PROA_EACCES, ...
   */
  int (*pipe_listen)(proa__backend *be, const char *name,
                     const proa__pipe_listen_opts *o, proa__ioh **out);
  int (*pipe_connect)(proa__backend *be, const char *name, proa__ioh **out);
};

/*
 * The backends this OS has, best first, NULL-ended (engine.c, iocp.c).
 * proa__backend_open picks `name` (NULL: the first that starts), falling
 * back as the table says; PROA_EINVAL for a name this OS does not have.
 */
extern const proa__backend_ops *const proa__backends[];
int proa__backend_open(proa_loop *loop, const char *name,
                       const proa__backend_ops **ops, proa__backend **out);
/* Starts `ops`, or the first of its fallbacks that starts; *used says
 * which. Returns 0 or the error of the last one tried. */
int proa__backend_start(proa_loop *loop, const proa__backend_ops *ops,
                        const proa__backend_ops **used, proa__backend **out);

/* Every backend counts the handles it holds state for (+1 when made, -1
 * when freed), so that tests can prove that closing frees them all. */
void proa__handles_count(int delta);
long proa__handles_alive(void);

/*
 * For backends: the buffer `op` reads into (see proa__read_op), with its
 * size in *len: alloc's, the caller's, or *lend (the backend's, allocated
 * on first use with lend_size bytes). NULL when there is none: the read
 * completes with PROA_ENOBUFS (alloc gave nothing) or PROA_ENOMEM.
 */
static inline void *proa__read_target(proa__read_op *op, char **lend,
                                      size_t lend_size, size_t *len) {
  void *buf;
  if (op->alloc) {
    *len = 0;
    buf = op->alloc(op, len);
    return buf && *len ? buf : NULL;
  }
  if (op->buf) {
    *len = op->len;
    return op->buf;
  }
  if (!*lend)
    *lend = (char *)malloc(lend_size);
  *len = lend_size;
  return *lend;
}
/* The error for a NULL from proa__read_target. */
#define PROA__READ_TARGET_ERROR(op) ((op)->alloc ? PROA_ENOBUFS : PROA_ENOMEM)

/* Implemented by the loop core; the backend calls it from poll. */
void proa__loop_on_signal(proa_loop *loop, int signum);

/* ---- calls on a handle, dispatched through its table ---- */

static inline void proa__ioh_close(proa__ioh *h) { h->ops->close(h); }
static inline void proa__ioh_detach(proa__ioh *h) { h->ops->detach(h); }
static inline intptr_t proa__ioh_os(const proa__ioh *h) { return h->os; }
static inline void proa__ioh_read(proa__ioh *h, proa__read_op *op) {
  h->ops->read(h, op);
}
static inline void proa__ioh_write(proa__ioh *h, proa__write_op *op) {
  h->ops->write(h, op);
}
static inline void proa__ioh_wait_readable(proa__ioh *h, proa__op *op) {
  h->ops->wait_readable(h, op);
}
static inline void proa__ioh_wait_writable(proa__ioh *h, proa__op *op) {
  h->ops->wait_writable(h, op);
}
static inline void proa__ioh_wait_peer_closed(proa__ioh *h, proa__op *op) {
  h->ops->wait_peer_closed(h, op);
}
static inline void proa__ioh_cancel(proa__ioh *h, proa__op *op) {
  h->ops->cancel(h, op);
}
static inline int proa__ioh_shutdown_write(proa__ioh *h) {
  return h->ops->shutdown_write(h);
}
static inline int proa__ioh_peer_pid(proa__ioh *h, int64_t *pid) {
  return h->ops->peer_pid ? h->ops->peer_pid(h, pid) : PROA_ENOTSUP;
}
static inline intptr_t proa__ioh_try_write(proa__ioh *h, const proa_buf *bufs,
                                           size_t count) {
  return h->ops->try_write(h, bufs, count);
}
static inline void proa__socket_connect(proa__ioh *h, proa__op *op,
                                        const proa_sockaddr *addr) {
  h->ops->connect(h, op, addr);
}
static inline void proa__socket_accept(proa__ioh *h, proa__accept_op *op) {
  h->ops->accept(h, op);
}
static inline int proa__socket_accept_max(const proa__ioh *h) {
  return h->ops->accept_max;
}
static inline intptr_t proa__socket_try_recvfrom(proa__ioh *h, void *buf,
                                                 size_t len,
                                                 proa_sockaddr *from) {
  return h->ops->try_recvfrom(h, buf, len, from);
}
static inline intptr_t proa__socket_try_sendto(proa__ioh *h, const void *buf,
                                               size_t len,
                                               const proa_sockaddr *to) {
  return h->ops->try_sendto(h, buf, len, to);
}
static inline void proa__socket_sendto(proa__ioh *h, proa__sendto_op *op) {
  h->ops->sendto(h, op);
}

/* Translates a socket error (errno, or WSAGetLastError) to PROA_E*. */
int proa__translate_socket_error(int err);

/* ---- services every OS provides for the OS-independent code ---- */

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

/*
 * The OS half of proa_pipe (pipe.h): a connected pipe, fds[0] the read end,
 * fds[1] the write end, each with its PROA_PIPE_* flags (checked by the
 * caller). Thread-safe. proa__os_pipe_close closes one end: 0 or
 * PROA_EBADF.
 */
int proa__os_pipe(intptr_t fds[2], unsigned read_flags, unsigned write_flags);
int proa__os_pipe_close(intptr_t handle);

/* How many CPUs this process may use (at least 1). */
unsigned proa__cpu_count(void);

/* The highest signal number the OS has (signals are 1 .. this). */
int proa__signal_max(void);

#endif /* PROA_BACKEND_H */
