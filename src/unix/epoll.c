/* The epoll poller (Linux): level-triggered, one registration per fd. */
#ifdef __linux__
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

#define MAX_EVENTS 256

typedef struct epoll_state {
  int epfd;
  struct epoll_event events[MAX_EVENTS];
} epoll_state;

static int epoll_init(proa__backend *be) {
  epoll_state *st = malloc(sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  st->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (st->epfd < 0) {
    int err = proa__translate_errno(errno);
    free(st);
    return err;
  }
  be->poller_data = st;
  return 0;
}

static void epoll_free(proa__backend *be) {
  epoll_state *st = be->poller_data;
  close(st->epfd);
  free(st);
}

static int epoll_update(proa__backend *be, proa__io *io, unsigned old) {
  epoll_state *st = be->poller_data;
  struct epoll_event ev = {0};
  int op;
  ev.data.ptr = io;
  ev.events = ((io->events & PROA__IO_READ) ? EPOLLIN : 0) |
              ((io->events & PROA__IO_WRITE) ? EPOLLOUT : 0);
  op = !io->events ? EPOLL_CTL_DEL : old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(st->epfd, op, io->fd, &ev) == 0)
    return 0;
  /* A closed fd has already left the epoll set: nothing to remove. */
  if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT))
    return 0;
  return proa__translate_errno(errno);
}

static int epoll_wait_events(proa__backend *be, int timeout_ms) {
  epoll_state *st = be->poller_data;
  int i, n = epoll_wait(st->epfd, st->events, MAX_EVENTS, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : proa__translate_errno(errno);
  for (i = 0; i < n; i++) {
    uint32_t e = st->events[i].events;
    unsigned events = 0;
    /* Errors and hang-ups wake both directions: the op sees the error. */
    if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
      events |= PROA__IO_READ;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
      events |= PROA__IO_WRITE;
    proa__engine_event(be, st->events[i].data.ptr, events);
  }
  return 0;
}

const proa__poller proa__poller_epoll = {
    "epoll", true, epoll_init, epoll_free, epoll_update, epoll_wait_events,
};
#endif
