/* Internal declarations shared by the files of the Windows backend. */
#ifndef PROA_WIN_H
#define PROA_WIN_H

#include "backend.h"
#include "proa/error.h"

/*
 * Completion keys. Handles that carry overlapped I/O are associated with the
 * port under PROA__KEY_IO; the other keys are used only with
 * PostQueuedCompletionStatus.
 */
enum proa__win_key {
  PROA__KEY_IO = 0,     /* kernel completion: result from the NTSTATUS */
  PROA__KEY_POSTED = 1, /* proa__backend_post: op->result already set */
  PROA__KEY_WAKE = 2,   /* proa__backend_wakeup, no OVERLAPPED */
  PROA__KEY_SIGNAL = 3, /* console event: signal number in the byte count */
  PROA__KEY_COUNTED = 4 /* proa__iocp_post_counted: as POSTED, counted */
};

struct proa__backend {
  const proa__backend_ops *ops;
  HANDLE port;
  proa_loop *loop;
  unsigned signals; /* bit n set: this backend owns signal n; loop thread */
  int wsa_started;  /* WSAStartup succeeded and needs its WSACleanup */
  /* Posted ops that PostQueuedCompletionStatus could not take (it fails
   * only when the kernel is out of memory); poll completes them. */
  proa__op *spill_head, *spill_tail;
  /* The same for posts counted in `inflight` (PROA__KEY_COUNTED). */
  proa__op *cspill_head, *cspill_tail;
  size_t inflight; /* ops submitted and not yet delivered */
  char *lend_buf;  /* lent to socket reads without a buffer */
};

/* The backend's table (iocp.c). */
extern const proa__backend_ops proa__iocp_ops;

/* Counts ops in flight (see proa__backend_ops.inflight). */
static inline void proa__iocp_inflight_add(proa__backend *be, int n) {
  be->inflight = (size_t)((intptr_t)be->inflight + n);
}

/* Queues `op` (with op->result set) to be completed from the next poll,
 * through the port, so it travels the same path as kernel completions. */
void proa__backend_post(proa__backend *be, proa__op *op);
/* The same for an op of the caller's that no record carries: it counts in
 * `inflight` until it is delivered. */
void proa__iocp_post_counted(proa__backend *be, proa__op *op);

/* The handle operations (handle.c). */
int proa__iocp_socket_open(proa__backend *be, int family, int type,
                           int protocol, proa__ioh **out);
int proa__iocp_adopt(proa__backend *be, intptr_t os, proa__ioh **out);
void proa__iocp_close(proa__ioh *h);
void proa__iocp_detach(proa__ioh *h);
void proa__iocp_read(proa__ioh *h, proa__read_op *op);
void proa__iocp_write(proa__ioh *h, proa__write_op *op);
void proa__iocp_wait_readable(proa__ioh *h, proa__op *op);
void proa__iocp_wait_writable(proa__ioh *h, proa__op *op);
void proa__iocp_wait_peer_closed(proa__ioh *h, proa__op *op);
void proa__iocp_cancel(proa__ioh *h, proa__op *op);
intptr_t proa__iocp_try_write(proa__ioh *h, const proa_buf *bufs, size_t count);
void proa__iocp_connect(proa__ioh *h, proa__op *op, const proa_sockaddr *addr);
void proa__iocp_accept(proa__ioh *h, proa__accept_op *op);
intptr_t proa__iocp_try_recvfrom(proa__ioh *h, void *buf, size_t len,
                                 proa_sockaddr *from);
intptr_t proa__iocp_try_sendto(proa__ioh *h, const void *buf, size_t len,
                               const proa_sockaddr *to);
void proa__iocp_sendto(proa__ioh *h, proa__sendto_op *op);
int proa__iocp_shutdown_write(proa__ioh *h);
#define PROA__IOCP_ACCEPT_MAX 8

/* ---- handles not opened for overlapped I/O (sync_io.c) ---- */

/*
 * A helper thread that makes the blocking ReadFile (or, with `write`,
 * WriteFile) calls of one direction of `os`, which was not opened for
 * overlapped I/O (an anonymous pipe from CreatePipe, a console, the stdin
 * of a program under Wine), so that the loop never blocks on them.
 */
typedef struct proa__sync_io proa__sync_io;
int proa__sync_io_start(HANDLE port, HANDLE os, bool write,
                        proa__sync_io **out);
/* Makes the call on `len` bytes at `buf` (which stay valid until the
 * completion), then sets op->result (the bytes, or PROA_E*) and posts `op`
 * to the port under PROA__KEY_POSTED. One op at a time. */
void proa__sync_io_submit(proa__sync_io *w, proa__op *op, void *buf, DWORD len);
/* Ends `op` early if it is still being served: its call is not started,
 * or is interrupted (CancelSynchronousIo); it completes with
 * PROA_ECANCELED, or with its real result if the call ended first. */
void proa__sync_io_cancel(proa__sync_io *w, proa__op *op);
/* Lets the thread end; nothing may be in flight. */
void proa__sync_io_stop(proa__sync_io *w);

/*
 * Wraps `pipe` (a connected named pipe, or any overlapped pipe) as a pipe
 * handle of the backend; `associated` says it is on the port already (a
 * listener's instances are). On failure `pipe` stays the caller's, open.
 */
int proa__iocp_pipe_wrap(proa__backend *be, HANDLE pipe, bool associated,
                         proa__ioh **out);

/* Named pipes (pipe.c): see proa__backend_ops.pipe_listen and peer_pid. */
int proa__iocp_pipe_listen(proa__backend *be, const char *name,
                           const proa__pipe_listen_opts *o, proa__ioh **out);
int proa__iocp_pipe_connect(proa__backend *be, const char *name,
                            proa__ioh **out);
int proa__iocp_peer_pid(proa__ioh *h, int64_t *pid);

/* Console control events as signals (signal.c). */
int proa__iocp_signal_start(proa__backend *be, int signum);
void proa__iocp_signal_stop(proa__backend *be, int signum);

/* The backend's completion port, for associating handles with it. */
HANDLE proa__backend_port(proa__backend *be);

/*
 * Associates `h` (a socket, pipe or file opened for overlapped I/O) with the
 * backend's port under PROA__KEY_IO. Returns 0 or the translated error.
 */
int proa__backend_associate(proa__backend *be, HANDLE h);

/* ---- error translation (error.c) ---- */

/*
 * Translate Win32 (GetLastError) and Winsock (WSAGetLastError) codes to
 * PROA_E* codes; 0 gives 0 and an unknown code PROA_EUNKNOWN. Both accept
 * either kind of code, since Winsock reports some Win32 codes
 * (WSA_OPERATION_ABORTED is ERROR_OPERATION_ABORTED) and GetLastError
 * returns WSA codes after a failed Winsock call.
 *
 * Pipes: ERROR_BROKEN_PIPE gives PROA_EOF, because that is what a read sees
 * when the writing end closed (the normal end of a child's output). Writing
 * to a pipe whose reader is gone reports ERROR_NO_DATA, which gives
 * PROA_EPIPE; a write path that gets PROA_EOF should report PROA_EPIPE.
 */
int proa__translate_win32(DWORD err);
int proa__translate_wsa(int err);

/*
 * Translates the NTSTATUS of a kernel completion (OVERLAPPED.Internal, or
 * OVERLAPPED_ENTRY.Internal) to a PROA_E* code; a success status gives 0.
 * Socket statuses are mapped directly (RtlNtStatusToDosError would turn a
 * reset into ERROR_NETNAME_DELETED and a refusal into
 * ERROR_CONNECTION_REFUSED, which end up the same); the others go through
 * RtlNtStatusToDosError. STATUS_BUFFER_OVERFLOW (a datagram or message
 * larger than the buffer; the bytes that fit were transferred) gives
 * PROA_EMSGSIZE.
 */
int proa__translate_ntstatus(LONG status);

/* A function of ntdll by name (cast it to its type), or NULL. */
typedef void (*proa__ntdll_fn)(void);
proa__ntdll_fn proa__ntdll_function(const char *name);

/* ---- console control events (signal.c) ---- */

/* Gives up every signal `be` owns; proa__backend_free calls it. */
void proa__win_signals_release(proa__backend *be);

#endif /* PROA_WIN_H */
