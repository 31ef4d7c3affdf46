/* The load generator: raw non-blocking sockets over epoll, the same for
 * every server, so that what differs between runs is the server's loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define MAX_EVENTS 256
#define SCRATCH_SIZE (256 * 1024)
#define CONNECT_TIMEOUT 10 /* seconds */

/* One ping-pong connection: the message is sent, then its echo read. */
typedef struct echo_conn {
  int fd;
  size_t sent, recvd;
  bool out; /* EPOLLOUT is watched */
} echo_conn;

typedef struct echo_run {
  int epfd;
  echo_conn *conns;
  int nconns;
  size_t size;
  char *msg, *scratch;
  long done;  /* round trips completed while measuring */
  long total; /* round trips completed, warm-up included */
  long errors;
  int server_pid; /* whose CPU time is measured, or 0 */
  double cpu_ns;  /* the server's CPU time while measuring, or -1 */
  bool verify;    /* compare echoes with the message (warm-up only) */
  bool verified;
} echo_run;

/* A blocking connect to the server: 127.0.0.1:port with TCP_NODELAY, or
 * its Unix socket when the port is 0; -1 on failure. SO_SNDTIMEO bounds
 * the connect too, should the server stop accepting. */
static int connect_server(const bench_server *s) {
  struct sockaddr_storage ss;
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  struct sockaddr_un *un = (struct sockaddr_un *)&ss;
  struct timeval limit = {CONNECT_TIMEOUT, 0};
  bool local = s->port == 0;
  int one = 1,
      fd = socket(local ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  memset(&ss, 0, sizeof ss);
  if (local) {
    un->sun_family = AF_UNIX;
    bench_local_path(s->pid, un->sun_path, sizeof un->sun_path);
  } else {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)s->port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  if (connect(fd, (struct sockaddr *)&ss, local ? sizeof *un : sizeof *in) !=
      0) {
    close(fd);
    return -1;
  }
  if (!local)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void watch_out(echo_run *r, echo_conn *c, bool out) {
  struct epoll_event ev;
  if (c->out == out)
    return;
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
  ev.data.ptr = c;
  epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->out = out;
}

static void conn_fail(echo_run *r, echo_conn *c) {
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  r->errors++;
}

/* Sends what the socket takes of the rest of the message. */
static void pump_send(echo_run *r, echo_conn *c) {
  while (c->sent < r->size) {
    ssize_t n = send(c->fd, r->msg + c->sent, r->size - c->sent,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->sent += (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      break;
    } else if (n < 0 && errno != EINTR) {
      conn_fail(r, c);
      return;
    }
  }
  watch_out(r, c, c->sent < r->size);
}

static void check_echo(echo_run *r, echo_conn *c, size_t n) {
  if (r->verify && memcmp(r->scratch, r->msg + c->recvd, n) != 0)
    r->verified = false;
}

/* Reads the echo; a complete one counts and starts the next message. */
static void pump_recv(echo_run *r, echo_conn *c) {
  while (c->recvd < r->size) {
    size_t want = r->size - c->recvd;
    ssize_t n = recv(c->fd, r->scratch,
                     want < SCRATCH_SIZE ? want : SCRATCH_SIZE, MSG_DONTWAIT);
    if (n > 0) {
      check_echo(r, c, (size_t)n);
      c->recvd += (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else if (n == 0 || errno != EINTR) {
      conn_fail(r, c);
      return;
    }
  }
  r->done++;
  r->total++;
  c->sent = c->recvd = 0;
  pump_send(r, c);
}

static int open_conns(echo_run *r, const bench_server *s) {
  int i;
  for (i = 0; i < r->nconns; i++) {
    echo_conn *c = &r->conns[i];
    struct epoll_event ev;
    c->fd = connect_server(s);
    if (c->fd < 0)
      return -1;
    c->sent = c->recvd = 0;
    c->out = false;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->fd, &ev);
  }
  return 0;
}

static void close_conns(echo_run *r) {
  int i;
  for (i = 0; i < r->nconns; i++)
    if (r->conns[i].fd >= 0)
      close(r->conns[i].fd);
}

static void handle_events(echo_run *r, int timeout_ms) {
  struct epoll_event evs[MAX_EVENTS];
  int i, n = epoll_wait(r->epfd, evs, MAX_EVENTS, timeout_ms);
  for (i = 0; i < n; i++) {
    echo_conn *c = evs[i].data.ptr;
    if (evs[i].events & EPOLLOUT)
      pump_send(r, c);
    if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
      pump_recv(r, c);
  }
}

static double server_cpu(const echo_run *r) {
  return r->server_pid > 0 ? bench_cpu_ns(r->server_pid) : -1;
}

/* Warm-up (echoes verified), then counts round trips for `duration`. */
static double drive(echo_run *r, double warmup, double duration) {
  double start = bench_now(), t0 = 0, t, cpu0 = -1, cpu1;
  int i;
  r->verify = true;
  for (i = 0; i < r->nconns; i++)
    pump_send(r, &r->conns[i]);
  for (;;) {
    handle_events(r, 50);
    t = bench_now();
    if (r->verify && t >= start + warmup) {
      r->verify = false;
      r->done = 0;
      t0 = t;
      cpu0 = server_cpu(r);
    } else if (!r->verify && t >= t0 + duration) {
      cpu1 = server_cpu(r);
      r->cpu_ns = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
      return (double)r->done / (t - t0);
    }
  }
}

static int echo_setup(echo_run *r, int nconns, size_t size) {
  size_t i;
  memset(r, 0, sizeof *r);
  r->nconns = nconns;
  r->size = size;
  r->verified = true;
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  r->conns = calloc((size_t)nconns, sizeof *r->conns);
  r->msg = malloc(size);
  r->scratch = malloc(SCRATCH_SIZE);
  if (r->epfd < 0 || !r->conns || !r->msg || !r->scratch)
    return -1;
  for (i = 0; i < size; i++)
    r->msg[i] = (char)('a' + i % 23);
  for (i = 0; i < (size_t)nconns; i++)
    r->conns[i].fd = -1;
  return 0;
}

static void echo_teardown(echo_run *r) {
  close_conns(r);
  if (r->epfd >= 0)
    close(r->epfd);
  free(r->conns);
  free(r->msg);
  free(r->scratch);
}

int bench_echo(const bench_server *s, int nconns, size_t size, double warmup,
               double duration, bench_echo_result *out) {
  echo_run r;
  int rc = echo_setup(&r, nconns, size);
  r.server_pid = s->pid;
  if (rc == 0)
    rc = open_conns(&r, s);
  if (rc == 0) {
    out->rate = drive(&r, warmup, duration);
    out->cpu_us = r.cpu_ns >= 0 && r.done > 0 ? r.cpu_ns / 1e3 / r.done : -1;
    out->total = r.total;
    out->errors = r.errors;
    out->verified = r.verified;
  }
  echo_teardown(&r);
  return rc;
}

int bench_idle_open(const bench_server *s, int n, int *fds) {
  int i;
  for (i = 0; i < n; i++) {
    fds[i] = connect_server(s);
    if (fds[i] < 0)
      break;
  }
  return i;
}

/* Resets (SO_LINGER 0) rather than closes: no TIME_WAIT is left behind. */
void bench_idle_close(int *fds, int n) {
  struct linger lg = {1, 0};
  int i;
  for (i = 0; i < n; i++) {
    setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fds[i]);
  }
}
