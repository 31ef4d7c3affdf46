/* Handle operations for the Unix engine: performed when the fd is ready. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "sockets.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

/* Reads one readiness may do on one handle before others get a turn. */
#define READS_PER_WAKE 16
/* What the engine lends to reads that bring no buffer. */
#define LEND_SIZE 65536

enum read_kind { READ_WAIT, READ_DATA, READ_ACCEPT };
enum write_kind { WRITE_WAIT, WRITE_DATA, WRITE_SENDTO, WRITE_CONNECT };

typedef struct uhandle {
  proa__ioh h; /* first: what the code above sees */
  proa__io io;
  proa__op *read_op;  /* in flight on the read side, or NULL */
  proa__op *write_op; /* in flight on the write side, or NULL */
  unsigned char read_kind, write_kind;
  bool dispatching; /* on_ready is running: close must not free yet */
  bool closed;
  bool fifo;         /* a pipe or a FIFO: its write end can watch its reader */
  bool always_ready; /* the poller cannot watch it: performed at once */
  int adopted_fl;    /* adopted: the F_GETFL and F_GETFD flags, for detach */
  int adopted_fd;    /* (-1: made here, nothing to restore) */
} uhandle;

static uhandle *of_ioh(proa__ioh *h) { return (uhandle *)(void *)h; }

static uhandle *of_io(proa__io *io) {
  return (uhandle *)(void *)((char *)io - offsetof(uhandle, io));
}

int proa__translate_socket_error(int err) { return proa__translate_errno(err); }

/* errno after a failed non-blocking call. ENOBUFS on a send is a full
 * buffer (Linux, BSD), to be retried like EAGAIN; EPROTOTYPE from a send
 * on macOS is a peer that reset while the socket was being torn down. */
static intptr_t nb_error(void) {
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return PROA_EAGAIN;
  return proa__translate_errno(errno);
}

#ifndef NDEBUG
int proa__fault_send_errno;
#endif

/* Debug builds let a test make the next send fail with a chosen errno. */
static bool send_fault(void) {
#ifndef NDEBUG
  if (proa__fault_send_errno) {
    errno = proa__fault_send_errno;
    proa__fault_send_errno = 0;
    return true;
  }
#endif
  return false;
}

static intptr_t send_error(void) {
  if (errno == ENOBUFS)
    return PROA_EAGAIN;
#ifdef __APPLE__
  if (errno == EPROTOTYPE)
    return PROA_ECONNRESET;
#endif
  return nb_error();
}

/* ---- creating and closing ---- */

static void on_ready(proa__io *io, unsigned events);

static int kind_of(int fd, bool *fifo) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return proa__translate_errno(errno);
  *fifo = S_ISFIFO(st.st_mode);
  if (S_ISSOCK(st.st_mode))
    return PROA__IOH_SOCKET;
  if (S_ISREG(st.st_mode))
    return PROA__IOH_FILE;
  return PROA__IOH_PIPE; /* FIFOs, character devices, ... */
}

static void handle_free(uhandle *u) {
  proa__handles_count(-1);
  free(u);
}

static int wrap(proa__backend *be, int fd, int kind, proa__ioh **out) {
  uhandle *u = calloc(1, sizeof *u);
  if (!u)
    return PROA_ENOMEM;
  u->h.ops = be->ops;
  u->h.os = fd;
  u->h.kind = (unsigned char)kind;
  u->always_ready = kind == PROA__IOH_FILE;
  u->adopted_fl = u->adopted_fd = -1;
  proa__handles_count(1);
  proa__io_init(&u->io, fd, on_ready);
  u->io.be = be;
#ifdef SO_NOSIGPIPE
  if (kind == PROA__IOH_SOCKET) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  }
#endif
#ifdef F_SETNOSIGPIPE
  if (kind != PROA__IOH_SOCKET)
    fcntl(fd, F_SETNOSIGPIPE, 1); /* macOS: see write_nosigpipe */
#endif
  *out = &u->h;
  return 0;
}

int proa__engine_socket_open(proa__backend *be, int family, int type,
                             int protocol, proa__ioh **out) {
  int os_family = proa__os_family(family);
  int os_type = proa__os_socktype(type);
  int fd, err;
  if (os_family == AF_UNSPEC || os_type == 0)
    return PROA_EINVAL;
#ifdef SOCK_NONBLOCK
  fd = socket(os_family, os_type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
#else
  fd = socket(os_family, os_type, protocol);
#endif
  if (fd < 0)
    return proa__translate_errno(errno);
#ifndef SOCK_NONBLOCK
  err = proa__set_nonblock_cloexec(fd);
  if (err) {
    close(fd);
    return err;
  }
#endif
  err = wrap(be, fd, PROA__IOH_SOCKET, out);
  if (err)
    close(fd);
  return err;
}

int proa__engine_adopt(proa__backend *be, intptr_t os, proa__ioh **out) {
  int fd = (int)os, kind, fl, fdfl, err;
  bool fifo = false;
  if (os < 0 || os > INT32_MAX)
    return PROA_EBADF;
  kind = kind_of(fd, &fifo);
  if (kind < 0)
    return kind;
  /* Kept for detach, which hands the fd back as it came (stdin's
   * O_NONBLOCK is shared with every process that has it). */
  fl = fcntl(fd, F_GETFL);
  fdfl = fcntl(fd, F_GETFD);
  /* Regular files are always ready: their reads never block anyway. */
  err = kind == PROA__IOH_FILE ? 0 : proa__set_nonblock_cloexec(fd);
  if (!err)
    err = wrap(be, fd, kind, out);
  if (err) { /* refused: the fd goes back as it came */
    if (fl >= 0)
      fcntl(fd, F_SETFL, fl);
    if (fdfl >= 0)
      fcntl(fd, F_SETFD, fdfl);
    return err;
  }
  of_ioh(*out)->fifo = fifo;
  of_ioh(*out)->adopted_fl = fl;
  of_ioh(*out)->adopted_fd = fdfl;
  return 0;
}

static void release(uhandle *u, bool close_fd) {
  /* A cancel takes the op off the handle at once (its completion is
   * queued), so this is the whole check. */
  PROA_ASSERT(
      !u->read_op && !u->write_op,
      "a handle is closed only once its ops completed or were cancelled");
  proa__io_watch(u->io.be, &u->io, 0);
  if (close_fd)
    close(u->io.fd);
  u->io.fd = -1;
  u->h.os = -1;
  if (u->dispatching)
    u->closed = true; /* a completion closed it: on_ready frees it */
  else
    handle_free(u);
}

void proa__engine_close(proa__ioh *h) { release(of_ioh(h), true); }

void proa__engine_detach(proa__ioh *h) {
  uhandle *u = of_ioh(h);
  if (u->adopted_fl >= 0)
    fcntl(u->io.fd, F_SETFL, u->adopted_fl);
  if (u->adopted_fd >= 0)
    fcntl(u->io.fd, F_SETFD, u->adopted_fd);
  release(u, false);
}

/* ---- the system calls ---- */

/*
 * A write to a pipe whose reader is gone raises SIGPIPE, and pipes have no
 * MSG_NOSIGNAL. Where the OS has F_SETNOSIGPIPE (macOS), wrap sets it.
 * Elsewhere the signal is blocked in this thread around the write (a
 * SIGPIPE goes to the thread that wrote) and, if this write raised it,
 * taken back with sigtimedwait before the mask is restored: the process's
 * disposition is never changed, so children do not inherit an ignored
 * SIGPIPE as they would from the SIG_IGN that libuv and Python set.
 */
static ssize_t write_nosigpipe(int fd, const struct iovec *iov, int count) {
  ssize_t n;
#ifndef F_SETNOSIGPIPE
  sigset_t pipe_set, old, pending;
  bool was_pending;
  int saved;
  struct timespec zero = {0, 0};
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
#endif
  do
    n = writev(fd, iov, count);
  while (n < 0 && errno == EINTR);
#ifndef F_SETNOSIGPIPE
  saved = errno;
  if (n < 0 && saved == EPIPE && !was_pending)
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
      ;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
#endif
  return n;
}

static intptr_t write_bufs(uhandle *u, const proa_buf *bufs, size_t count) {
  struct iovec iov[PROA__MAX_SEND_BUFS];
  struct msghdr msg;
  int fd = u->io.fd;
  ssize_t n;
  size_t i;
  if (count > PROA__MAX_SEND_BUFS)
    count = PROA__MAX_SEND_BUFS;
  if (send_fault())
    return send_error();
  if (u->h.kind != PROA__IOH_SOCKET) {
    for (i = 0; i < count; i++) {
      iov[i].iov_base = (void *)(uintptr_t)bufs[i].base;
      iov[i].iov_len = bufs[i].len;
    }
    n = write_nosigpipe(fd, iov, (int)count);
    return n >= 0 ? n : send_error();
  }
  if (count == 1) { /* the common case needs no iovec */
    do
      n = send(fd, bufs[0].base, bufs[0].len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n >= 0 ? n : send_error();
  }
  for (i = 0; i < count; i++) {
    iov[i].iov_base = (void *)(uintptr_t)bufs[i].base;
    iov[i].iov_len = bufs[i].len;
  }
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  do
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n >= 0 ? n : send_error();
}

/* Sockets only: what a pipe's write_eof means is its transport's to say
 * (closing the write end, say). */
int proa__engine_shutdown_write(proa__ioh *h) {
  return h->kind == PROA__IOH_SOCKET ? proa__socket_shutdown_write(h)
                                     : PROA_ENOTSUP;
}

intptr_t proa__engine_try_write(proa__ioh *h, const proa_buf *bufs,
                                size_t count) {
  ssize_t n;
  if (count == 1 && h->kind == PROA__IOH_SOCKET) { /* the hot path */
    if (send_fault())
      return send_error();
    do
      n = send((int)h->os, bufs[0].base, bufs[0].len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n >= 0 ? n : send_error();
  }
  return count ? write_bufs(of_ioh(h), bufs, count) : 0;
}

/* One read: the bytes, 0 at the end, PROA_EAGAIN, or the error; *full
 * says whether it filled the buffer (more may be waiting). */
static intptr_t do_read(uhandle *u, proa__read_op *op, bool *full) {
  size_t len = 0;
  void *buf = proa__read_target(op, &u->io.be->lend_buf, LEND_SIZE, &len);
  ssize_t n;
  *full = false;
  if (!buf)
    return PROA__READ_TARGET_ERROR(op);
  do
    n = u->h.kind == PROA__IOH_SOCKET ? recv(u->io.fd, buf, len, 0)
                                      : read(u->io.fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return nb_error();
  op->data = buf;
  *full = (size_t)n == len;
  return n;
}

/* One accept(2): 0 with op->accepted set, PROA_EAGAIN, or the error. */
static int accept_one(uhandle *u, proa__accept_op *op) {
  int fd, err;
#ifdef SOCK_NONBLOCK
  do
    fd = accept4(u->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
#else
  do
    fd = accept(u->io.fd, NULL, NULL);
  while (fd < 0 && errno == EINTR);
  if (fd >= 0 && (err = proa__set_nonblock_cloexec(fd)) != 0) {
    close(fd);
    return err;
  }
#endif
  if (fd < 0)
    return (int)nb_error();
  err = wrap(u->io.be, fd, PROA__IOH_SOCKET, &op->accepted);
  if (err)
    close(fd);
  return err;
}

intptr_t proa__engine_try_recvfrom(proa__ioh *h, void *buf, size_t len,
                                   proa_sockaddr *from) {
  struct iovec iov;
  struct msghdr msg;
  ssize_t n;
  iov.iov_base = buf;
  iov.iov_len = len;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = from ? (void *)from->storage : NULL;
  msg.msg_namelen = from ? (socklen_t)sizeof from->storage : 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  do
    n = recvmsg((int)h->os, &msg, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return nb_error();
  if (from)
    from->len = (int)msg.msg_namelen;
  return (msg.msg_flags & MSG_TRUNC) ? PROA_EMSGSIZE : n;
}

intptr_t proa__engine_try_sendto(proa__ioh *h, const void *buf, size_t len,
                                 const proa_sockaddr *to) {
  ssize_t n;
  do
    n = sendto((int)h->os, buf, len, MSG_NOSIGNAL,
               to ? (const struct sockaddr *)(const void *)to->storage : NULL,
               to ? (socklen_t)to->len : 0);
  while (n < 0 && errno == EINTR);
  return n >= 0 ? n : send_error();
}

/* The outcome of a non-blocking connect, once the fd is writable. */
static int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  return proa__translate_errno(err);
}

/* ---- submitting ---- */

/* Completes `op` from the next poll (refusals, errors, fast paths). */
static void post(uhandle *u, proa__op *op, intptr_t result) {
  op->result = result;
  proa__engine_post(u->io.be, op);
}

/* Takes `op` on one side of `u`: false (and a PROA_EBUSY completion, never
 * the first op orphaned) if that side is busy, or watching fails. */
static bool begin(uhandle *u, proa__op **slot, proa__op *op, unsigned events) {
  int err;
  u->io.be->inflight++; /* until its completion is delivered */
  PROA_ASSERT(*slot == NULL, "one operation per direction per handle");
  if (*slot) {
    post(u, op, PROA_EBUSY);
    return false;
  }
  if (u->always_ready)
    return true; /* performed by the caller at once */
  /* Interest usually stays registered from the previous op (on_ready). */
  if ((u->io.events & events) != events) {
    err = proa__io_watch(u->io.be, &u->io, u->io.events | events);
    /* epoll refuses what cannot block (/dev/null, say) with EPERM. */
    if (err == PROA_EPERM && u->h.kind != PROA__IOH_SOCKET) {
      u->always_ready = true;
      return true;
    }
    if (err) {
      post(u, op, err);
      return false;
    }
  }
  *slot = op;
  return true;
}

static bool begin_read(uhandle *u, proa__op *op, enum read_kind kind) {
  if (!begin(u, &u->read_op, op, PROA__IO_READ))
    return false;
  u->read_kind = (unsigned char)kind;
  return true;
}

static bool begin_write(uhandle *u, proa__op *op, enum write_kind kind) {
  if (!begin(u, &u->write_op, op, PROA__IO_WRITE))
    return false;
  u->write_kind = (unsigned char)kind;
  return true;
}

void proa__engine_read(proa__ioh *h, proa__read_op *op) {
  uhandle *u = of_ioh(h);
  bool full;
  if (begin_read(u, &op->op, READ_DATA) && u->always_ready)
    post(u, &op->op, do_read(u, op, &full));
}

void proa__engine_wait_readable(proa__ioh *h, proa__op *op) {
  uhandle *u = of_ioh(h);
  if (begin_read(u, op, READ_WAIT) && u->always_ready)
    post(u, op, 0);
}

/* The write end of a pipe reports an error (EPOLLERR, POLLERR) once its
 * reader has gone, and is never readable otherwise: a read-side wait is
 * the watch. A terminal's "readable" would be a key pressed instead. */
void proa__engine_wait_peer_closed(proa__ioh *h, proa__op *op) {
  uhandle *u = of_ioh(h);
  if (!u->fifo) {
    u->io.be->inflight++;
    post(u, op, PROA_ENOTSUP);
    return;
  }
  if (begin_read(u, op, READ_WAIT) && u->always_ready)
    post(u, op, PROA_ENOTSUP); /* unwatchable after all */
}

void proa__engine_write(proa__ioh *h, proa__write_op *op) {
  uhandle *u = of_ioh(h);
  if (!op->bufs || !op->count) {
    u->io.be->inflight++;
    post(u, &op->op, PROA_EINVAL);
    return;
  }
  if (begin_write(u, &op->op, WRITE_DATA) && u->always_ready)
    post(u, &op->op, write_bufs(u, op->bufs, op->count));
}

void proa__engine_wait_writable(proa__ioh *h, proa__op *op) {
  uhandle *u = of_ioh(h);
  if (begin_write(u, op, WRITE_WAIT) && u->always_ready)
    post(u, op, 0);
}

void proa__engine_sendto(proa__ioh *h, proa__sendto_op *op) {
  begin_write(of_ioh(h), &op->op, WRITE_SENDTO);
}

void proa__engine_connect(proa__ioh *h, proa__op *op,
                          const proa_sockaddr *addr) {
  uhandle *u = of_ioh(h);
  int rc;
  if (!addr || h->kind != PROA__IOH_SOCKET) {
    u->io.be->inflight++;
    post(u, op, addr ? PROA_ENOTSOCK : PROA_EINVAL);
    return;
  }
  do
    rc = connect(u->io.fd, (const struct sockaddr *)(const void *)addr->storage,
                 (socklen_t)addr->len);
  while (rc != 0 && errno == EINTR);
  if (rc == 0 || errno != EINPROGRESS) {
    u->io.be->inflight++;
    post(u, op, rc == 0 ? 0 : proa__translate_errno(errno));
    return;
  }
  begin_write(u, op, WRITE_CONNECT);
}

void proa__engine_accept(proa__ioh *h, proa__accept_op *op) {
  uhandle *u = of_ioh(h);
  int err;
  op->accepted = NULL;
  if (u->read_op == NULL) {
    err = accept_one(u, op); /* the fast path: one may be waiting */
    if (err != PROA_EAGAIN) {
      u->io.be->inflight++;
      post(u, &op->op, err);
      return;
    }
  }
  begin_read(u, &op->op, READ_ACCEPT);
}

void proa__engine_cancel(proa__ioh *h, proa__op *op) {
  uhandle *u = of_ioh(h);
  if (op == u->read_op)
    u->read_op = NULL;
  else if (op == u->write_op)
    u->write_op = NULL;
  else
    return;
  /* Interest in the fd is dropped lazily, by on_ready. */
  post(u, op, PROA_ECANCELED);
}

/* ---- readiness ---- */

static void complete(uhandle *u, proa__op *op, intptr_t result) {
  u->io.be->inflight--;
  op->result = result;
  op->complete(op);
}

/* The read side is ready: finish the read op, and go on reading while the
 * completion asks for more and the last read filled its buffer. */
static void read_ready(uhandle *u) {
  int i;
  for (i = 0; i < READS_PER_WAKE && u->read_op && !u->closed; i++) {
    proa__op *op = u->read_op;
    unsigned kind = u->read_kind;
    bool full = false;
    intptr_t result = 0;
    if (kind == READ_ACCEPT)
      result = accept_one(u, (proa__accept_op *)(void *)op);
    else if (kind == READ_DATA)
      result = do_read(u, (proa__read_op *)(void *)op, &full);
    if (result == PROA_EAGAIN)
      return; /* spurious, or another process took it */
    u->read_op = NULL;
    complete(u, op, result);
    if (!full)
      return; /* most likely drained; readiness says if not */
  }
}

static void write_ready(uhandle *u) {
  proa__op *op = u->write_op;
  unsigned kind = u->write_kind;
  intptr_t result = 0;
  if (kind == WRITE_CONNECT) {
    result = connect_result(u->io.fd);
  } else if (kind == WRITE_SENDTO) {
    proa__sendto_op *d = (proa__sendto_op *)(void *)op;
    result = proa__engine_try_sendto(&u->h, d->buf, d->len, d->to);
  } else if (kind == WRITE_DATA) {
    proa__write_op *w = (proa__write_op *)(void *)op;
    result = write_bufs(u, w->bufs, w->count);
  }
  if (result == PROA_EAGAIN)
    return;
  u->write_op = NULL;
  complete(u, op, result);
  /* After a connect, writes usually succeed at once: stop watching for
   * writability now rather than after a spurious wake-up. */
  if (kind == WRITE_CONNECT && !u->closed && !u->write_op)
    proa__io_watch(u->io.be, &u->io, u->io.events & ~PROA__IO_WRITE);
}

/*
 * Interest stays registered after an op completes, because the next op on
 * the same side usually follows at once; it is dropped here, when the fd
 * turns out ready with no op waiting. That keeps epoll_ctl off the hot path.
 */
static void on_ready(proa__io *io, unsigned events) {
  uhandle *u = of_io(io);
  unsigned idle = 0;
  u->dispatching = true;
  if (events & PROA__IO_WRITE) {
    if (u->write_op)
      write_ready(u);
    else
      idle |= PROA__IO_WRITE;
  }
  if ((events & PROA__IO_READ) && !u->closed) {
    if (u->read_op)
      read_ready(u);
    else
      idle |= PROA__IO_READ;
  }
  u->dispatching = false;
  if (u->closed) {
    handle_free(u);
    return;
  }
  /* A completion above may have submitted a new op; keep what it needs. */
  if (u->read_op)
    idle &= ~PROA__IO_READ;
  if (u->write_op)
    idle &= ~PROA__IO_WRITE;
  if (idle)
    proa__io_watch(io->be, io, io->events & ~idle);
}
