/* The proa UDP servers under test: echo in datagram_received, or count. */
#include <stdio.h>

#include <proa.h>

#include "bench.h"

typedef struct udp_state {
  proa_loop *loop;
  proa_datagram *t;
  bench_shared *shared;
} udp_state;

/* One process runs one server, so the callbacks share this. */
static udp_state g;

static void on_made(void *self, proa_datagram *t) {
  (void)self;
  g.t = t;
}

/* Sent at once when the socket takes it, else copied and queued by proa. */
static void on_echo(void *self, const void *data, size_t len,
                    const proa_sockaddr *addr) {
  (void)self;
  proa_datagram_sendto(g.t, data, len, addr);
}

static void on_sink(void *self, const void *data, size_t len,
                    const proa_sockaddr *addr) {
  (void)self;
  (void)data;
  (void)len;
  (void)addr;
  bench_shared_count(g.shared);
}

static const proa_datagram_protocol echo_protocol = {on_made, on_echo, NULL,
                                                     NULL,    NULL,    NULL};
static const proa_datagram_protocol sink_protocol = {on_made, on_sink, NULL,
                                                     NULL,    NULL,    NULL};

static void stop(void *arg) { proa_loop_stop(arg); }

/* Binds 127.0.0.1 (a free port); returns the port or an error. */
static int bind_loopback(const proa_datagram_protocol *protocol) {
  proa_datagram_options opts = PROA_DATAGRAM_OPTIONS_INIT;
  proa_future *f = NULL;
  proa_sockaddr addr;
  void *result = NULL;
  int err;
  opts.local_host = "127.0.0.1";
  err = proa_create_datagram_endpoint(g.loop, protocol, NULL, &opts, &f);
  if (!err)
    err = proa_loop_run_until_complete(g.loop, f, &result);
  if (!err)
    err = proa_datagram_sockname(proa_datagram_ref(result), &addr);
  proa_future_unref(f);
  return err ? err : proa_sockaddr_port(&addr);
}

int bench_serve_proa_udp(const char *backend, const bench_server_cfg *cfg) {
  proa_loop_options lo = PROA_LOOP_OPTIONS_INIT;
  int port;
  lo.backend = backend;
  lo.debug = 0;
  g.shared = cfg->shared;
  if (proa_loop_new_ex(&g.loop, &lo) != 0)
    return 1;
  port = bind_loopback(cfg->kind == BENCH_UDP_SINK ? &sink_protocol
                                                   : &echo_protocol);
  if (port < 0) {
    fprintf(stderr, "proa UDP server: %s\n", proa_strerror(port));
    return 1;
  }
  proa_loop_add_signal_handler(g.loop, PROA_SIGTERM, stop, g.loop);
  proa_call_later(g.loop, cfg->max_seconds, stop, g.loop, NULL);
  bench_report(cfg->report_fd, "port %d", port);
  proa_loop_run_forever(g.loop);
  return 0;
}
