/* The Unix completion-emulation engine and the poller table beneath it. */
#ifndef PROA_UNIX_ENGINE_H
#define PROA_UNIX_ENGINE_H

#include "internal.h"
#include "list.h"

#define PROA__IO_READ 1u
#define PROA__IO_WRITE 2u

typedef struct proa__io proa__io;

/* Runs in the engine's dispatch phase with the events that were seen. */
typedef void (*proa__io_fn)(proa__io *io, unsigned events);

/* A watched file descriptor. */
struct proa__io {
  int fd;
  unsigned events;  /* what is watched: PROA__IO_READ | PROA__IO_WRITE */
  unsigned revents; /* what was seen and is waiting to be dispatched */
  int poll_index;   /* the poll poller's slot for this fd, -1 if none */
  proa__io_fn cb;
  proa__backend *be;
  proa__list_node pending; /* in the backend's dispatch list */
};

/*
 * A readiness poller. The engine owns the watch list; a poller only mirrors
 * it into the kernel and reports what it sees through proa__engine_event().
 */
typedef struct proa__poller {
  const char *name;
  bool eventfd_wakeup; /* wake with an eventfd (Linux) rather than a pipe */
  int (*init)(proa__backend *be);
  void (*free)(proa__backend *be);
  /* io->events holds the new set; `old` the previous one (0: not watched). */
  int (*update)(proa__backend *be, proa__io *io, unsigned old);
  int (*wait)(proa__backend *be, int timeout_ms);
} proa__poller;

/* The engine's state: the proa__backend of the epoll and poll tables. */
struct proa__backend {
  const proa__backend_ops *ops;
  proa_loop *loop;
  const proa__poller *poller;
  void *poller_data;
  proa__io wake_io;
  int wake_write_fd;  /* == wake_io.fd for an eventfd */
  proa__io signal_io; /* the self-pipe that signal handlers write to */
  int signal_write_fd;
  proa__op *done_head, *done_tail; /* posted completions */
  proa__list pending;              /* ios with events to dispatch */
  size_t inflight;                 /* ops submitted and not yet delivered */
  char *lend_buf;                  /* lent to reads without a buffer */
};

extern const proa__poller proa__poller_epoll;
extern const proa__poller proa__poller_poll;

/* Starts, changes (events 0 stops) what `io` watches. */
int proa__io_watch(proa__backend *be, proa__io *io, unsigned events);
void proa__io_init(proa__io *io, int fd, proa__io_fn cb);

/* Queues `op` (result set) to be completed from the next poll. */
void proa__engine_post(proa__backend *be, proa__op *op);

/* The handle operations (handle.c), shared by every poller's table. */
int proa__engine_socket_open(proa__backend *be, int family, int type,
                             int protocol, proa__ioh **out);
int proa__engine_adopt(proa__backend *be, intptr_t os, proa__ioh **out);
void proa__engine_close(proa__ioh *h);
void proa__engine_detach(proa__ioh *h);
void proa__engine_read(proa__ioh *h, proa__read_op *op);
void proa__engine_write(proa__ioh *h, proa__write_op *op);
void proa__engine_wait_readable(proa__ioh *h, proa__op *op);
void proa__engine_wait_writable(proa__ioh *h, proa__op *op);
void proa__engine_wait_peer_closed(proa__ioh *h, proa__op *op);
void proa__engine_cancel(proa__ioh *h, proa__op *op);
intptr_t proa__engine_try_write(proa__ioh *h, const proa_buf *bufs,
                                size_t count);
int proa__engine_shutdown_write(proa__ioh *h);
void proa__engine_connect(proa__ioh *h, proa__op *op,
                          const proa_sockaddr *addr);
void proa__engine_accept(proa__ioh *h, proa__accept_op *op);
intptr_t proa__engine_try_recvfrom(proa__ioh *h, void *buf, size_t len,
                                   proa_sockaddr *from);
intptr_t proa__engine_try_sendto(proa__ioh *h, const void *buf, size_t len,
                                 const proa_sockaddr *to);
void proa__engine_sendto(proa__ioh *h, proa__sendto_op *op);

/* Called by pollers from wait(): records events for dispatch after it. */
void proa__engine_event(proa__backend *be, proa__io *io, unsigned events);

/* Debug builds: the next send fails with this errno (0: none), once. */
extern int proa__fault_send_errno;

/* errno to PROA_E*. */
int proa__translate_errno(int err);

/* A non-blocking, close-on-exec pipe. Returns 0 or a PROA_E* code. */
int proa__make_pipe(int fds[2]);
int proa__set_nonblock_cloexec(int fd);

/* Signals: the self-pipe write end that the handler of `signum` uses. */
int proa__signal_claim(int signum, int write_fd);
void proa__signal_release(int signum, int write_fd);

#endif /* PROA_UNIX_ENGINE_H */
