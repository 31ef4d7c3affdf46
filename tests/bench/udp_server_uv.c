/* The libuv UDP servers under test: echo in recv_cb (try_send first), or
 * count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "bench.h"

#define READ_BUF_SIZE 65536 /* the same shared 64 KiB buffer proa uses */

typedef struct udp_state {
  uv_loop_t loop;
  uv_udp_t udp;
  uv_signal_t sigterm;
  uv_timer_t deadline;
  bench_shared *shared;
  char read_buf[READ_BUF_SIZE];
} udp_state;

/* One process runs one server, so the callbacks share this. */
static udp_state g;

/* A datagram uv_udp_try_send could not send: owns a copy of it. */
typedef struct send_req {
  uv_udp_send_t req;
  uv_buf_t buf;
  char data[];
} send_req;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(g.read_buf, sizeof g.read_buf);
}

static void on_sent(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

/* Sends now if the socket takes it, else queues a copy (as proa does). */
static void echo(uv_udp_t *h, const char *data, size_t len,
                 const struct sockaddr *addr) {
  uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
  send_req *r;
  if (uv_udp_try_send(h, &b, 1, addr) != UV_EAGAIN)
    return; /* sent, or an error no retry would fix */
  r = malloc(sizeof *r + len);
  if (!r)
    return;
  memcpy(r->data, data, len);
  r->buf = uv_buf_init(r->data, (unsigned)len);
  uv_udp_send(&r->req, h, &r->buf, 1, addr, on_sent);
}

static void on_echo(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  (void)flags;
  if (nread >= 0 && addr) /* nread 0 without addr: nothing more to read */
    echo(h, buf->base, (size_t)nread, addr);
}

static void on_sink(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  (void)h;
  (void)buf;
  (void)flags;
  if (nread >= 0 && addr)
    bench_shared_count(g.shared);
}

static void stop_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

static void stop_timer(uv_timer_t *t) { uv_stop(t->loop); }

/* Binds 127.0.0.1 (a free port); returns the port or an error. */
static int bind_loopback(uv_udp_recv_cb recv_cb) {
  struct sockaddr_in addr;
  int len = sizeof addr, err;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_udp_init(&g.loop, &g.udp);
  err = uv_udp_bind(&g.udp, (const struct sockaddr *)&addr, 0);
  if (!err)
    err = uv_udp_getsockname(&g.udp, (struct sockaddr *)&addr, &len);
  if (!err)
    err = uv_udp_recv_start(&g.udp, on_alloc, recv_cb);
  return err ? err : ntohs(addr.sin_port);
}

int bench_serve_uv_udp(const bench_server_cfg *cfg) {
  int port;
  g.shared = cfg->shared;
  if (uv_loop_init(&g.loop) != 0)
    return 1;
  port = bind_loopback(cfg->kind == BENCH_UDP_SINK ? on_sink : on_echo);
  if (port < 0) {
    fprintf(stderr, "libuv UDP server: %s\n", uv_strerror(port));
    return 1;
  }
  uv_signal_init(&g.loop, &g.sigterm);
  uv_signal_start(&g.sigterm, stop_signal, SIGTERM);
  uv_timer_init(&g.loop, &g.deadline);
  uv_timer_start(&g.deadline, stop_timer, (uint64_t)(cfg->max_seconds * 1000.0),
                 0);
  bench_report(cfg->report_fd, "port %d", port);
  uv_run(&g.loop, UV_RUN_DEFAULT);
  return 0;
}
