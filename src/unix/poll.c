/* The poll(2) poller: portable to every Unix, O(n) per wait. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "engine.h"

typedef struct poll_state {
  struct pollfd *fds;
  proa__io **ios; /* ios[i] watches fds[i] */
  int n, cap;
} poll_state;

static int poll_init(proa__backend *be) {
  poll_state *st = calloc(1, sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  be->poller_data = st;
  return 0;
}

static void poll_free(proa__backend *be) {
  poll_state *st = be->poller_data;
  free(st->fds);
  free(st->ios);
  free(st);
}

static short poll_mask(unsigned events) {
  return (short)(((events & PROA__IO_READ) ? POLLIN : 0) |
                 ((events & PROA__IO_WRITE) ? POLLOUT : 0));
}

static int grow(poll_state *st) {
  int cap = st->cap ? st->cap * 2 : 16;
  struct pollfd *fds = realloc(st->fds, (size_t)cap * sizeof *fds);
  proa__io **ios;
  if (!fds)
    return PROA_ENOMEM;
  st->fds = fds;
  ios = realloc(st->ios, (size_t)cap * sizeof *ios);
  if (!ios)
    return PROA_ENOMEM;
  st->ios = ios;
  st->cap = cap;
  return 0;
}

/* Removal moves the last slot into the hole, so slots stay dense. */
static void remove_slot(poll_state *st, proa__io *io) {
  int i = io->poll_index, last = --st->n;
  if (i != last) {
    st->fds[i] = st->fds[last];
    st->ios[i] = st->ios[last];
    st->ios[i]->poll_index = i;
  }
  io->poll_index = -1;
}

static int poll_update(proa__backend *be, proa__io *io, unsigned old) {
  poll_state *st = be->poller_data;
  int err;
  (void)old;
  if (!io->events) {
    if (io->poll_index >= 0)
      remove_slot(st, io);
    return 0;
  }
  if (io->poll_index < 0) {
    if (st->n == st->cap && (err = grow(st)) != 0)
      return err;
    io->poll_index = st->n++;
    st->ios[io->poll_index] = io;
    st->fds[io->poll_index].fd = io->fd;
  }
  st->fds[io->poll_index].events = poll_mask(io->events);
  st->fds[io->poll_index].revents = 0;
  return 0;
}

static int poll_wait(proa__backend *be, int timeout_ms) {
  poll_state *st = be->poller_data;
  int i, n = poll(st->fds, (nfds_t)st->n, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : proa__translate_errno(errno);
  /* No callback runs during this scan (events are only recorded), so the
   * arrays cannot change under it. */
  for (i = 0; i < st->n && n > 0; i++) {
    short r = st->fds[i].revents;
    unsigned events = 0;
    if (!r)
      continue;
    n--;
    if (r & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
      events |= PROA__IO_READ;
    if (r & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
      events |= PROA__IO_WRITE;
    proa__engine_event(be, st->ios[i], events);
  }
  return 0;
}

const proa__poller proa__poller_poll = {
    "poll", false, poll_init, poll_free, poll_update, poll_wait,
};
