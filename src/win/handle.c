/* Handle operations for the Windows backend: overlapped I/O on the port. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <winternl.h>

#include "sockets.h"
#include "win.h"

/* Not in every SDK's headers (MSVC keeps it in mstcpip.h). */
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

#define ACCEPT_MAX PROA__IOCP_ACCEPT_MAX /* AcceptEx calls in flight */
#define READS_PER_WAKE 16 /* reads per completion before others get a turn */
#define LEND_SIZE 65536   /* what a read without a buffer borrows */
#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE _WSAIOR(IOC_WS2, 34)
#endif
/* What AcceptEx needs per address: the largest sockaddr of the families
 * it serves plus 16 bytes. AF_UNIX's sockaddr_un (110 bytes) is the
 * largest; too small a length fails an AF_UNIX AcceptEx. */
#define ACCEPT_ADDR_LEN (sizeof(SOCKADDR_UN) + 16)
typedef char accept_addresses_fit
    [2 * ACCEPT_ADDR_LEN <= sizeof(((proa__accept_op *)0)->addresses) ? 1 : -1];
/* One WSABUF holds at most this much; a larger buffer is sent in parts. */
#define MAX_WSABUF_LEN (1u << 30)

/*
 * An operation as the kernel sees it. The caller's op is not handed to the
 * kernel directly: each socket issues its own records, whose completion
 * functions finish the work (SO_UPDATE_*_CONTEXT, wrapping an accepted
 * socket, datagram fix-ups) and then complete the caller's op. A record
 * also says which op is in flight, so that cancel can find it and ignore
 * ops that are not.
 */
typedef struct io_rec {
  proa__op op;       /* first: its OVERLAPPED is what the port returns */
  proa__op *user;    /* the caller's op while in flight, else NULL */
  struct whandle *s; /* the handle that issued it */
  SOCKET pending;    /* accept only: the socket AcceptEx fills */
  void *pending_buf; /* pipe and file reads: where ReadFile puts bytes */
  DWORD pending_len; /* ... and how many it may put there */
  bool cancelled;    /* a cancel was asked for: the handle may be closed */
} io_rec;

/* What a socket is, as far as this file cares. */
typedef struct sock_info {
  int family, type, protocol; /* the OS's AF_*, SOCK_*, IPPROTO_* */
  GUID provider;              /* the Winsock provider that serves it */
  bool ifs;                   /* its handles are real kernel handles */
} sock_info;

enum read_kind { READ_WAIT, READ_DATA, READ_PEER };
enum write_kind { WRITE_SEND, WRITE_SENDTO, WRITE_CONNECT, WRITE_EOF };

typedef struct whandle {
  proa__ioh h; /* first: what the code above sees */
  SOCKET sock; /* sockets: h.os as a SOCKET */
  HANDLE base; /* what CancelIoEx is given: the base provider's socket */
  proa__backend *be;
  sock_info info;      /* sockets only */
  bool skip;           /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is on */
  bool icmp_known;     /* datagram: ICMP reporting was settled (see below) */
  bool closed;         /* closed with records in flight: the last one frees */
  bool dispatching;    /* a read completion is running: close must not free */
  bool read_inline;    /* ... and a read submitted now waits for it to return */
  bool read_cancelled; /* a cancel came for that read */
  int inflight;        /* records whose completion has not run yet */
  enum read_kind read_kind;
  enum write_kind write_kind;
  io_rec read;     /* read or wait_readable */
  io_rec write;    /* write, sendto or connect */
  io_rec *accepts; /* ACCEPT_MAX records, allocated by the first accept */
  char *lend_buf;  /* pipes: what a read without a buffer borrows */
  uint64_t offset; /* files: where the next read or write goes */
  /* A pipe or file not opened for overlapped I/O: not on the port, served
   * by a helper thread per direction (sync_io.c), started on first use. */
  bool sync;
  proa__sync_io *sync_read, *sync_write;
  HANDLE close_later; /* closed when the state is freed (see release) */
} whandle;

static whandle *of_ioh(proa__ioh *h) { return (whandle *)(void *)h; }

int proa__translate_socket_error(int err) { return proa__translate_wsa(err); }

static int last_error(void) { return proa__translate_wsa(WSAGetLastError()); }

/* ---- extension functions (AcceptEx, ConnectEx) ---- */

/*
 * The functions belong to the socket's provider, so they are looked up per
 * provider and family, once, and shared by every loop; the lock is taken
 * once per connect or accept, which is cheap next to the call itself.
 */
typedef struct ext_entry {
  GUID provider;
  int family;
  LPFN_CONNECTEX connectex;
  LPFN_ACCEPTEX acceptex;
} ext_entry;

#define EXT_CACHE 8
static SRWLOCK ext_lock = SRWLOCK_INIT;
static ext_entry ext_cache[EXT_CACHE];
static int ext_count;

static int ext_load(SOCKET sock, ext_entry *e) {
  GUID connectex = WSAID_CONNECTEX, acceptex = WSAID_ACCEPTEX;
  DWORD n = 0;
  if (WSAIoctl(sock, SIO_GET_EXTENSION_FUNCTION_POINTER, &connectex,
               sizeof connectex, &e->connectex, sizeof e->connectex, &n, NULL,
               NULL) != 0 ||
      WSAIoctl(sock, SIO_GET_EXTENSION_FUNCTION_POINTER, &acceptex,
               sizeof acceptex, &e->acceptex, sizeof e->acceptex, &n, NULL,
               NULL) != 0)
    return last_error();
  return 0;
}

static bool ext_find(const whandle *s, ext_entry *out) {
  int i;
  bool found = false;
  AcquireSRWLockShared(&ext_lock);
  for (i = 0; i < ext_count && !found; i++) {
    if (ext_cache[i].family == s->info.family &&
        memcmp(&ext_cache[i].provider, &s->info.provider, sizeof(GUID)) == 0) {
      *out = ext_cache[i];
      found = true;
    }
  }
  ReleaseSRWLockShared(&ext_lock);
  return found;
}

/* The socket's extension functions, from the cache or from its provider. */
static int ext_get(const whandle *s, ext_entry *out) {
  int err;
  if (ext_find(s, out))
    return 0;
  err = ext_load(s->sock, out);
  if (err)
    return err;
  out->provider = s->info.provider;
  out->family = s->info.family;
  AcquireSRWLockExclusive(&ext_lock);
  if (ext_count < EXT_CACHE) /* a full cache just means more lookups */
    ext_cache[ext_count++] = *out;
  ReleaseSRWLockExclusive(&ext_lock);
  return 0;
}

/* ---- creating and wrapping sockets ---- */

static int query_info(SOCKET sock, sock_info *info) {
  WSAPROTOCOL_INFOW pi;
  int len = (int)sizeof pi;
  if (getsockopt(sock, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len) != 0)
    return last_error();
  info->family = pi.iAddressFamily;
  info->type = pi.iSocketType;
  info->protocol = pi.iProtocol;
  info->provider = pi.ProviderId;
  /* A non-IFS provider (a layered one) may queue a completion even when a
   * call succeeds at once, so skipping the port is unsafe there. */
  info->ifs = (pi.dwServiceFlags1 & XP1_IFS_HANDLES) != 0;
  return 0;
}

/* An overlapped socket that no child process inherits. */
static int open_raw(int family, int type, int protocol, SOCKET *out) {
  DWORD flags = WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT;
  SOCKET sock = WSASocketW(family, type, protocol, NULL, 0, flags);
  if (sock == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
    /* Before Windows 7 SP1 the flag is unknown: clear inheritance after. */
    sock = WSASocketW(family, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (sock != INVALID_SOCKET)
      SetHandleInformation((HANDLE)sock, HANDLE_FLAG_INHERIT, 0);
  }
  if (sock == INVALID_SOCKET)
    return last_error();
  *out = sock;
  return 0;
}

/* Turns ICMP port-unreachable reports on or off (SIO_UDP_CONNRESET). */
static void set_connreset(SOCKET sock, BOOL on) {
  DWORD n = 0;
  /* Best effort: without it a datagram socket still works. */
  WSAIoctl(sock, SIO_UDP_CONNRESET, &on, sizeof on, NULL, 0, &n, NULL, NULL);
}

/*
 * An op that succeeds at once gets no completion packet once skipping is
 * on, and this file posts its completion itself; the event of the handle
 * is never used, so setting it is skipped too.
 */
static bool set_skip(SOCKET sock, bool ifs) {
  UCHAR modes = FILE_SKIP_SET_EVENT_ON_HANDLE;
  if (ifs)
    modes |= FILE_SKIP_COMPLETION_PORT_ON_SUCCESS;
  return SetFileCompletionNotificationModes((HANDLE)sock, modes) && ifs;
}

static void rec_init(io_rec *r, whandle *s, proa__op_fn fn) {
  r->op.complete = fn;
  r->s = s;
  r->user = NULL;
  r->pending = INVALID_SOCKET;
}

static void read_done(proa__op *op);
static void write_done(proa__op *op);

/*
 * Makes `sock` non-blocking (for the try_* calls; overlapped calls are not
 * affected) and associates it with the port. On failure `sock` is left
 * open for the caller to close.
 */
/* The socket of the base provider, which is what CancelIoEx must be given
 * when a layered provider sits on top (libuv and wepoll learned this). */
static HANDLE base_handle(SOCKET sock) {
  SOCKET base = INVALID_SOCKET;
  DWORD n = 0;
  if (WSAIoctl(sock, SIO_BASE_HANDLE, NULL, 0, &base, sizeof base, &n, NULL,
               NULL) != 0 ||
      base == INVALID_SOCKET)
    return (HANDLE)sock;
  return (HANDLE)base;
}

typedef LONG(NTAPI *query_file_fn)(HANDLE h, IO_STATUS_BLOCK *io, void *info,
                                   ULONG len, int info_class);
#define FILE_MODE_INFORMATION_CLASS 16 /* FileModeInformation */
#ifndef FILE_SYNCHRONOUS_IO_ALERT
#define FILE_SYNCHRONOUS_IO_ALERT 0x10
#define FILE_SYNCHRONOUS_IO_NONALERT 0x20
#endif

/*
 * Whether `h` was opened without FILE_FLAG_OVERLAPPED: its file object
 * then serializes every call, which blocks (libuv's uv_pipe_open asks the
 * same). A handle that cannot say (a console handle before Windows 8 is
 * no kernel handle) is treated as synchronous: the helper thread serves it
 * either way, only slower.
 */
static bool is_synchronous(HANDLE h) {
  query_file_fn query_file =
      (query_file_fn)proa__ntdll_function("NtQueryInformationFile");
  IO_STATUS_BLOCK io;
  ULONG mode = 0;
  if (query_file == NULL ||
      query_file(h, &io, &mode, sizeof mode, FILE_MODE_INFORMATION_CLASS) < 0)
    return true;
  return (mode & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT)) !=
         0;
}

/* A handle's state, associated with the port unless it is synchronous or
 * already is (`associated`); `os` is left open for the caller to close on
 * failure. */
static int handle_new(proa__backend *be, HANDLE os, int kind, bool associated,
                      whandle **out) {
  int err = 0;
  bool sync = kind != PROA__IOH_SOCKET && !associated && is_synchronous(os);
  whandle *s = (whandle *)calloc(1, sizeof *s);
  if (s == NULL)
    return PROA_ENOMEM;
  if (!sync && !associated)
    err = proa__backend_associate(be, os);
  if (err) {
    free(s);
    return err;
  }
  s->sync = sync;
  s->h.ops = &proa__iocp_ops;
  s->h.os = (intptr_t)os;
  s->h.kind = (unsigned char)kind;
  proa__handles_count(1);
  s->sock = INVALID_SOCKET;
  s->base = os;
  s->be = be;
  rec_init(&s->read, s, read_done);
  rec_init(&s->write, s, write_done);
  *out = s;
  return 0;
}

static int wrap(proa__backend *be, SOCKET sock, const sock_info *info,
                whandle **out) {
  u_long one = 1;
  whandle *s;
  int err;
  if (ioctlsocket(sock, FIONBIO, &one) != 0)
    return last_error();
  err = handle_new(be, (HANDLE)sock, PROA__IOH_SOCKET, false, &s);
  if (err)
    return err;
  s->sock = sock;
  s->base = base_handle(sock);
  s->info = *info;
  s->skip = set_skip(sock, info->ifs);
  /* Off from the start, or an ICMP report about one peer would fail the
   * receives of an unconnected socket; a connected one gets it back. */
  if (info->type == SOCK_DGRAM)
    set_connreset(sock, FALSE);
  *out = s;
  return 0;
}

int proa__iocp_socket_open(proa__backend *be, int family, int type,
                           int protocol, proa__ioh **out) {
  int os_family = proa__os_family(family);
  int os_type = proa__os_socktype(type);
  SOCKET sock;
  sock_info info;
  int err;
  if (be == NULL || out == NULL || os_family == AF_UNSPEC || os_type == 0)
    return PROA_EINVAL;
  err = open_raw(os_family, os_type, protocol, &sock);
  if (err)
    return err;
  err = query_info(sock, &info);
  if (!err)
    err = wrap(be, sock, &info, (whandle **)(void *)out);
  if (err)
    closesocket(sock);
  return err;
}

/*
 * Takes over a socket, a pipe or a file. Sockets report FILE_TYPE_PIPE (or
 * FILE_TYPE_UNKNOWN under some providers), so asking Winsock tells them
 * apart. Pipes and files opened for overlapped I/O go through the port;
 * the others through helper threads.
 */
int proa__iocp_adopt(proa__backend *be, intptr_t os, proa__ioh **out) {
  HANDLE h = (HANDLE)os;
  SOCKET sock = (SOCKET)os;
  sock_info info;
  DWORD type;
  int kind;
  if (be == NULL || out == NULL || os == -1 || h == NULL)
    return PROA_EBADF;
  if (query_info(sock, &info) == 0) {
    SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    return wrap(be, sock, &info, (whandle **)(void *)out);
  }
  type = GetFileType(h);
  if (type == FILE_TYPE_DISK)
    kind = PROA__IOH_FILE;
  else if (type == FILE_TYPE_PIPE || type == FILE_TYPE_CHAR)
    kind = PROA__IOH_PIPE;
  else
    return PROA_EBADF;
  return handle_new(be, h, kind, false, (whandle **)(void *)out);
}

int proa__iocp_pipe_wrap(proa__backend *be, HANDLE pipe, bool associated,
                         proa__ioh **out) {
  return handle_new(be, pipe, PROA__IOH_PIPE, associated,
                    (whandle **)(void *)out);
}

static void handle_free(whandle *s) {
  if (s->sync_read != NULL)
    proa__sync_io_stop(s->sync_read);
  if (s->sync_write != NULL)
    proa__sync_io_stop(s->sync_write);
  if (s->close_later != NULL)
    CloseHandle(s->close_later);
  proa__handles_count(-1);
  free(s->accepts);
  free(s->lend_buf);
  free(s);
}

/* Whether every record still in flight had a cancel asked for. */
static bool all_cancelled(const whandle *s) {
  int i;
  if ((s->read.user && !s->read.cancelled) ||
      (s->write.user && !s->write.cancelled))
    return false;
  for (i = 0; s->accepts != NULL && i < ACCEPT_MAX; i++)
    if (s->accepts[i].user && !s->accepts[i].cancelled)
      return false;
  return true;
}

static void release(proa__ioh *h, bool close_os) {
  whandle *s = of_ioh(h);
  PROA_ASSERT(all_cancelled(s), "a handle is closed only once its ops "
                                "completed or were cancelled");
  /* CloseHandle would wait for a helper thread's call in progress (the
   * file object serializes them): such a handle is closed with its state,
   * once the cancelled calls have completed. */
  if (close_os && s->sync && s->inflight > 0)
    s->close_later = (HANDLE)s->h.os;
  else if (close_os && s->h.kind == PROA__IOH_SOCKET)
    closesocket(s->sock);
  else if (close_os)
    CloseHandle((HANDLE)s->h.os);
  s->sock = INVALID_SOCKET;
  s->h.os = -1;
  /* What is in flight still completes (closing the socket aborts it, if
   * the cancel had not yet); the last completion frees the state, and a
   * read completion that is running frees it when it returns. */
  if (s->inflight > 0 || s->dispatching)
    s->closed = true;
  else
    handle_free(s);
}

void proa__iocp_close(proa__ioh *h) { release(h, true); }

/* The handle stays open, and associated with the port: Windows cannot undo
 * that, so the caller gets it back for synchronous use or to close. (One
 * served by helper threads never was.) */
void proa__iocp_detach(proa__ioh *h) { release(h, false); }

/* ---- completions ---- */

/* Ends a record's flight and completes the caller's op; a handle closed
 * meanwhile goes with its last record. */
static void finish(io_rec *r, intptr_t result) {
  whandle *s = r->s;
  proa__op *user = r->user;
  r->user = NULL;
  s->inflight--;
  proa__iocp_inflight_add(s->be, -1);
  if (s->closed && result >= 0 && r != &s->write)
    result = PROA_ECANCELED; /* a read or an accept that raced the close */
  if (s->closed && s->inflight == 0 && !s->dispatching)
    handle_free(s);
  user->result = result;
  user->complete(user); /* may close the handle: touch nothing after */
}

/*
 * A datagram is readable when the zero-byte peek says it is larger than
 * nothing (EMSGSIZE), or reports ICMP news; the receive that follows then
 * takes the datagram or the error, so that each is reported once.
 */
static intptr_t dgram_wait_result(intptr_t r) {
  if (r == PROA_EMSGSIZE || r == PROA_ECONNRESET || r == PROA_ECONNREFUSED ||
      r == PROA_EHOSTUNREACH || r == PROA_ENETUNREACH)
    return 0;
  return r;
}

static void read_data(whandle *s);
static void issue_read(whandle *s);

/*
 * A pipe's or file's read ended; the end of the data is a read of 0. A
 * message longer than the buffer (ERROR_MORE_DATA, a message-mode named
 * pipe) filled it: the rest comes with the next read.
 */
static intptr_t pipe_result(whandle *s, intptr_t result) {
  if (result == PROA_EOF)
    return 0;
  if (result == PROA_EMSGSIZE && s->h.kind == PROA__IOH_PIPE)
    return (intptr_t)s->read.pending_len;
  if (result > 0 && s->h.kind == PROA__IOH_FILE)
    s->offset += (uint64_t)result;
  return result;
}

/*
 * The zero-byte read that watches a write end ended: the reader is gone
 * (ERROR_BROKEN_PIPE), or the handle cannot tell this way (no read
 * access: ERROR_ACCESS_DENIED; or the other end writes, so the read
 * found data), which is PROA_ENOTSUP.
 */
static intptr_t peer_result(intptr_t result) {
  if (result == PROA_EOF || result == PROA_EPIPE)
    return 0;
  return result == PROA_ECANCELED ? result : PROA_ENOTSUP;
}

static void read_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  whandle *s = r->s;
  intptr_t result = op->result;
  if (s->h.kind != PROA__IOH_SOCKET) {
    if (s->read_kind == READ_DATA)
      ((proa__read_op *)(void *)r->user)->data = s->read.pending_buf;
    if (s->read_kind == READ_PEER)
      result = peer_result(result);
    finish(r, s->read_kind == READ_DATA
                  ? pipe_result(s, result)
                  : (result > 0 || result == PROA_EMSGSIZE ? 0 : result));
    return;
  }
  /* Sockets wait with a zero-byte receive, then read what is there. */
  result = result > 0 ? 0 : result;
  if (s->info.type == SOCK_DGRAM)
    result = dgram_wait_result(result);
  if (s->read_kind == READ_DATA && result == 0 && !s->closed)
    read_data(s);
  else
    finish(r, result);
}

/* The zero-byte write of a pipe's end of stream (pipe_write_eof) ended:
 * nobody waits for it, and its error, if any, is the read side's to see. */
static void eof_done(whandle *s) {
  s->write.user = NULL;
  s->inflight--;
  proa__iocp_inflight_add(s->be, -1);
  if (s->closed && s->inflight == 0 && !s->dispatching)
    handle_free(s);
}

static void write_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  whandle *s = r->s;
  intptr_t result = op->result;
  if (s->write_kind == WRITE_EOF) {
    eof_done(s);
    return;
  }
  /* A pipe whose reader is gone: ERROR_NO_DATA, or ERROR_BROKEN_PIPE. */
  if (s->h.kind != PROA__IOH_SOCKET && result == PROA_EOF)
    result = PROA_EPIPE;
  if (s->closed) {
    finish(r, result);
    return;
  }
  /* Without this getpeername and shutdown fail on a ConnectEx socket. */
  if (s->write_kind == WRITE_CONNECT && s->info.type == SOCK_STREAM &&
      result >= 0 &&
      setsockopt(s->sock, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
    result = last_error();
  /* Windows says "reset" for an ICMP port unreachable on a datagram. */
  if (s->info.type == SOCK_DGRAM && result == PROA_ECONNRESET)
    result = PROA_ECONNREFUSED;
  finish(r, result);
}

/*
 * Settles an overlapped call: `err` is 0 (done at once, `bytes`
 * transferred), WSA_IO_PENDING, or the failure. A call that succeeded at
 * once still gets a packet unless skipping is on; a failed call never
 * does. WSAEMSGSIZE (a datagram larger than the buffer) and ERROR_MORE_DATA
 * (the same for a pipe's message) count as done: they are
 * STATUS_BUFFER_OVERFLOW, a warning, and the call ran. Either way the
 * completion comes from a later poll.
 */
static void submitted(whandle *s, io_rec *r, int err, intptr_t bytes) {
  bool ran = err == 0 || err == WSAEMSGSIZE || err == ERROR_MORE_DATA;
  if (err == WSA_IO_PENDING || (ran && !s->skip))
    return;
  r->op.result = err == 0 ? bytes : proa__translate_wsa(err);
  proa__backend_post(s->be, &r->op);
}

static int call_error(int rc) { return rc == 0 ? 0 : WSAGetLastError(); }

/* Puts the caller's op in flight on `r`; false if `r` is busy already. */
static bool rec_begin(io_rec *r, proa__op *user) {
  PROA_ASSERT(r->user == NULL, "one operation per direction per handle");
  if (r->user != NULL)
    return false;
  memset(&r->op.overlapped, 0, sizeof r->op.overlapped);
  r->user = user;
  r->cancelled = false;
  r->s->inflight++;
  proa__iocp_inflight_add(r->s->be, 1);
  return true;
}

/* Completes the caller's op from the next poll without a record. */
static void post_user(whandle *s, proa__op *op, int err) {
  op->result = err;
  proa__iocp_post_counted(s->be, op);
}

/* ---- datagram ICMP reports ---- */

/*
 * Datagram sockets are opened with ICMP reports off (see wrap). A socket
 * that is connected by now (connect happens after open, in common code)
 * gets them back once, so that a connected endpoint learns ECONNREFUSED as
 * it does on Unix. Checked on the first wait or connected send.
 */
static void dgram_settle_icmp(whandle *s) {
  struct sockaddr_storage peer;
  int len = (int)sizeof peer;
  if (s->info.type != SOCK_DGRAM || s->icmp_known)
    return;
  s->icmp_known = true;
  if (getpeername(s->sock, (struct sockaddr *)&peer, &len) == 0)
    set_connreset(s->sock, TRUE);
}

/* ---- non-blocking calls ---- */

static int clamp_int(size_t len) {
  return len > (size_t)INT_MAX ? INT_MAX : (int)len;
}

/* Non-blocking calls report "would block" as PROA_EAGAIN. */
static intptr_t nb_error(whandle *s) {
  int err = WSAGetLastError();
  if (err == WSAEWOULDBLOCK)
    return PROA_EAGAIN;
  if (err == WSAECONNRESET && s->info.type == SOCK_DGRAM)
    return PROA_ECONNREFUSED; /* an ICMP port unreachable */
  return proa__translate_wsa(err);
}

/*
 * Fills `wb` from `bufs` (at most PROA__MAX_SEND_BUFS). A buffer too large
 * for one WSABUF is cut and ends the list, since what is sent must be a
 * prefix of what was offered.
 */
static DWORD to_wsabufs(const proa_buf *bufs, size_t count, WSABUF *wb) {
  DWORD n = 0;
  size_t i;
  if (count > PROA__MAX_SEND_BUFS)
    count = PROA__MAX_SEND_BUFS;
  for (i = 0; i < count; i++) {
    wb[n].buf = (char *)(uintptr_t)bufs[i].base;
    wb[n].len =
        (ULONG)(bufs[i].len > MAX_WSABUF_LEN ? MAX_WSABUF_LEN : bufs[i].len);
    n++;
    if (bufs[i].len > MAX_WSABUF_LEN)
      break;
  }
  return n;
}

/* Pipes and files take no non-blocking write: they always queue. */
intptr_t proa__iocp_try_write(proa__ioh *h, const proa_buf *bufs,
                              size_t count) {
  whandle *s = of_ioh(h);
  WSABUF wb[PROA__MAX_SEND_BUFS];
  DWORD n = 0, nb;
  if (s->h.kind != PROA__IOH_SOCKET)
    return PROA_EAGAIN;
  if (bufs == NULL)
    return count ? PROA_EINVAL : 0;
  nb = to_wsabufs(bufs, count, wb);
  if (nb == 0)
    return 0;
  if (WSASend(s->sock, wb, nb, &n, 0, NULL, NULL) != 0)
    return nb_error(s);
  return (intptr_t)n;
}

intptr_t proa__iocp_try_recvfrom(proa__ioh *h, void *buf, size_t len,
                                 proa_sockaddr *from) {
  whandle *s = of_ioh(h);
  int fromlen = (int)sizeof from->storage, n;
  struct sockaddr *sa = from ? (struct sockaddr *)(void *)from->storage : NULL;
  if (buf == NULL && len > 0)
    return PROA_EINVAL;
  n = recvfrom(s->sock, (char *)buf, clamp_int(len), 0, sa,
               from ? &fromlen : NULL);
  if (n < 0 && WSAGetLastError() == WSAEMSGSIZE) {
    /* The buffer was filled and the rest of the datagram is lost. */
    if (from)
      from->len = fromlen;
    return PROA_EMSGSIZE;
  }
  if (n < 0)
    return nb_error(s);
  if (from)
    from->len = fromlen;
  return n;
}

intptr_t proa__iocp_try_sendto(proa__ioh *h, const void *buf, size_t len,
                               const proa_sockaddr *to) {
  whandle *s = of_ioh(h);
  int n;
  if ((buf == NULL && len > 0) ||
      (to && (to->len <= 0 || to->len > (int)sizeof to->storage)))
    return PROA_EINVAL;
  if (len > (size_t)INT_MAX)
    return PROA_EMSGSIZE;
  if (to == NULL) {
    dgram_settle_icmp(s);
    n = send(s->sock, (const char *)buf, (int)len, 0);
  } else {
    n = sendto(s->sock, (const char *)buf, (int)len, 0,
               (const struct sockaddr *)(const void *)to->storage, to->len);
  }
  return n >= 0 ? (intptr_t)n : nb_error(s);
}

/* ---- operations ---- */

/* What a zero-byte receive points at (a NULL buffer upsets some providers). */
static char zero_buf[1];

/* Hands a synchronous handle's call to the helper thread of its direction,
 * started on first use; the record completes from the port either way. */
static void sync_submit(whandle *s, proa__sync_io **w, bool write,
                        const void *buf, size_t len) {
  io_rec *r = write ? &s->write : &s->read;
  int err = 0;
  if (*w == NULL)
    err = proa__sync_io_start(s->be->port, (HANDLE)s->h.os, write, w);
  if (err) {
    r->op.result = err;
    proa__backend_post(s->be, &r->op);
    return;
  }
  proa__sync_io_submit(*w, &r->op, (void *)(uintptr_t)buf,
                       (DWORD)(len > MAX_WSABUF_LEN ? MAX_WSABUF_LEN : len));
}

/*
 * Starts the read side's record: a socket waits with a zero-byte receive
 * (a peek for datagrams) so that an idle connection pins no buffer; a pipe
 * or file reads with ReadFile into the op's buffer, or waits with a
 * zero-byte ReadFile.
 */
static void issue_read(whandle *s) {
  io_rec *r = &s->read;
  WSABUF wb;
  DWORD n = 0, flags = 0;
  int rc;
  memset(&r->op.overlapped, 0, sizeof r->op.overlapped);
  if (s->h.kind != PROA__IOH_SOCKET) {
    void *buf = zero_buf;
    size_t len = 0;
    if (s->read_kind == READ_DATA) {
      buf = proa__read_target((proa__read_op *)(void *)r->user, &s->lend_buf,
                              LEND_SIZE, &len);
      if (buf == NULL) {
        r->op.result =
            PROA__READ_TARGET_ERROR((proa__read_op *)(void *)r->user);
        proa__backend_post(s->be, &r->op);
        return;
      }
    }
    r->pending_buf = buf;
    r->pending_len = (DWORD)(len > MAX_WSABUF_LEN ? MAX_WSABUF_LEN : len);
    if (s->sync) {
      sync_submit(s, &s->sync_read, false, buf, r->pending_len);
      return;
    }
    r->op.overlapped.Offset = (DWORD)s->offset;
    r->op.overlapped.OffsetHigh = (DWORD)(s->offset >> 32);
    rc = ReadFile((HANDLE)s->h.os, buf, r->pending_len, &n, &r->op.overlapped);
    submitted(s, r, rc ? 0 : (int)GetLastError(), (intptr_t)n);
    return;
  }
  wb.buf = zero_buf;
  wb.len = 0;
  if (s->info.type == SOCK_DGRAM) {
    /* A zero-byte receive would consume the datagram; a peek does not. */
    dgram_settle_icmp(s);
    flags = MSG_PEEK;
    rc = WSARecvFrom(s->sock, &wb, 1, &n, &flags, NULL, NULL, &r->op.overlapped,
                     NULL);
  } else {
    rc = WSARecv(s->sock, &wb, 1, &n, &flags, &r->op.overlapped, NULL);
  }
  submitted(s, r, call_error(rc), 0);
}

static void read_begin(whandle *s, proa__op *op, enum read_kind kind) {
  if (!rec_begin(&s->read, op)) {
    post_user(s, op, PROA_EBUSY);
    return;
  }
  s->read_kind = kind;
  if (!s->read_inline) /* else read_data goes on when the callback returns */
    issue_read(s);
}

void proa__iocp_wait_readable(proa__ioh *h, proa__op *op) {
  read_begin(of_ioh(h), op, READ_WAIT);
}

void proa__iocp_read(proa__ioh *h, proa__read_op *op) {
  read_begin(of_ioh(h), &op->op, READ_DATA);
}

/* An overlapped pipe: a zero-byte ReadFile on the write end never finds
 * data (proa_pipe's read end cannot write) and fails with
 * ERROR_BROKEN_PIPE once the reader closed, as asyncio's proactor reads
 * its write pipes. A synchronous handle cannot: the read would block its
 * writes (the file object serializes calls). */
void proa__iocp_wait_peer_closed(proa__ioh *h, proa__op *op) {
  whandle *s = of_ioh(h);
  if (s->h.kind != PROA__IOH_PIPE || s->sync) {
    post_user(s, op, PROA_ENOTSUP);
    return;
  }
  read_begin(s, op, READ_PEER);
}

/* A socket's non-blocking receive into the op's buffer: the bytes, 0 at
 * the end, PROA_EAGAIN, or the error; *full says it filled the buffer. */
static intptr_t recv_into(whandle *s, proa__read_op *op, bool *full) {
  size_t len = 0;
  void *buf = proa__read_target(op, &s->be->lend_buf, LEND_SIZE, &len);
  int n;
  *full = false;
  if (buf == NULL)
    return PROA__READ_TARGET_ERROR(op);
  n = recv(s->sock, (char *)buf, clamp_int(len), 0);
  if (n < 0)
    return nb_error(s);
  op->data = buf;
  *full = (size_t)n == (size_t)clamp_int(len);
  return n;
}

/*
 * The zero-byte wait of a socket read ended: read, complete, and go on
 * reading while the completion submits the next read and the last one
 * filled its buffer, all without another system call to wait. A read
 * submitted from the completion only records itself (read_inline); what
 * it needs is done here when the callback returns.
 */
static void read_data(whandle *s) {
  int i;
  for (i = 0; i < READS_PER_WAKE; i++) {
    io_rec *r = &s->read;
    bool full = false;
    intptr_t n = s->read_cancelled
                     ? PROA_ECANCELED
                     : recv_into(s, (proa__read_op *)(void *)r->user, &full);
    s->read_cancelled = false;
    if (n == PROA_EAGAIN) {
      issue_read(s); /* spurious: wait again, still in flight */
      return;
    }
    s->dispatching = s->read_inline = true;
    finish(r, n);
    s->dispatching = s->read_inline = false;
    if (s->closed) {
      if (s->inflight == 0)
        handle_free(s);
      return;
    }
    if (r->user == NULL)
      return; /* no next read */
    if (s->read_kind != READ_DATA || (!full && !s->read_cancelled)) {
      issue_read(s);
      return;
    }
  }
  issue_read(s);
}

/* A pipe or a file takes one buffer per WriteFile: the first. */
static void write_file(whandle *s, const proa_buf *buf) {
  io_rec *r = &s->write;
  DWORD n = 0;
  BOOL ok;
  if (s->sync) {
    sync_submit(s, &s->sync_write, true, buf->base, buf->len);
    return;
  }
  r->op.overlapped.Offset = (DWORD)s->offset;
  r->op.overlapped.OffsetHigh = (DWORD)(s->offset >> 32);
  ok = WriteFile((HANDLE)s->h.os, buf->base,
                 (DWORD)(buf->len > MAX_WSABUF_LEN ? MAX_WSABUF_LEN : buf->len),
                 &n, &r->op.overlapped);
  submitted(s, r, ok ? 0 : (int)GetLastError(), (intptr_t)n);
}

void proa__iocp_write(proa__ioh *h, proa__write_op *wop) {
  whandle *s = of_ioh(h);
  WSABUF wb[PROA__MAX_SEND_BUFS];
  DWORD n = 0, nb;
  int rc;
  if (wop->bufs == NULL || wop->count == 0) {
    post_user(s, &wop->op, PROA_EINVAL);
    return;
  }
  if (!rec_begin(&s->write, &wop->op)) {
    post_user(s, &wop->op, PROA_EBUSY);
    return;
  }
  s->write_kind = WRITE_SEND;
  if (s->h.kind != PROA__IOH_SOCKET) {
    write_file(s, &wop->bufs[0]);
    return;
  }
  /* The kernel copies the WSABUF array, so it may live on the stack. */
  nb = to_wsabufs(wop->bufs, wop->count, wb);
  rc = WSASend(s->sock, wb, nb, &n, 0, &s->write.op.overlapped, NULL);
  submitted(s, &s->write, call_error(rc), (intptr_t)n);
}

/* Overlapped writes never need to wait for room: the kernel queues them.
 * So a handle is always writable here; readiness proper is AFD's work. */
void proa__iocp_wait_writable(proa__ioh *h, proa__op *op) {
  whandle *s = of_ioh(h);
  if (!rec_begin(&s->write, op)) {
    post_user(s, op, PROA_EBUSY);
    return;
  }
  s->write_kind = WRITE_SEND;
  s->write.op.result = 0;
  proa__backend_post(s->be, &s->write.op);
}

/*
 * A pipe cannot half-close: CloseHandle would end the read side too, and
 * DisconnectNamedPipe discards what the peer has not read yet. So the end
 * of the stream goes in band, after the data: a zero-byte WriteFile on a
 * message-type pipe (what pipe.c makes) is an empty message, which the
 * peer's message-mode ReadFile reports as 0 bytes read, the same "end of
 * stream" a socket's shutdown gives (and ERROR_BROKEN_PIPE once the writer
 * closes). A byte-type pipe cannot say it: Windows merges an empty write
 * into the read that takes the data before it, and Wine 8 drops it. The
 * write record carries it with no op of the caller's, marked cancelled at
 * once, since closing the handle may end it at any time.
 */
static int pipe_write_eof(whandle *s) {
  io_rec *r = &s->write;
  DWORD n = 0, flags = 0;
  BOOL ok;
  if (!GetNamedPipeInfo((HANDLE)s->h.os, &flags, NULL, NULL, NULL) ||
      (flags & PIPE_TYPE_MESSAGE) == 0)
    return PROA_ENOTSUP;
  if (!rec_begin(r, &r->op)) /* the record itself: a user that never waits */
    return PROA_EBUSY;
  r->cancelled = true;
  s->write_kind = WRITE_EOF;
  ok = WriteFile((HANDLE)s->h.os, zero_buf, 0, &n, &r->op.overlapped);
  submitted(s, r, ok ? 0 : (int)GetLastError(), 0);
  return 0;
}

int proa__iocp_shutdown_write(proa__ioh *h) {
  whandle *s = of_ioh(h);
  if (s->h.kind == PROA__IOH_SOCKET)
    return proa__socket_shutdown_write(h);
  if (s->h.kind == PROA__IOH_PIPE)
    return pipe_write_eof(s);
  return PROA_ENOTSUP; /* a file has no peer to tell */
}

void proa__iocp_sendto(proa__ioh *h, proa__sendto_op *sop) {
  whandle *s = of_ioh(h);
  proa__op *op = &sop->op;
  const void *buf = sop->buf;
  size_t len = sop->len;
  const proa_sockaddr *to = sop->to;
  WSABUF wb;
  DWORD n = 0;
  int rc;
  if ((buf == NULL && len > 0) || len > MAX_WSABUF_LEN ||
      (to && (to->len <= 0 || to->len > (int)sizeof to->storage))) {
    post_user(s, op, len > MAX_WSABUF_LEN ? PROA_EMSGSIZE : PROA_EINVAL);
    return;
  }
  if (!rec_begin(&s->write, op)) {
    post_user(s, op, PROA_EBUSY);
    return;
  }
  if (to == NULL)
    dgram_settle_icmp(s);
  wb.buf = buf ? (char *)(uintptr_t)buf : zero_buf;
  wb.len = (ULONG)len;
  s->write_kind = WRITE_SENDTO;
  rc = WSASendTo(s->sock, &wb, 1, &n, 0,
                 to ? (const struct sockaddr *)(const void *)to->storage : NULL,
                 to ? to->len : 0, &s->write.op.overlapped, NULL);
  submitted(s, &s->write, call_error(rc), (intptr_t)n);
}

/* ConnectEx insists on a bound socket: the wildcard of its family, or
 * for AF_UNIX the unnamed address (a family and an empty path: gRPC's
 * Windows event engine does the same). */
static int bind_if_unbound(whandle *s) {
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  if (getsockname(s->sock, (struct sockaddr *)&ss, &len) == 0)
    return 0;
  memset(&ss, 0, sizeof ss);
  ss.ss_family = (ADDRESS_FAMILY)s->info.family;
  len = s->info.family == AF_INET6  ? (int)sizeof(struct sockaddr_in6)
        : s->info.family == AF_UNIX ? (int)sizeof(struct sockaddr)
                                    : (int)sizeof(struct sockaddr_in);
  if (bind(s->sock, (struct sockaddr *)&ss, len) == 0)
    return 0;
  /* WSAEINVAL: bound after all (getsockname can fail for other reasons). */
  return WSAGetLastError() == WSAEINVAL ? 0 : last_error();
}

/* Datagram sockets connect at once; the result still comes from poll. */
static void connect_dgram(whandle *s, const proa_sockaddr *addr) {
  int rc = connect(
      s->sock, (const struct sockaddr *)(const void *)addr->storage, addr->len);
  s->write.op.result = rc == 0 ? 0 : last_error();
  if (rc == 0) { /* connected: ICMP reports are wanted now (see above) */
    s->icmp_known = true;
    set_connreset(s->sock, TRUE);
  }
  proa__backend_post(s->be, &s->write.op);
}

void proa__iocp_connect(proa__ioh *h, proa__op *op, const proa_sockaddr *addr) {
  whandle *s = of_ioh(h);
  ext_entry ext;
  int err = 0;
  BOOL ok;
  if (addr == NULL || addr->len <= 0 || addr->len > (int)sizeof addr->storage)
    err = PROA_EINVAL;
  else if (s->h.kind != PROA__IOH_SOCKET)
    err = PROA_ENOTSOCK;
  if (!err && s->info.type == SOCK_STREAM)
    err = bind_if_unbound(s);
  if (!err && s->info.type == SOCK_STREAM)
    err = ext_get(s, &ext);
  if (!err && !rec_begin(&s->write, op))
    err = PROA_EBUSY;
  if (err) {
    post_user(s, op, err);
    return;
  }
  s->write_kind = WRITE_CONNECT;
  if (s->info.type != SOCK_STREAM) {
    connect_dgram(s, addr);
    return;
  }
  ok = ext.connectex(s->sock,
                     (const struct sockaddr *)(const void *)addr->storage,
                     addr->len, NULL, 0, NULL, &s->write.op.overlapped);
  submitted(s, &s->write, ok ? 0 : WSAGetLastError(), 0);
}

/* ---- accept ---- */

static void accept_done(proa__op *op);

/* A free accept record of `s`, allocating them on first use. */
static io_rec *accept_rec(whandle *s, int *err) {
  int i;
  if (s->accepts == NULL) {
    s->accepts = (io_rec *)calloc(ACCEPT_MAX, sizeof *s->accepts);
    if (s->accepts == NULL) {
      *err = PROA_ENOMEM;
      return NULL;
    }
    for (i = 0; i < ACCEPT_MAX; i++)
      rec_init(&s->accepts[i], s, accept_done);
  }
  for (i = 0; i < ACCEPT_MAX; i++)
    if (s->accepts[i].user == NULL)
      return &s->accepts[i];
  *err = PROA_EBUSY; /* more than proa__accept_ops_max() in flight */
  return NULL;
}

/* Makes the socket AcceptEx filled a proa__socket like the listener. */
static intptr_t accept_finish(whandle *ls, io_rec *r, proa__accept_op *aop) {
  int err;
  if (setsockopt(r->pending, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                 (const char *)&ls->sock, (int)sizeof ls->sock) != 0)
    return last_error();
  err = wrap(ls->be, r->pending, &ls->info, (whandle **)(void *)&aop->accepted);
  if (err)
    return err;
  r->pending = INVALID_SOCKET; /* owned by aop->accepted now */
  aop->pending = (uintptr_t)INVALID_SOCKET;
  return 0;
}

static void accept_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  whandle *ls = r->s;
  proa__accept_op *aop = (proa__accept_op *)(void *)r->user;
  intptr_t result = op->result > 0 ? 0 : op->result;
  if (!ls->closed) {
    if (result == 0)
      result = accept_finish(ls, r, aop);
    if (result != 0)
      aop->pending = (uintptr_t)INVALID_SOCKET;
  }
  if (r->pending != INVALID_SOCKET) {
    closesocket(r->pending);
    r->pending = INVALID_SOCKET;
  }
  finish(r, result);
}

void proa__iocp_accept(proa__ioh *h, proa__accept_op *aop) {
  whandle *s = of_ioh(h);
  ext_entry ext;
  io_rec *r = NULL;
  SOCKET pending = INVALID_SOCKET;
  DWORD n = 0;
  BOOL ok;
  int err = s->h.kind == PROA__IOH_SOCKET && s->info.type == SOCK_STREAM
                ? 0
                : PROA_ENOTSUP;
  aop->accepted = NULL;
  aop->pending = (uintptr_t)INVALID_SOCKET;
  if (!err)
    err = ext_get(s, &ext);
  if (!err)
    r = accept_rec(s, &err);
  if (!err)
    err = open_raw(s->info.family, s->info.type, s->info.protocol, &pending);
  if (err) {
    post_user(s, &aop->op, err);
    return;
  }
  rec_begin(r, &aop->op);
  r->pending = pending;
  aop->pending = (uintptr_t)pending;
  ok = ext.acceptex(s->sock, pending, aop->addresses, 0, (DWORD)ACCEPT_ADDR_LEN,
                    (DWORD)ACCEPT_ADDR_LEN, &n, &r->op.overlapped);
  submitted(s, r, ok ? 0 : WSAGetLastError(), 0);
}

/* ---- cancel ---- */

/* The record carrying `op`, or NULL when `op` is not in flight here. */
static io_rec *rec_of(whandle *s, const proa__op *op) {
  int i;
  if (s->read.user == op)
    return &s->read;
  if (s->write.user == op)
    return &s->write;
  for (i = 0; s->accepts != NULL && i < ACCEPT_MAX; i++)
    if (s->accepts[i].user == op)
      return &s->accepts[i];
  return NULL;
}

void proa__iocp_cancel(proa__ioh *h, proa__op *op) {
  whandle *s = of_ioh(h);
  io_rec *r;
  if (s == NULL || op == NULL || (r = rec_of(s, op)) == NULL)
    return;
  r->cancelled = true;
  if (s->sync) {
    proa__sync_io *w = r == &s->read ? s->sync_read : s->sync_write;
    if (w != NULL)
      proa__sync_io_cancel(w, &r->op);
    return;
  }
  if (r == &s->read && s->read_inline) {
    s->read_cancelled = true; /* recorded, not issued: read_data ends it */
    return;
  }
  if (CancelIoEx(s->base, &r->op.overlapped))
    return;
  /* ERROR_NOT_FOUND: the op finished (or this file posted its result);
   * its completion, with the real result, is on its way. Anything else
   * means the handle given was wrong for this op: try the socket itself
   * before giving up, since a close that waits for the op would hang. */
  if (GetLastError() != ERROR_NOT_FOUND && s->base != (HANDLE)s->h.os &&
      CancelIoEx((HANDLE)s->h.os, &r->op.overlapped))
    return;
}
