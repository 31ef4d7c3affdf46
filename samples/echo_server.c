/*
 * An echo server: every byte a client sends comes back. When a client
 * half-closes, the echo is finished and then this side closes too. SIGINT
 * or SIGTERM (Ctrl-C or Ctrl-Break on Windows) stops it cleanly.
 *
 *   echo_server --tcp HOST:PORT     (PORT 0 picks a free port)
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#include "echo_args.h"

typedef struct connection {
  proa_transport *t;
} connection;

static void on_made(void *self, proa_transport *t) {
  ((connection *)self)->t = t;
}

static void on_data(void *self, const void *data, size_t len) {
  connection *c = self;
  /* An error here ends the connection, and connection_lost says so. */
  proa_transport_write(c->t, data, len);
}

/* Returning false closes the transport, which flushes the echo first. */
static bool on_eof(void *self) {
  (void)self;
  return false;
}

static void on_lost(void *self, int error) {
  (void)error;
  free(self);
}

static const proa_protocol echo_protocol = {on_made, on_data, on_eof, on_lost,
                                            NULL,    NULL,    NULL,   NULL};

static int make_connection(void *arg, const proa_protocol **protocol,
                           void **self) {
  (void)arg;
  *self = calloc(1, sizeof(connection));
  if (!*self)
    return PROA_ENOMEM;
  *protocol = &echo_protocol;
  return 0;
}

typedef struct app {
  proa_loop *loop;
  proa_server *server;
} app;

static void on_signal(void *arg) {
  app *a = arg;
  if (a->server) {
    proa_server_close(a->server);
    proa_server_close_clients(a->server);
  }
  proa_loop_stop(a->loop);
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server --tcp HOST:PORT\n");
  return 2;
}

/* Listens, prints the one line that says where, then serves. */
static int serve(app *a, const char *host, int port) {
  proa_future *f, *closed;
  proa_sockaddr addr;
  char where[64];
  void *result;
  int err =
      proa_create_server(a->loop, make_connection, NULL, host, port, NULL, &f);
  if (!err)
    err = proa_loop_run_until_complete(a->loop, f, &result);
  if (err) {
    fprintf(stderr, "echo_server: cannot listen on %s:%d: %s\n", host, port,
            f ? proa_future_error_message(f) : proa_strerror(err));
    proa_future_unref(f);
    return 1;
  }
  a->server = proa_server_ref(result);
  proa_future_unref(f);
  proa_server_sockname(a->server, 0, &addr);
  proa_sockaddr_format(&addr, where, sizeof where);
  printf("listening on tcp %s\n", where);
  fflush(stdout);
  proa_loop_run_forever(a->loop); /* until a signal */
  /* Let the connections finish closing before leaving. */
  if (proa_server_wait_closed(a->server, &closed) == 0) {
    proa_loop_run_until_complete(a->loop, closed, NULL);
    proa_future_unref(closed);
  }
  proa_server_unref(a->server);
  return 0;
}

int main(int argc, char **argv) {
  app a = {NULL, NULL};
  char host[256];
  int port, rc;
  if (argc != 3 || strcmp(argv[1], "--tcp") != 0 ||
      parse_host_port(argv[2], host, sizeof host, &port) != 0)
    return usage();
  if (proa_loop_new(&a.loop) != 0)
    return 1;
  proa_loop_add_signal_handler(a.loop, PROA_SIGINT, on_signal, &a);
#ifdef PROA_SIGBREAK
  proa_loop_add_signal_handler(a.loop, PROA_SIGBREAK, on_signal, &a);
#else
  proa_loop_add_signal_handler(a.loop, PROA_SIGTERM, on_signal, &a);
#endif
  rc = serve(&a, host, port);
  proa_loop_free(a.loop);
  return rc;
}
