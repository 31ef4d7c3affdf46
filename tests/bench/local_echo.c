/*
 * Echo round trips over proa's portable local IPC, in one process on one
 * loop: a server made by proa_create_pipe_server (a named pipe on Windows,
 * a Unix socket elsewhere) and CONNS clients of proa_create_pipe_connection,
 * each sending SIZE bytes and waiting for the whole echo before the next.
 * Portable, unlike proa_bench: it is what measures named pipes under Wine
 * (where libuv is not at hand). Server and clients share one thread, so
 * the rate is of both ends together.
 *
 *   proa_local_echo NAME [CONNS] [SIZE] [SECONDS]
 *
 * Prints one line: "CONNS x SIZE B: N round trips/s".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <proa.h>

#define WARMUP 0.2 /* seconds before counting */

typedef struct bench {
  proa_loop *loop;
  size_t size;
  char *msg;
  long done; /* round trips counted */
  bool counting, stopping;
  int failed;
} bench;

static bench g;

/* ---- the server: echoes ---- */

typedef struct echo {
  proa_transport *t;
} echo;

static void echo_made(void *self, proa_transport *t) { ((echo *)self)->t = t; }

static void echo_data(void *self, const void *data, size_t len) {
  proa_transport_write(((echo *)self)->t, data, len);
}

static void echo_lost(void *self, int error) {
  (void)error;
  free(self);
}

static const proa_protocol echo_protocol = {
    echo_made, echo_data, NULL, echo_lost, NULL, NULL, NULL, NULL};

static int make_echo(void *arg, const proa_protocol **protocol, void **self) {
  (void)arg;
  *self = calloc(1, sizeof(echo));
  *protocol = &echo_protocol;
  return *self ? 0 : PROA_ENOMEM;
}

/* ---- a client: sends, waits for the whole echo, sends again ---- */

typedef struct client {
  proa_transport *t;
  size_t got;
} client;

static void client_made(void *self, proa_transport *t) {
  ((client *)self)->t = t;
  proa_transport_write(t, g.msg, g.size);
}

static void client_data(void *self, const void *data, size_t len) {
  client *c = self;
  (void)data;
  c->got += len;
  if (c->got < g.size)
    return;
  c->got = 0;
  g.done += g.counting;
  if (!g.stopping)
    proa_transport_write(c->t, g.msg, g.size);
}

static void client_lost(void *self, int error) {
  (void)self;
  if (error && !g.stopping)
    g.failed = error;
}

static const proa_protocol client_protocol = {
    client_made, client_data, NULL, client_lost, NULL, NULL, NULL, NULL};

/* ---- the run ---- */

static void start_counting(void *arg) {
  (void)arg;
  g.counting = true;
  g.done = 0;
}

static void stop(void *arg) {
  (void)arg;
  g.stopping = true;
  proa_loop_stop(g.loop);
}

static int run(const char *name, int conns, double seconds, client *clients,
               double *rate) {
  proa_pipe_server_options so = PROA_PIPE_SERVER_OPTIONS_INIT;
  proa_future *f = NULL;
  void *server = NULL;
  int i, err;
  so.backlog = conns > 8 ? conns : 8;
  err = proa_create_pipe_server(g.loop, make_echo, NULL, name, &so, &f);
  if (!err)
    err = proa_loop_run_until_complete(g.loop, f, &server);
  server = err ? NULL : proa_server_ref(server);
  proa_future_unref(f);
  for (i = 0; i < conns && !err; i++) {
    err = proa_create_pipe_connection(g.loop, &client_protocol, &clients[i],
                                      name, NULL, &f);
    if (!err)
      err = proa_loop_run_until_complete(g.loop, f, NULL);
    proa_future_unref(f);
  }
  if (!err) {
    proa_call_later(g.loop, WARMUP, start_counting, NULL, NULL);
    proa_call_later(g.loop, WARMUP + seconds, stop, NULL, NULL);
    proa_loop_run_forever(g.loop);
  }
  *rate = (double)g.done / seconds;
  for (i = 0; i < conns; i++)
    if (clients[i].t)
      proa_transport_close(clients[i].t);
  if (server)
    proa_server_close(server);
  proa_server_unref(server);
  return err ? err : g.failed;
}

int main(int argc, char **argv) {
  int conns = argc > 2 ? atoi(argv[2]) : 1, err;
  double seconds = argc > 4 ? atof(argv[4]) : 1.0, rate = 0;
  client *clients;
  g.size = argc > 3 ? (size_t)atol(argv[3]) : 1024;
  if (argc < 2 || conns <= 0 || g.size == 0 || seconds <= 0) {
    fprintf(stderr, "usage: proa_local_echo NAME [CONNS] [SIZE] [SECONDS]\n");
    return 2;
  }
  g.msg = malloc(g.size);
  clients = calloc((size_t)conns, sizeof *clients);
  if (!g.msg || !clients || proa_loop_new(&g.loop) != 0)
    return 1;
  memset(g.msg, 'x', g.size);
  err = run(argv[1], conns, seconds, clients, &rate);
  if (err) {
    fprintf(stderr, "proa_local_echo: %s\n", proa_strerror(err));
    return 1;
  }
  printf("%d x %zu B: %.0f round trips/s\n", conns, g.size, rate);
  proa_loop_free(g.loop);
  free(clients);
  free(g.msg);
  return 0;
}
