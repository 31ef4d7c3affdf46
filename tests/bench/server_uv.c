/* The libuv echo server under test: echoes in read_cb, try_write first. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"

#define SETTLE_MS 50 /* after the last connection, before measuring */
#define BACKLOG 4096
#define READ_BUF_SIZE 65536 /* the same shared 64 KiB buffer proa uses */

typedef struct server_state {
  uv_loop_t loop;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe; /* a local server */
  } listener;
  bool local;
  uv_signal_t sigterm;
  uv_timer_t deadline, settle;
  bench_count count;
  char read_buf[READ_BUF_SIZE];
} server_state;

/* One process runs one server, so the callbacks share this. */
static server_state g;

/* A write that uv_try_write could not finish: owns a copy of the rest. */
typedef struct write_req {
  uv_write_t req;
  uv_buf_t buf;
  char data[];
} write_req;

static void on_closed(uv_handle_t *h) {
  free(h);
  bench_count_closed(&g.count);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(g.read_buf, sizeof g.read_buf);
}

static void on_written(uv_write_t *req, int status) {
  (void)status; /* a failed write also shows up as a read error */
  free(req);
}

/* Sends what the socket takes now and queues a copy of the rest. */
static void echo(uv_stream_t *s, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
  int n = uv_try_write(s, &b, 1);
  write_req *w;
  if (n == (int)len)
    return;
  if (n < 0 && n != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  if (n < 0)
    n = 0;
  w = malloc(sizeof *w + len - (size_t)n);
  if (!w) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  memcpy(w->data, data + n, len - (size_t)n);
  w->buf = uv_buf_init(w->data, (unsigned)(len - (size_t)n));
  uv_write(&w->req, s, &w->buf, 1, on_written);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread > 0)
    echo(s, buf->base, (size_t)nread);
  else if (nread < 0 && !uv_is_closing((uv_handle_t *)s))
    uv_close((uv_handle_t *)s, on_closed);
}

static void report_full(uv_timer_t *t) {
  (void)t;
  bench_count_report_full(&g.count);
}

static void on_connection(uv_stream_t *server, int status) {
  uv_stream_t *c;
  if (status < 0 ||
      !(c = malloc(g.local ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t))))
    return;
  if (g.local)
    uv_pipe_init(&g.loop, (uv_pipe_t *)c, 0);
  else
    uv_tcp_init(&g.loop, (uv_tcp_t *)c);
  if (uv_accept(server, c) != 0) {
    uv_close((uv_handle_t *)c, (uv_close_cb)free);
    return;
  }
  if (!g.local) /* proa's server sets TCP_NODELAY too */
    uv_tcp_nodelay((uv_tcp_t *)c, 1);
  if (bench_count_opened(&g.count))
    uv_timer_start(&g.settle, report_full, SETTLE_MS, 0);
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void stop_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

static void stop_timer(uv_timer_t *t) { uv_stop(t->loop); }

/* Listens on 127.0.0.1 (a free port); returns the port or an error. */
static int listen_on_loopback(void) {
  struct sockaddr_in addr;
  int len = sizeof addr, err;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&g.loop, &g.listener.tcp);
  err = uv_tcp_bind(&g.listener.tcp, (const struct sockaddr *)&addr, 0);
  if (!err)
    err = uv_listen((uv_stream_t *)&g.listener, BACKLOG, on_connection);
  if (!err)
    err = uv_tcp_getsockname(&g.listener.tcp, (struct sockaddr *)&addr, &len);
  return err ? err : ntohs(addr.sin_port);
}

/* Listens on bench_local_path (uv_pipe); returns 0 or an error. */
static int listen_locally(void) {
  char path[108];
  int err;
  bench_local_path((int)getpid(), path, sizeof path);
  uv_pipe_init(&g.loop, &g.listener.pipe, 0);
  err = uv_pipe_bind(&g.listener.pipe, path);
  if (!err)
    err = uv_listen((uv_stream_t *)&g.listener, BACKLOG, on_connection);
  return err;
}

int bench_serve_uv(const bench_server_cfg *cfg) {
  int port;
  signal(SIGPIPE,
         SIG_IGN); /* libuv writes with write(2): every app does this */
  if (uv_loop_init(&g.loop) != 0)
    return 1;
  g.local = cfg->kind == BENCH_LOCAL_ECHO;
  port = g.local ? listen_locally() : listen_on_loopback();
  if (port < 0) {
    fprintf(stderr, "libuv server: %s\n", uv_strerror(port));
    return 1;
  }
  uv_signal_init(&g.loop, &g.sigterm);
  uv_signal_start(&g.sigterm, stop_signal, SIGTERM);
  uv_timer_init(&g.loop, &g.settle);
  uv_timer_init(&g.loop, &g.deadline);
  uv_timer_start(&g.deadline, stop_timer, (uint64_t)(cfg->max_seconds * 1000.0),
                 0);
  bench_count_init(&g.count, cfg);
  bench_report(cfg->report_fd, "port %d", port);
  uv_run(&g.loop, UV_RUN_DEFAULT);
  return 0;
}
