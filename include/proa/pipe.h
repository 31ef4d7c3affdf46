/*
 * Local IPC and pipes: Unix-domain stream sockets, portable local servers
 * (Windows named pipes / Unix sockets, libuv's uv_pipe model), and any pipe
 * handle as a transport (asyncio's connect_read_pipe / connect_write_pipe).
 * Every transport here is a proa_transport with the protocol callbacks,
 * flow control and close of a TCP connection. Loop thread only, unless a
 * function says otherwise.
 */
#ifndef PROA_PIPE_H
#define PROA_PIPE_H

#include "proa/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Unix-domain stream sockets (asyncio's create_unix_*) ---- */

/*
 * Paths: a file-system path of at most PROA_UNIX_PATH_MAX bytes. On Linux a
 * path that starts with '@' names an abstract socket: the '@' becomes the
 * leading NUL, no file is made, nothing is left to clean up. Errors for
 * paths: PROA_EINVAL (NULL or empty, or '@' off Linux), PROA_ENAMETOOLONG
 * (longer than the OS's sun_path holds: a name is never truncated).
 */
#define PROA_UNIX_PATH_MAX 107 /* sun_path less its NUL on Linux */

/* Options for proa_create_unix_server; start from the _INIT macro. */
typedef struct proa_unix_server_options {
  size_t size;   /* sizeof the struct: set by the _INIT macro (common.h) */
  intptr_t sock; /* a bound AF_UNIX stream socket to listen on, or -1 */
  int backlog;   /* listen() backlog, 100 by default */
  bool start_serving;
  /* Removes the socket file when the server closes, if it is still the
   * one the server made (asyncio 3.13's cleanup_socket). */
  bool cleanup_socket;
  void *ssl; /* reserved for TLS; must be NULL */
} proa_unix_server_options;

#define PROA_UNIX_SERVER_OPTIONS_INIT                                          \
  { sizeof(proa_unix_server_options), -1, 100, true, true, NULL }

/*
 * Listens on `path` and stores in *out a future whose result is the
 * proa_server (as proa_create_server). A socket file left by a server that
 * is gone (nobody accepts on it) is replaced; one that a live server holds
 * is not: the future fails with PROA_EADDRINUSE. Telling them apart takes
 * a connect, so a live server sees one connection come and go. On Windows,
 * AF_UNIX where the OS has it (Windows 10 1803 and later), else PROA_ENOTSUP.
 * Immediate errors: PROA_EINVAL (bad arguments, path together with sock),
 * PROA_ENAMETOOLONG, PROA_ENOMEM, PROA_ECLOSED, PROA_ENOTSUP.
 */
PROA_API int proa_create_unix_server(proa_loop *loop,
                                     proa_protocol_factory factory,
                                     void *factory_arg, const char *path,
                                     const proa_unix_server_options *opts,
                                     proa_future **out);

/* Options for proa_create_unix_connection; start from the _INIT macro. */
typedef struct proa_unix_connect_options {
  size_t size;   /* sizeof the struct: set by the _INIT macro (common.h) */
  intptr_t sock; /* a connected AF_UNIX stream socket to wrap, or -1 */
  void *ssl;     /* reserved for TLS; must be NULL */
  const char *server_hostname; /* reserved for TLS; must be NULL */
} proa_unix_connect_options;

#define PROA_UNIX_CONNECT_OPTIONS_INIT                                         \
  { sizeof(proa_unix_connect_options), -1, NULL, NULL }

/*
 * Connects to `path` (or wraps opts->sock) and stores in *out a future of
 * the proa_transport (as proa_create_connection). Errors through the
 * future: PROA_ENOENT (no such socket), PROA_ECONNREFUSED (nobody
 * listening), PROA_EACCES. Immediate errors as proa_create_unix_server.
 */
PROA_API int proa_create_unix_connection(proa_loop *loop,
                                         const proa_protocol *protocol,
                                         void *self, const char *path,
                                         const proa_unix_connect_options *opts,
                                         proa_future **out);

/* ---- portable local servers: named pipes on Windows, Unix sockets ---- */

/*
 * One name for every OS. On Windows NAME is the pipe \\.\pipe\NAME (a name
 * given whole, starting with \\.\pipe\, is taken as it is); elsewhere NAME
 * is a Unix socket path, with the rules above. Errors for names: PROA_EINVAL
 * (NULL, empty, a backslash inside NAME on Windows), PROA_ENAMETOOLONG.
 */

/* Options for proa_create_pipe_server; start from the _INIT macro. */
typedef struct proa_pipe_server_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  /* Unix: the listen() backlog. Windows: pipe instances kept waiting for
   * clients (at least 1), so that a burst of clients never sees a busy
   * pipe. 0: the default (100 on Unix, 8 on Windows). */
  int backlog;
  bool start_serving;
  /* Windows: a SECURITY_DESCRIPTOR for the pipe; NULL gives the current
   * user and SYSTEM access, and nobody else. Ignored elsewhere. */
  void *security_descriptor;
  void *ssl; /* reserved for TLS; must be NULL */
} proa_pipe_server_options;

#define PROA_PIPE_SERVER_OPTIONS_INIT                                          \
  { sizeof(proa_pipe_server_options), 0, true, NULL, NULL }

/*
 * Serves `name` and stores in *out a future of the proa_server. On Windows
 * a second server on a name that is in use fails with PROA_EADDRINUSE
 * (FILE_FLAG_FIRST_PIPE_INSTANCE) and remote clients are refused
 * (PIPE_REJECT_REMOTE_CLIENTS). The connected pipes are message-type, so
 * that write_eof can send an empty message, which the peer reads as the
 * end of the stream after all the data (a pipe has no half-close).
 * proa_server_sockname reports PROA_ENOTSUP for a named pipe. Immediate errors:
 * PROA_EINVAL, PROA_ENAMETOOLONG, PROA_ENOMEM, PROA_ECLOSED.
 */
PROA_API int proa_create_pipe_server(proa_loop *loop,
                                     proa_protocol_factory factory,
                                     void *factory_arg, const char *name,
                                     const proa_pipe_server_options *opts,
                                     proa_future **out);

/* Options for proa_create_pipe_connection; start from the _INIT macro. */
typedef struct proa_pipe_connect_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  /* Seconds to wait for a free instance while every one is busy
   * (Windows: ERROR_PIPE_BUSY); then the future fails with PROA_EBUSY. */
  double busy_timeout;
  void *ssl;                   /* reserved for TLS; must be NULL */
  const char *server_hostname; /* reserved for TLS; must be NULL */
} proa_pipe_connect_options;

#define PROA_PIPE_CONNECT_OPTIONS_INIT                                         \
  { sizeof(proa_pipe_connect_options), 5.0, NULL, NULL }

/*
 * Connects to the server on `name` and stores in *out a future of the
 * proa_transport. Errors through the future: PROA_ENOENT (no server),
 * PROA_EBUSY (every instance stayed busy for busy_timeout),
 * PROA_ECONNREFUSED, PROA_EACCES. Immediate errors as
 * proa_create_pipe_server.
 */
PROA_API int proa_create_pipe_connection(proa_loop *loop,
                                         const proa_protocol *protocol,
                                         void *self, const char *name,
                                         const proa_pipe_connect_options *opts,
                                         proa_future **out);

/* ---- who is on the other end ---- */

/* What the OS says about a local peer; -1 for what it does not say. */
typedef struct proa_peer_cred {
  int64_t pid;
  int64_t uid;
  int64_t gid;
} proa_peer_cred;

/*
 * The peer of a local transport: SO_PEERCRED (Linux), getpeereid and
 * LOCAL_PEERPID (macOS, BSD), GetNamedPipeClientProcessId /
 * GetNamedPipeServerProcessId (Windows named pipes: the pid only).
 * Errors: PROA_EINVAL (NULL), PROA_ENOTSUP (not a local transport, or the
 * OS cannot say), PROA_ECLOSED.
 */
PROA_API int proa_transport_peer_cred(const proa_transport *t,
                                      proa_peer_cred *out);

/* ---- any pipe handle as a transport (asyncio's connect_*_pipe) ---- */

/* Options for proa_connect_read_pipe / _write_pipe; start from _INIT. */
typedef struct proa_pipe_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  /* Closing the transport leaves the handle open, the caller's again
   * (stdin, stdout): on Unix with its O_NONBLOCK and FD_CLOEXEC as they
   * were. On Windows an overlapped handle stays associated with the
   * loop's completion port (Windows cannot undo that): overlapped calls
   * the caller makes on it later must set the low bit of hEvent. */
  bool keep_open;
} proa_pipe_options;

#define PROA_PIPE_OPTIONS_INIT                                                 \
  { sizeof(proa_pipe_options), false }

/*
 * Wraps `handle` (an fd on Unix, a HANDLE or SOCKET on Windows: a pipe, a
 * socket or a character device; asyncio's rules: a regular file is refused
 * with PROA_EINVAL) and stores in *out a future of the proa_transport,
 * which owns the handle from then on (closing the transport closes it,
 * unless keep_open).
 *
 * A read pipe delivers data_received / eof_received, closes at the end of
 * the data whatever eof_received answers, and refuses write and write_eof
 * (PROA_ENOTSUP; can_write_eof is false). A write pipe takes writes, reads
 * nothing (pause/resume_reading: PROA_ENOTSUP), and its write_eof closes
 * it once flushed. It tells connection_lost(PROA_EPIPE) when the reader
 * goes away, with no write in flight, where the OS can tell: a pipe or
 * FIFO on Unix, an overlapped pipe on Windows. A socket, a character
 * device (a terminal's readiness would be a key pressed) and, on Windows,
 * a handle not opened for overlapped I/O (a watch would block its writes)
 * learn it at their next write, which fails with PROA_EPIPE. A write to a
 * pipe whose reader is gone never raises SIGPIPE, and the process's
 * SIGPIPE disposition is left alone: the signal is blocked in the loop's
 * thread around the write and taken back if the write raised it
 * (F_SETNOSIGPIPE where the OS has it).
 *
 * On Unix the handle is made non-blocking and close-on-exec while the
 * transport has it. On Windows an overlapped handle goes through the
 * loop's completion port; one that was not opened for overlapped I/O (an
 * inherited anonymous pipe, a console, the stdin of a program under Wine)
 * is served by a helper thread per direction, which close and pause
 * interrupt (CancelSynchronousIo); the caller cannot tell the difference.
 *
 * Loop thread only. Immediate errors: PROA_EINVAL (NULL loop or out, a
 * regular file), PROA_EBADF (not a handle), PROA_ENOMEM, PROA_ECLOSED; a
 * refused handle stays the caller's, open, as it was.
 */
PROA_API int proa_connect_read_pipe(proa_loop *loop,
                                    const proa_protocol *protocol, void *self,
                                    intptr_t handle,
                                    const proa_pipe_options *opts,
                                    proa_future **out);
PROA_API int proa_connect_write_pipe(proa_loop *loop,
                                     const proa_protocol *protocol, void *self,
                                     intptr_t handle,
                                     const proa_pipe_options *opts,
                                     proa_future **out);

/* ---- a pipe for the loop's own use ---- */

#define PROA_PIPE_NONBLOCK 1u /* non-blocking (Unix), overlapped (Windows) */
#define PROA_PIPE_INHERIT 2u  /* inherited by child processes */

/*
 * Makes a connected pipe: fds[0] is the read end, fds[1] the write end,
 * each with its own flags (PROA_PIPE_*; 0: blocking, not inherited). On
 * Unix pipe2 with O_CLOEXEC, then the flags per end. On Windows a named
 * pipe with a name nobody can guess (\\.\pipe\proa-PID-32 random hex
 * digits), one instance, local clients only: the write end is its server
 * end (duplex, so that a write pipe over it can watch its reader), the
 * read end the client, opened for reading only. The caller owns both
 * (proa_pipe_close). Thread-safe. Errors: PROA_EINVAL (fds NULL, unknown
 * flags), PROA_EMFILE, PROA_ENOMEM.
 */
PROA_API int proa_pipe(intptr_t fds[2], unsigned read_flags,
                       unsigned write_flags);

/* Closes an fd or HANDLE from proa_pipe. Returns 0 or PROA_EBADF. */
PROA_API int proa_pipe_close(intptr_t handle);

#ifdef __cplusplus
}
#endif

#endif /* PROA_PIPE_H */
