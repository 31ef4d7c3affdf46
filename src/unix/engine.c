/* Completion emulation over a readiness poller: the Unix side of backend.h. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "engine.h"

void proa__io_init(proa__io *io, int fd, proa__io_fn cb) {
  memset(io, 0, sizeof *io);
  io->fd = fd;
  io->cb = cb;
  io->poll_index = -1;
}

int proa__io_watch(proa__backend *be, proa__io *io, unsigned events) {
  unsigned old = io->events;
  int err;
  if (old == events)
    return 0;
  io->be = be;
  io->events = events;
  err = be->poller->update(be, io, old);
  if (err) {
    io->events = old;
    return err;
  }
  /* Events no longer watched must not be dispatched from this batch. */
  io->revents &= events;
  if (!io->revents)
    proa__list_remove(&be->pending, &io->pending);
  return 0;
}

void proa__engine_event(proa__backend *be, proa__io *io, unsigned events) {
  events &= io->events;
  if (!events)
    return;
  io->revents |= events;
  if (!proa__list_linked(&be->pending, &io->pending))
    proa__list_push(&be->pending, &io->pending);
}

/* Callbacks may unwatch any io, so each is unlinked before it runs. */
static void dispatch_io(proa__backend *be) {
  while (!proa__list_empty(&be->pending)) {
    proa__io *io = PROA__CONTAINER(be->pending.head, proa__io, pending);
    unsigned events = io->revents;
    io->revents = 0;
    proa__list_remove(&be->pending, &io->pending);
    io->cb(io, events);
  }
}

/*
 * Completions posted while these run (an accept that found the next
 * connection waiting, say) are delivered in the same poll, for a bounded
 * number of rounds, rather than costing a loop iteration each.
 */
#define POSTED_ROUNDS 64

static void dispatch_posted(proa__backend *be) {
  int round;
  for (round = 0; round < POSTED_ROUNDS && be->done_head; round++) {
    proa__op *op = be->done_head;
    be->done_head = be->done_tail = NULL;
    while (op) {
      proa__op *next = op->next;
      be->inflight--;
      op->complete(op);
      op = next;
    }
  }
}

/* ---- wake-up ---- */

static void drain_fd(int fd) {
  char buf[256];
  ssize_t n;
  do
    n = read(fd, buf, sizeof buf);
  while (n == (ssize_t)sizeof buf || (n < 0 && errno == EINTR));
}

static void on_wake(proa__io *io, unsigned events) {
  (void)events;
  drain_fd(io->fd);
}

static int wake_open(proa__backend *be) {
  int fds[2], err;
#ifdef __linux__
  if (be->poller->eventfd_wakeup) {
    fds[0] = fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fds[0] < 0)
      return proa__translate_errno(errno);
  } else
#endif
  {
    err = proa__make_pipe(fds);
    if (err)
      return err;
  }
  proa__io_init(&be->wake_io, fds[0], on_wake);
  be->wake_write_fd = fds[1];
  return proa__io_watch(be, &be->wake_io, PROA__IO_READ);
}

static void engine_wakeup(proa__backend *be) {
  uint64_t one = 1; /* eventfd wants 8 bytes; a pipe takes the first one */
  ssize_t n;
  size_t len = be->wake_write_fd == be->wake_io.fd ? sizeof one : 1;
  do
    n = write(be->wake_write_fd, &one, len);
  while (n < 0 && errno == EINTR);
  /* EAGAIN: the pipe is full, so a wake-up is already pending. */
}

/* ---- signals ---- */

static void on_signal_pipe(proa__io *io, unsigned events) {
  unsigned char sigs[64];
  ssize_t i, n;
  (void)events;
  for (;;) {
    n = read(io->fd, sigs, sizeof sigs);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    for (i = 0; i < n; i++)
      proa__loop_on_signal(io->be->loop, sigs[i]);
  }
}

static int signal_pipe_open(proa__backend *be) {
  int fds[2], err;
  if (be->signal_write_fd >= 0)
    return 0;
  err = proa__make_pipe(fds);
  if (err)
    return err;
  proa__io_init(&be->signal_io, fds[0], on_signal_pipe);
  be->signal_write_fd = fds[1];
  err = proa__io_watch(be, &be->signal_io, PROA__IO_READ);
  if (err) {
    close(fds[0]);
    close(fds[1]);
    be->signal_write_fd = -1;
    be->signal_io.fd = -1; /* or close_io would close it again */
  }
  return err;
}

static int engine_signal_start(proa__backend *be, int signum) {
  int err = signal_pipe_open(be);
  return err ? err : proa__signal_claim(signum, be->signal_write_fd);
}

static void engine_signal_stop(proa__backend *be, int signum) {
  proa__signal_release(signum, be->signal_write_fd);
}

/* ---- the backend ---- */

static int engine_init(proa_loop *loop, const proa__backend_ops *ops,
                       const proa__poller *poller, proa__backend **out) {
  proa__backend *be;
  int err;
  *out = NULL;
  be = calloc(1, sizeof *be);
  if (!be)
    return PROA_ENOMEM;
  be->ops = ops;
  be->loop = loop;
  be->poller = poller;
  be->wake_write_fd = -1;
  be->signal_write_fd = -1;
  proa__io_init(&be->wake_io, -1, on_wake);
  proa__io_init(&be->signal_io, -1, on_signal_pipe);
  err = poller->init(be);
  if (err) {
    free(be);
    return err;
  }
  err = wake_open(be);
  if (err) {
    be->ops->free(be);
    return err;
  }
  *out = be;
  return 0;
}

static void close_io(proa__backend *be, proa__io *io, int write_fd) {
  if (io->fd < 0)
    return;
  proa__io_watch(be, io, 0);
  if (write_fd >= 0 && write_fd != io->fd)
    close(write_fd);
  close(io->fd);
  io->fd = -1;
}

static void engine_free(proa__backend *be) {
  if (!be)
    return;
  PROA_ASSERT(be->inflight == 0, "the backend is freed with nothing in flight");
  close_io(be, &be->signal_io, be->signal_write_fd);
  close_io(be, &be->wake_io, be->wake_write_fd);
  be->poller->free(be);
  free(be->lend_buf);
  free(be);
}

static size_t engine_inflight(const proa__backend *be) { return be->inflight; }

void proa__engine_post(proa__backend *be, proa__op *op) {
  op->next = NULL;
  if (be->done_tail)
    be->done_tail->next = op;
  else
    be->done_head = op;
  be->done_tail = op;
}

static int engine_poll(proa__backend *be, int64_t timeout_ms) {
  int timeout, err;
  if (be->done_head)
    timeout = 0; /* completions are waiting: just look for more */
  else if (timeout_ms < 0)
    timeout = -1;
  else
    timeout = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
  err = be->poller->wait(be, timeout);
  if (err)
    return err;
  dispatch_io(be);
  dispatch_posted(be);
  return 0;
}

/* ---- the tables: one per poller, the same engine beneath ---- */

#define ENGINE_OPS(init_fn)                                                    \
  .init = init_fn, .free = engine_free, .poll = engine_poll,                   \
  .wakeup = engine_wakeup, .inflight = engine_inflight,                        \
  .signal_start = engine_signal_start, .signal_stop = engine_signal_stop,      \
  .socket_open = proa__engine_socket_open, .adopt = proa__engine_adopt,        \
  .close = proa__engine_close, .detach = proa__engine_detach,                  \
  .read = proa__engine_read, .write = proa__engine_write,                      \
  .wait_readable = proa__engine_wait_readable,                                 \
  .wait_writable = proa__engine_wait_writable,                                 \
  .wait_peer_closed = proa__engine_wait_peer_closed,                           \
  .cancel = proa__engine_cancel, .try_write = proa__engine_try_write,          \
  .connect = proa__engine_connect, .accept = proa__engine_accept,              \
  .accept_max = 1, .try_recvfrom = proa__engine_try_recvfrom,                  \
  .try_sendto = proa__engine_try_sendto, .sendto = proa__engine_sendto,        \
  .shutdown_write = proa__engine_shutdown_write

#ifdef __linux__
static const proa__backend_ops epoll_ops;
static int epoll_init(proa_loop *loop, proa__backend **out) {
  return engine_init(loop, &epoll_ops, &proa__poller_epoll, out);
}
static const proa__backend_ops epoll_ops = {.name = "epoll",
                                            ENGINE_OPS(epoll_init)};
#endif

static const proa__backend_ops poll_ops;
static int poll_init(proa_loop *loop, proa__backend **out) {
  return engine_init(loop, &poll_ops, &proa__poller_poll, out);
}
static const proa__backend_ops poll_ops = {.name = "poll",
                                           ENGINE_OPS(poll_init)};

const proa__backend_ops *const proa__backends[] = {
#ifdef __linux__
    &epoll_ops,
#endif
    &poll_ops, NULL};
