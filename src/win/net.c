/* Socket operations for the Windows backend: overlapped Winsock on the port. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>

#include "sockets.h"
#include "win.h"

/* Not in every SDK's headers (MSVC keeps it in mstcpip.h). */
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

#define ACCEPT_MAX 8 /* AcceptEx calls in flight per listener */
/* What AcceptEx needs per address: the largest sockaddr plus 16 bytes. */
#define ACCEPT_ADDR_LEN (sizeof(struct sockaddr_in6) + 16)
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
  proa__op op;            /* first: its OVERLAPPED is what the port returns */
  proa__op *user;         /* the caller's op while in flight, else NULL */
  struct proa__socket *s; /* the socket that issued it */
  SOCKET pending;         /* accept only: the socket AcceptEx fills */
} io_rec;

/* What a socket is, as far as this file cares. */
typedef struct sock_info {
  int family, type, protocol; /* the OS's AF_*, SOCK_*, IPPROTO_* */
  GUID provider;              /* the Winsock provider that serves it */
  bool ifs;                   /* its handles are real kernel handles */
} sock_info;

enum write_kind { WRITE_SEND, WRITE_SENDTO, WRITE_CONNECT };

struct proa__socket {
  SOCKET sock;
  proa__backend *be;
  sock_info info;
  bool skip;       /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is on */
  bool icmp_known; /* datagram: ICMP reporting was settled (see below) */
  bool closed;     /* closed with records in flight: the last one frees */
  int inflight;    /* records whose completion has not run yet */
  enum write_kind write_kind;
  io_rec read;     /* wait_readable */
  io_rec write;    /* send, sendto or connect */
  io_rec *accepts; /* ACCEPT_MAX records, allocated by the first accept */
};

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

static bool ext_find(const proa__socket *s, ext_entry *out) {
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
static int ext_get(const proa__socket *s, ext_entry *out) {
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

static void rec_init(io_rec *r, proa__socket *s, proa__op_fn fn) {
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
static int wrap(proa__backend *be, SOCKET sock, const sock_info *info,
                proa__socket **out) {
  u_long one = 1;
  int err;
  proa__socket *s = (proa__socket *)calloc(1, sizeof *s);
  if (s == NULL)
    return PROA_ENOMEM;
  if (ioctlsocket(sock, FIONBIO, &one) != 0)
    err = last_error();
  else
    err = proa__backend_associate(be, (HANDLE)sock);
  if (err) {
    free(s);
    return err;
  }
  s->sock = sock;
  s->be = be;
  s->info = *info;
  s->skip = set_skip(sock, info->ifs);
  rec_init(&s->read, s, read_done);
  rec_init(&s->write, s, write_done);
  /* Off from the start, or an ICMP report about one peer would fail the
   * receives of an unconnected socket; a connected one gets it back. */
  if (info->type == SOCK_DGRAM)
    set_connreset(sock, FALSE);
  *out = s;
  return 0;
}

int proa__socket_open(proa__backend *be, int family, int type, int protocol,
                      proa__socket **out) {
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
    err = wrap(be, sock, &info, out);
  if (err)
    closesocket(sock);
  return err;
}

int proa__socket_adopt(proa__backend *be, intptr_t fd, proa__socket **out) {
  SOCKET sock = (SOCKET)fd;
  sock_info info;
  int err;
  if (be == NULL || out == NULL || fd == -1 || sock == INVALID_SOCKET)
    return PROA_EBADF;
  err = query_info(sock, &info); /* also tells a socket from other handles */
  if (err)
    return err;
  SetHandleInformation((HANDLE)sock, HANDLE_FLAG_INHERIT, 0);
  return wrap(be, sock, &info, out);
}

static void socket_free(proa__socket *s) {
  free(s->accepts);
  free(s);
}

void proa__socket_close(proa__socket *s) {
  if (s == NULL)
    return;
  closesocket(s->sock);
  s->sock = INVALID_SOCKET;
  /* The contract says nothing is in flight now. If something is, the
   * kernel still owns its OVERLAPPED: the last completion frees. */
  if (s->inflight > 0)
    s->closed = true;
  else
    socket_free(s);
}

intptr_t proa__socket_fd(const proa__socket *s) { return (intptr_t)s->sock; }

/* ---- completions ---- */

/*
 * Ends a record's flight and gives back the caller's op, or NULL when the
 * socket was closed under it (a broken contract: the op is dropped, and the
 * socket freed with the last record).
 */
static proa__op *rec_end(io_rec *r) {
  proa__socket *s = r->s;
  proa__op *user = r->user;
  r->user = NULL;
  s->inflight--;
  if (!s->closed)
    return user;
  if (s->inflight == 0)
    socket_free(s);
  return NULL;
}

static void finish(io_rec *r, intptr_t result) {
  proa__op *user = rec_end(r);
  if (user != NULL) {
    user->result = result;
    user->complete(user); /* may close the socket: touch nothing after */
  }
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

static void read_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  intptr_t result = op->result > 0 ? 0 : op->result;
  if (r->s->info.type == SOCK_DGRAM)
    result = dgram_wait_result(result);
  finish(r, result);
}

static void write_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  proa__socket *s = r->s;
  intptr_t result = op->result;
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
 * does. WSAEMSGSIZE (a datagram larger than the buffer) counts as done:
 * it is STATUS_BUFFER_OVERFLOW, a warning, and the call ran. Either way the
 * completion comes from a later poll.
 */
static void submitted(proa__socket *s, io_rec *r, int err, intptr_t bytes) {
  bool ran = err == 0 || err == WSAEMSGSIZE;
  if (err == WSA_IO_PENDING || (ran && !s->skip))
    return;
  r->op.result = err == 0 ? bytes : proa__translate_wsa(err);
  proa__backend_post(s->be, &r->op);
}

static int call_error(int rc) { return rc == 0 ? 0 : WSAGetLastError(); }

/* Puts the caller's op in flight on `r`; false if `r` is busy already. */
static bool rec_begin(io_rec *r, proa__op *user) {
  if (r->user != NULL)
    return false;
  memset(&r->op.overlapped, 0, sizeof r->op.overlapped);
  r->user = user;
  r->s->inflight++;
  return true;
}

/* Completes the caller's op from the next poll without a record. */
static void post_user(proa__socket *s, proa__op *op, int err) {
  op->result = err;
  proa__backend_post(s->be, op);
}

/* ---- datagram ICMP reports ---- */

/*
 * Datagram sockets are opened with ICMP reports off (see wrap). A socket
 * that is connected by now (connect happens after open, in common code)
 * gets them back once, so that a connected endpoint learns ECONNREFUSED as
 * it does on Unix. Checked on the first wait or connected send.
 */
static void dgram_settle_icmp(proa__socket *s) {
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
static intptr_t nb_error(proa__socket *s) {
  int err = WSAGetLastError();
  if (err == WSAEWOULDBLOCK)
    return PROA_EAGAIN;
  if (err == WSAECONNRESET && s->info.type == SOCK_DGRAM)
    return PROA_ECONNREFUSED; /* an ICMP port unreachable */
  return proa__translate_wsa(err);
}

intptr_t proa__socket_try_recv(proa__socket *s, void *buf, size_t len) {
  int n;
  if (buf == NULL && len > 0)
    return PROA_EINVAL;
  n = recv(s->sock, (char *)buf, clamp_int(len), 0);
  return n >= 0 ? (intptr_t)n : nb_error(s);
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

intptr_t proa__socket_try_send(proa__socket *s, const proa_buf *bufs,
                               size_t count) {
  WSABUF wb[PROA__MAX_SEND_BUFS];
  DWORD n = 0, nb;
  if (bufs == NULL)
    return count ? PROA_EINVAL : 0;
  nb = to_wsabufs(bufs, count, wb);
  if (nb == 0)
    return 0;
  if (WSASend(s->sock, wb, nb, &n, 0, NULL, NULL) != 0)
    return nb_error(s);
  return (intptr_t)n;
}

intptr_t proa__socket_try_recvfrom(proa__socket *s, void *buf, size_t len,
                                   proa_sockaddr *from) {
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

intptr_t proa__socket_try_sendto(proa__socket *s, const void *buf, size_t len,
                                 const proa_sockaddr *to) {
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

void proa__socket_wait_readable(proa__socket *s, proa__op *op) {
  WSABUF wb;
  DWORD n = 0, flags = 0;
  int rc;
  if (!rec_begin(&s->read, op)) {
    post_user(s, op, PROA_EBUSY);
    return;
  }
  wb.buf = zero_buf;
  wb.len = 0;
  if (s->info.type == SOCK_DGRAM) {
    /* A zero-byte receive would consume the datagram; a peek does not. */
    dgram_settle_icmp(s);
    flags = MSG_PEEK;
    rc = WSARecvFrom(s->sock, &wb, 1, &n, &flags, NULL, NULL,
                     &s->read.op.overlapped, NULL);
  } else {
    rc = WSARecv(s->sock, &wb, 1, &n, &flags, &s->read.op.overlapped, NULL);
  }
  submitted(s, &s->read, call_error(rc), 0);
}

void proa__socket_send(proa__socket *s, proa__op *op, const proa_buf *bufs,
                       size_t count) {
  WSABUF wb[PROA__MAX_SEND_BUFS];
  DWORD n = 0, nb;
  int rc;
  if (bufs == NULL || count == 0) {
    post_user(s, op, PROA_EINVAL);
    return;
  }
  if (!rec_begin(&s->write, op)) {
    post_user(s, op, PROA_EBUSY);
    return;
  }
  /* The kernel copies the WSABUF array, so it may live on the stack. */
  nb = to_wsabufs(bufs, count, wb);
  s->write_kind = WRITE_SEND;
  rc = WSASend(s->sock, wb, nb, &n, 0, &s->write.op.overlapped, NULL);
  submitted(s, &s->write, call_error(rc), (intptr_t)n);
}

void proa__socket_sendto(proa__socket *s, proa__op *op, const void *buf,
                         size_t len, const proa_sockaddr *to) {
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

/* ConnectEx insists on a bound socket: the wildcard of its family. */
static int bind_if_unbound(proa__socket *s) {
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  if (getsockname(s->sock, (struct sockaddr *)&ss, &len) == 0)
    return 0;
  memset(&ss, 0, sizeof ss);
  ss.ss_family = (ADDRESS_FAMILY)s->info.family;
  len = s->info.family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                   : (int)sizeof(struct sockaddr_in);
  if (bind(s->sock, (struct sockaddr *)&ss, len) == 0)
    return 0;
  /* WSAEINVAL: bound after all (getsockname can fail for other reasons). */
  return WSAGetLastError() == WSAEINVAL ? 0 : last_error();
}

/* Datagram sockets connect at once; the result still comes from poll. */
static void connect_dgram(proa__socket *s, const proa_sockaddr *addr) {
  int rc = connect(
      s->sock, (const struct sockaddr *)(const void *)addr->storage, addr->len);
  s->write.op.result = rc == 0 ? 0 : last_error();
  if (rc == 0) { /* connected: ICMP reports are wanted now (see above) */
    s->icmp_known = true;
    set_connreset(s->sock, TRUE);
  }
  proa__backend_post(s->be, &s->write.op);
}

void proa__socket_connect(proa__socket *s, proa__op *op,
                          const proa_sockaddr *addr) {
  ext_entry ext;
  int err = 0;
  BOOL ok;
  if (addr == NULL || addr->len <= 0 || addr->len > (int)sizeof addr->storage)
    err = PROA_EINVAL;
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

int proa__accept_ops_max(void) { return ACCEPT_MAX; }

static void accept_done(proa__op *op);

/* A free accept record of `s`, allocating them on first use. */
static io_rec *accept_rec(proa__socket *s, int *err) {
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
static intptr_t accept_finish(proa__socket *ls, io_rec *r,
                              proa__accept_op *aop) {
  int err;
  if (setsockopt(r->pending, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                 (const char *)&ls->sock, (int)sizeof ls->sock) != 0)
    return last_error();
  err = wrap(ls->be, r->pending, &ls->info, &aop->accepted);
  if (err)
    return err;
  r->pending = INVALID_SOCKET; /* owned by aop->accepted now */
  aop->pending = (uintptr_t)INVALID_SOCKET;
  return 0;
}

static void accept_done(proa__op *op) {
  io_rec *r = (io_rec *)(void *)op;
  proa__socket *ls = r->s;
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

void proa__socket_accept(proa__socket *s, proa__accept_op *aop) {
  ext_entry ext;
  io_rec *r = NULL;
  SOCKET pending = INVALID_SOCKET;
  DWORD n = 0;
  BOOL ok;
  int err = s->info.type == SOCK_STREAM ? 0 : PROA_ENOTSUP;
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
static io_rec *rec_of(proa__socket *s, const proa__op *op) {
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

void proa__socket_cancel(proa__socket *s, proa__op *op) {
  io_rec *r;
  if (s == NULL || op == NULL || (r = rec_of(s, op)) == NULL)
    return;
  /* ERROR_NOT_FOUND means the op finished (or its result was posted by
   * this file): its completion, with the real result, is on its way. */
  CancelIoEx((HANDLE)s->sock, &r->op.overlapped);
}
