/* Socket operations for the Unix engine: performed when the fd is ready. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "sockets.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

struct proa__socket {
  proa__io io;
  proa__op *read_op;          /* wait_readable, or &accept_op->op */
  proa__accept_op *accept_op; /* set while the read op is an accept */
  proa__op *write_op;         /* send, sendto or connect */
  enum { WRITE_SEND, WRITE_SENDTO, WRITE_CONNECT } write_kind;
  bool dispatching; /* on_ready is running: close must not free yet */
  bool closed;
  size_t nbufs;
  const proa_buf *bufs; /* the send op's, valid until it completes */
  const void *dgram;    /* the sendto op's datagram and address */
  size_t dgram_len;
  const proa_sockaddr *dgram_to;
};

int proa__translate_socket_error(int err) { return proa__translate_errno(err); }

static void on_ready(proa__io *io, unsigned events);

static int wrap(proa__backend *be, int fd, proa__socket **out) {
  proa__socket *s = calloc(1, sizeof *s);
  if (!s)
    return PROA_ENOMEM;
  proa__io_init(&s->io, fd, on_ready);
  s->io.be = be;
#ifdef SO_NOSIGPIPE
  {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  }
#endif
  *out = s;
  return 0;
}

int proa__socket_open(proa__backend *be, int family, int type, int protocol,
                      proa__socket **out) {
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
  err = wrap(be, fd, out);
  if (err)
    close(fd);
  return err;
}

int proa__socket_adopt(proa__backend *be, intptr_t fd, proa__socket **out) {
  int err;
  if (fd < 0 || fd > INT32_MAX)
    return PROA_EBADF;
  err = proa__set_nonblock_cloexec((int)fd);
  return err ? err : wrap(be, (int)fd, out);
}

void proa__socket_close(proa__socket *s) {
  proa__io_watch(s->io.be, &s->io, 0);
  close(s->io.fd);
  s->io.fd = -1;
  if (s->dispatching)
    s->closed = true; /* a completion closed it: on_ready frees it */
  else
    free(s);
}

intptr_t proa__socket_fd(const proa__socket *s) { return s->io.fd; }

intptr_t proa__socket_try_recv(proa__socket *s, void *buf, size_t len) {
  ssize_t n;
  do
    n = recv(s->io.fd, buf, len, 0);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return n;
  return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
}

static intptr_t send_bufs(int fd, const proa_buf *bufs, size_t count) {
  struct iovec iov[PROA__MAX_SEND_BUFS];
  struct msghdr msg;
  ssize_t n;
  size_t i;
  if (count == 1) { /* the common case needs no iovec */
    do
      n = send(fd, bufs[0].base, bufs[0].len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
      return n;
    return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
  }
  if (count > PROA__MAX_SEND_BUFS)
    count = PROA__MAX_SEND_BUFS;
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
  if (n >= 0)
    return n;
  return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
}

intptr_t proa__socket_try_send(proa__socket *s, const proa_buf *bufs,
                               size_t count) {
  return send_bufs(s->io.fd, bufs, count);
}

/* Completes `op` from the next poll (submission errors, fast paths). */
static void post(proa__socket *s, proa__op *op, intptr_t result) {
  op->result = result;
  proa__backend_post(s->io.be, op);
}

/* Adds `events` to what the fd is watched for; reports failure via op. */
static bool watch(proa__socket *s, proa__op *op, unsigned events) {
  int err = proa__io_watch(s->io.be, &s->io, s->io.events | events);
  if (err)
    post(s, op, err);
  return err == 0;
}

void proa__socket_wait_readable(proa__socket *s, proa__op *op) {
  if (watch(s, op, PROA__IO_READ))
    s->read_op = op;
}

void proa__socket_send(proa__socket *s, proa__op *op, const proa_buf *bufs,
                       size_t count) {
  s->bufs = bufs;
  s->nbufs = count;
  s->write_kind = WRITE_SEND;
  if (watch(s, op, PROA__IO_WRITE))
    s->write_op = op;
}

void proa__socket_connect(proa__socket *s, proa__op *op,
                          const proa_sockaddr *addr) {
  int rc;
  if (!addr) {
    post(s, op, PROA_EINVAL);
    return;
  }
  do
    rc = connect(s->io.fd, (const struct sockaddr *)(const void *)addr->storage,
                 (socklen_t)addr->len);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    post(s, op, 0);
    return;
  }
  if (errno != EINPROGRESS) {
    post(s, op, proa__translate_errno(errno));
    return;
  }
  s->write_kind = WRITE_CONNECT;
  if (watch(s, op, PROA__IO_WRITE))
    s->write_op = op;
}

/* One accept(2): 0 with op->accepted set, PROA_EAGAIN, or the error. */
static int accept_one(proa__socket *s, proa__accept_op *op) {
  int fd, err;
#ifdef SOCK_NONBLOCK
  do
    fd = accept4(s->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
#else
  do
    fd = accept(s->io.fd, NULL, NULL);
  while (fd < 0 && errno == EINTR);
  if (fd >= 0 && (err = proa__set_nonblock_cloexec(fd)) != 0) {
    close(fd);
    return err;
  }
#endif
  if (fd < 0)
    return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
  err = wrap(s->io.be, fd, &op->accepted);
  if (err)
    close(fd);
  return err;
}

intptr_t proa__socket_try_recvfrom(proa__socket *s, void *buf, size_t len,
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
    n = recvmsg(s->io.fd, &msg, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
  if (from)
    from->len = (int)msg.msg_namelen;
  return (msg.msg_flags & MSG_TRUNC) ? PROA_EMSGSIZE : n;
}

intptr_t proa__socket_try_sendto(proa__socket *s, const void *buf, size_t len,
                                 const proa_sockaddr *to) {
  ssize_t n;
  do
    n = sendto(s->io.fd, buf, len, MSG_NOSIGNAL,
               to ? (const struct sockaddr *)(const void *)to->storage : NULL,
               to ? (socklen_t)to->len : 0);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return n;
  return errno == EWOULDBLOCK ? PROA_EAGAIN : proa__translate_errno(errno);
}

void proa__socket_sendto(proa__socket *s, proa__op *op, const void *buf,
                         size_t len, const proa_sockaddr *to) {
  s->dgram = buf;
  s->dgram_len = len;
  s->dgram_to = to;
  s->write_kind = WRITE_SENDTO;
  if (watch(s, op, PROA__IO_WRITE))
    s->write_op = op;
}

/* One emulated accept at a time; it accepts again while it can. */
int proa__accept_ops_max(void) { return 1; }

void proa__socket_accept(proa__socket *s, proa__accept_op *op) {
  int err;
  op->accepted = NULL;
  err = accept_one(s, op); /* the fast path: a connection may be waiting */
  if (err != PROA_EAGAIN) {
    post(s, &op->op, err);
    return;
  }
  if (watch(s, &op->op, PROA__IO_READ)) {
    s->read_op = &op->op;
    s->accept_op = op;
  }
}

void proa__socket_cancel(proa__socket *s, proa__op *op) {
  if (op == s->read_op) {
    s->read_op = NULL;
    s->accept_op = NULL;
  } else if (op == s->write_op) {
    s->write_op = NULL;
  } else {
    return;
  }
  /* Interest in the fd is dropped lazily, by on_ready. */
  post(s, op, PROA_ECANCELED);
}

/* The read side is ready: finish the read op, if it can finish now. */
static void read_ready(proa__socket *s) {
  proa__op *op = s->read_op;
  intptr_t result = 0;
  if (s->accept_op) {
    result = accept_one(s, s->accept_op);
    if (result == PROA_EAGAIN)
      return; /* another process or thread took it */
  }
  s->read_op = NULL;
  s->accept_op = NULL;
  op->result = result;
  op->complete(op);
}

/* The outcome of a non-blocking connect, once the fd is writable. */
static int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  return proa__translate_errno(err);
}

static void write_ready(proa__socket *s) {
  proa__op *op = s->write_op;
  bool connect = s->write_kind == WRITE_CONNECT;
  intptr_t result;
  if (s->write_kind == WRITE_CONNECT)
    result = connect_result(s->io.fd);
  else if (s->write_kind == WRITE_SENDTO)
    result = proa__socket_try_sendto(s, s->dgram, s->dgram_len, s->dgram_to);
  else
    result = send_bufs(s->io.fd, s->bufs, s->nbufs);
  if (result == PROA_EAGAIN)
    return;
  s->write_op = NULL;
  op->result = result;
  op->complete(op);
  /* After a connect, writes usually succeed at once: stop watching for
   * writability now rather than after a spurious wake-up. */
  if (connect && !s->closed && !s->write_op)
    proa__io_watch(s->io.be, &s->io, s->io.events & ~PROA__IO_WRITE);
}

/*
 * Interest stays registered after an op completes, because the next op on
 * the same side usually follows at once; it is dropped here, when the fd
 * turns out ready with no op waiting. That keeps epoll_ctl off the hot path.
 */
static void on_ready(proa__io *io, unsigned events) {
  proa__socket *s = (proa__socket *)(void *)io;
  unsigned idle = 0;
  s->dispatching = true;
  if (events & PROA__IO_WRITE) {
    if (s->write_op)
      write_ready(s);
    else
      idle |= PROA__IO_WRITE;
  }
  if ((events & PROA__IO_READ) && !s->closed) {
    if (s->read_op)
      read_ready(s);
    else
      idle |= PROA__IO_READ;
  }
  s->dispatching = false;
  if (s->closed) {
    free(s);
    return;
  }
  /* A completion above may have submitted a new op; keep what it needs. */
  if (s->read_op)
    idle &= ~PROA__IO_READ;
  if (s->write_op)
    idle &= ~PROA__IO_WRITE;
  if (idle)
    proa__io_watch(io->be, io, io->events & ~idle);
}
