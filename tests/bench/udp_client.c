/* The UDP load generators: raw non-blocking sockets, the same for every
 * server. Ping-pong keeps one datagram in flight per client socket; the
 * pummel sends as fast as the sockets take datagrams. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MAX_EVENTS 64
#define RESEND_AFTER 0.2 /* seconds without an echo: count it lost */
#define CHECK_EVERY 0.02 /* how often to look for lost datagrams */
#define DRAIN_LIMIT 0.2  /* seconds to wait for the receiver to catch up */
#define BLAST_BATCH 32   /* datagrams per sendmmsg in the pummel */
#define SEQ_SIZE 4       /* each datagram starts with its sequence number */
#define MIN_SIZE SEQ_SIZE

/* A UDP socket connected to 127.0.0.1:port; -1 on failure. */
static int udp_connect(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ---- ping-pong ---- */

typedef struct peer {
  int fd;
  uint32_t seq;   /* of the datagram in flight */
  double sent_at; /* when it was sent */
  bool failed;
} peer;

typedef struct pingpong {
  int epfd;
  peer *peers;
  int npeers;
  size_t size;
  char *msg, *scratch;
  long done, total, lost, errors;
  bool verify, verified;
} pingpong;

static void peer_fail(pingpong *r, peer *p) {
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, p->fd, NULL);
  p->failed = true;
  r->errors++;
}

/* Sends the next datagram; a full socket buffer counts as a loss later. */
static void ping(pingpong *r, peer *p, double now) {
  ssize_t n;
  memcpy(r->msg, &p->seq, SEQ_SIZE);
  do
    n = send(p->fd, r->msg, r->size, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED)
    peer_fail(r, p);
  p->sent_at = now;
}

/* Reads what arrived; the echo of the datagram in flight completes it. */
static void pong(pingpong *r, peer *p) {
  for (;;) {
    ssize_t n = recv(p->fd, r->scratch, r->size + 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED))
      return; /* ECONNREFUSED: an ICMP report; the time-out resends */
    if (n < 0) {
      peer_fail(r, p);
      return;
    }
    if ((size_t)n != r->size || memcmp(r->scratch, &p->seq, SEQ_SIZE) != 0)
      continue; /* late echo of a datagram already counted lost */
    if (r->verify && memcmp(r->scratch + SEQ_SIZE, r->msg + SEQ_SIZE,
                            r->size - SEQ_SIZE) != 0)
      r->verified = false;
    r->done++;
    r->total++;
    p->seq++;
    ping(r, p, bench_now());
  }
}

/* Datagrams without an echo for RESEND_AFTER are lost: send the next. */
static void resend_lost(pingpong *r, double now) {
  int i;
  for (i = 0; i < r->npeers; i++) {
    peer *p = &r->peers[i];
    if (!p->failed && now - p->sent_at > RESEND_AFTER) {
      r->lost++;
      p->seq++;
      ping(r, p, now);
    }
  }
}

static double drive_pingpong(pingpong *r, int server_pid, double warmup,
                             double duration, double *cpu_ns) {
  double start = bench_now(), t0 = 0, t, cpu0 = -1, next_check = start;
  struct epoll_event evs[MAX_EVENTS];
  int i, n;
  r->verify = true;
  for (i = 0; i < r->npeers; i++)
    ping(r, &r->peers[i], start);
  for (;;) {
    n = epoll_wait(r->epfd, evs, MAX_EVENTS, 10);
    for (i = 0; i < n; i++)
      pong(r, evs[i].data.ptr);
    t = bench_now();
    if (t >= next_check) {
      resend_lost(r, t);
      next_check = t + CHECK_EVERY;
    }
    if (r->verify && t >= start + warmup) {
      r->verify = false;
      r->done = 0;
      t0 = t;
      cpu0 = server_pid > 0 ? bench_cpu_ns(server_pid) : -1;
    } else if (!r->verify && t >= t0 + duration) {
      double cpu1 = server_pid > 0 ? bench_cpu_ns(server_pid) : -1;
      *cpu_ns = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
      return (double)r->done / (t - t0);
    }
  }
}

static int pingpong_setup(pingpong *r, int port, int npeers, size_t size) {
  size_t i;
  memset(r, 0, sizeof *r);
  r->npeers = npeers;
  r->size = size;
  r->verified = true;
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  r->peers = calloc((size_t)npeers, sizeof *r->peers);
  r->msg = malloc(size);
  r->scratch = malloc(size + 1);
  if (r->epfd < 0 || !r->peers || !r->msg || !r->scratch)
    return -1;
  for (i = 0; i < size; i++)
    r->msg[i] = (char)('a' + i % 23);
  for (i = 0; i < (size_t)npeers; i++)
    r->peers[i].fd = -1;
  for (i = 0; i < (size_t)npeers; i++) {
    struct epoll_event ev;
    r->peers[i].fd = udp_connect(port);
    ev.events = EPOLLIN;
    ev.data.ptr = &r->peers[i];
    if (r->peers[i].fd < 0 ||
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->peers[i].fd, &ev) != 0)
      return -1;
  }
  return 0;
}

static void pingpong_teardown(pingpong *r) {
  int i;
  for (i = 0; r->peers && i < r->npeers; i++)
    if (r->peers[i].fd >= 0)
      close(r->peers[i].fd);
  if (r->epfd >= 0)
    close(r->epfd);
  free(r->peers);
  free(r->msg);
  free(r->scratch);
}

int bench_udp_pingpong(int port, int server_pid, int nclients, size_t size,
                       double warmup, double duration, bench_echo_result *out) {
  pingpong r;
  double cpu_ns = -1;
  int rc = size >= MIN_SIZE ? pingpong_setup(&r, port, nclients, size) : -1;
  if (rc == 0) {
    out->rate = drive_pingpong(&r, server_pid, warmup, duration, &cpu_ns);
    out->cpu_us = cpu_ns >= 0 && r.done > 0 ? cpu_ns / 1e3 / r.done : -1;
    out->total = r.total;
    out->errors = r.errors;
    out->lost = r.lost;
    out->verified = r.verified;
  }
  if (size >= MIN_SIZE)
    pingpong_teardown(&r);
  return rc;
}

/* ---- pummel ---- */

static long received(const bench_shared *shared) {
  return shared ? __atomic_load_n(&shared->received, __ATOMIC_RELAXED) : 0;
}

/*
 * Round-robin over the sockets, a batch of datagrams per sendmmsg, until
 * `until`; returns datagrams sent. Batching keeps the sender's own system
 * call cost low, so that one sender thread can outrun a receiver.
 */
static long blast(const int *fds, int n, const char *msg, size_t size,
                  double until) {
  struct mmsghdr batch[BLAST_BATCH];
  struct iovec iov;
  long sent = 0;
  int i, k;
  iov.iov_base = (void *)(uintptr_t)msg;
  iov.iov_len = size;
  memset(batch, 0, sizeof batch);
  for (k = 0; k < BLAST_BATCH; k++) {
    batch[k].msg_hdr.msg_iov = &iov;
    batch[k].msg_hdr.msg_iovlen = 1;
  }
  for (;;) {
    for (i = 0; i < n; i++) {
      int m = sendmmsg(fds[i], batch, BLAST_BATCH, 0);
      sent += m > 0 ? m : 0;
    }
    if (bench_now() >= until)
      return sent;
  }
}

/* Waits until the receiver's count stops growing: its queue is drained. */
static long drain(const bench_shared *shared) {
  double end = bench_now() + DRAIN_LIMIT;
  long last = received(shared), now;
  while (shared && bench_now() < end) {
    usleep(5000);
    now = received(shared);
    if (now == last)
      break;
    last = now;
  }
  return last;
}

static void pummel_measure(const int *fds, int n, const char *msg, size_t size,
                           int pid, const bench_shared *shared, double duration,
                           bench_pummel_result *out) {
  double t0 = bench_now(), t1, cpu0 = pid > 0 ? bench_cpu_ns(pid) : -1, cpu1;
  long r0 = received(shared), r1;
  out->sent = blast(fds, n, msg, size, t0 + duration);
  t1 = bench_now();
  r1 = drain(shared);
  cpu1 = pid > 0 ? bench_cpu_ns(pid) : -1;
  out->received = r1 - r0;
  out->sent_rate = (double)out->sent / (t1 - t0);
  out->recv_rate = (double)out->received / (t1 - t0);
  out->cpu_ns = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
}

int bench_udp_pummel(int port, int server_pid, const bench_shared *shared,
                     int nsenders, size_t size, double warmup, double duration,
                     bench_pummel_result *out) {
  int *fds = calloc((size_t)nsenders, sizeof *fds), i, rc = 0;
  char *msg = calloc(1, size ? size : 1);
  memset(out, 0, sizeof *out);
  for (i = 0; fds && i < nsenders; i++)
    fds[i] = -1;
  for (i = 0; fds && i < nsenders && rc == 0; i++)
    rc = (fds[i] = udp_connect(port)) < 0 ? -1 : 0;
  if (!fds || !msg)
    rc = -1;
  if (rc == 0) {
    blast(fds, nsenders, msg, size, bench_now() + warmup);
    drain(shared);
    pummel_measure(fds, nsenders, msg, size, server_pid, shared, duration, out);
  }
  for (i = 0; fds && i < nsenders; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(fds);
  free(msg);
  return rc;
}
