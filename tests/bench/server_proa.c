/* The proa echo server under test: echoes in data_received. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <proa.h>

#include "bench.h"

#define SETTLE_SECONDS 0.05 /* after the last connection, before measuring */
#define BACKLOG 4096

typedef struct server_state {
  proa_loop *loop;
  bench_count count;
} server_state;

/* One process runs one server, so the callbacks share this. */
static server_state g;

typedef struct conn {
  proa_transport *t;
} conn;

static void report_full(void *arg) { bench_count_report_full(arg); }

static void on_made(void *self, proa_transport *t) {
  ((conn *)self)->t = t;
  if (bench_count_opened(&g.count))
    proa_call_later(g.loop, SETTLE_SECONDS, report_full, &g.count, NULL);
}

static void on_data(void *self, const void *data, size_t len) {
  proa_transport_write(((conn *)self)->t, data, len);
}

static bool on_eof(void *self) {
  (void)self;
  return false;
}

static void on_lost(void *self, int error) {
  (void)error;
  free(self);
  bench_count_closed(&g.count);
}

static const proa_protocol echo_protocol = {on_made, on_data, on_eof, on_lost,
                                            NULL,    NULL,    NULL,   NULL};

static int make_conn(void *arg, const proa_protocol **protocol, void **self) {
  (void)arg;
  *self = calloc(1, sizeof(conn));
  if (!*self)
    return PROA_ENOMEM;
  *protocol = &echo_protocol;
  return 0;
}

static void stop(void *arg) { proa_loop_stop(arg); }

/* Listens on 127.0.0.1 (a free port), or on bench_local_path for a local
 * server; returns the port (0 for a local one) or an error. */
static int listen_for(bench_kind kind, proa_server **out) {
  proa_server_options opts = PROA_SERVER_OPTIONS_INIT;
  proa_unix_server_options uopts = PROA_UNIX_SERVER_OPTIONS_INIT;
  proa_future *f = NULL;
  proa_sockaddr addr;
  void *result = NULL;
  char path[108];
  int err;
  opts.backlog = uopts.backlog = BACKLOG;
  bench_local_path((int)getpid(), path, sizeof path);
  err = kind == BENCH_LOCAL_ECHO
            ? proa_create_unix_server(g.loop, make_conn, NULL, path, &uopts, &f)
            : proa_create_server(g.loop, make_conn, NULL, "127.0.0.1", 0, &opts,
                                 &f);
  if (!err)
    err = proa_loop_run_until_complete(g.loop, f, &result);
  if (!err) {
    *out = proa_server_ref(result);
    if (kind != BENCH_LOCAL_ECHO)
      err = proa_server_sockname(*out, 0, &addr);
  }
  proa_future_unref(f);
  return err ? err : kind == BENCH_LOCAL_ECHO ? 0 : proa_sockaddr_port(&addr);
}

int bench_serve_proa(const char *backend, const bench_server_cfg *cfg) {
  proa_loop_options lo = PROA_LOOP_OPTIONS_INIT;
  proa_server *server = NULL;
  int port;
  lo.backend = backend;
  lo.debug = 0;
  if (proa_loop_new_ex(&g.loop, &lo) != 0)
    return 1;
  port = listen_for(cfg->kind, &server);
  if (port < 0) {
    fprintf(stderr, "proa server: %s\n", proa_strerror(port));
    return 1;
  }
  proa_loop_add_signal_handler(g.loop, PROA_SIGTERM, stop, g.loop);
  proa_call_later(g.loop, cfg->max_seconds, stop, g.loop, NULL);
  bench_count_init(&g.count, cfg);
  bench_report(cfg->report_fd, "port %d", port);
  proa_loop_run_forever(g.loop);
  /* The process exits right after: no need to tear 10,000 connections down. */
  return 0;
}
