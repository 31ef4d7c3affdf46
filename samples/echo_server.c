/*
 * An echo server over TCP, UDP, a Unix socket, a local pipe, or any of
 * them at once. Streams (TCP, Unix, pipe): every byte a client sends comes
 * back; when a client half-closes, the echo is finished and then this side
 * closes too. UDP: every datagram goes back to its sender. SIGINT or
 * SIGTERM (Ctrl-C or Ctrl-Break on Windows) stops it cleanly.
 *
 *   echo_server [--tcp HOST:PORT] [--udp HOST:PORT] [--unix PATH]
 *               [--pipe NAME]
 *
 * At least one, each at most once; PORT 0 picks a free port. PATH is a
 * Unix socket path ('@name': a Linux abstract name); NAME is a pipe
 * (\\.\pipe\NAME on Windows, a Unix socket path elsewhere). Once ready it
 * prints one line per protocol: "listening on tcp HOST:PORT", "listening on
 * udp HOST:PORT", "listening on unix PATH", "listening on pipe NAME".
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#include "echo_args.h"

/* ---- TCP ---- */

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

/* ---- UDP ---- */

typedef struct udp_echo {
  proa_datagram *t;
  proa_future *lost; /* done once connection_lost has run */
} udp_echo;

static void udp_made(void *self, proa_datagram *t) {
  ((udp_echo *)self)->t = t;
}

static void udp_data(void *self, const void *data, size_t len,
                     const proa_sockaddr *from) {
  udp_echo *u = self;
  /* UDP promises nothing: a datagram that cannot go back is dropped. */
  proa_datagram_sendto(u->t, data, len, from);
}

/* ICMP news about a client that went away, or a failed echo: ignored. */
static void udp_error(void *self, int error) {
  (void)self;
  (void)error;
}

static void udp_lost(void *self, int error) {
  udp_echo *u = self;
  (void)error;
  u->t = NULL;
  proa_future_set_result(u->lost, NULL, NULL);
}

static const proa_datagram_protocol udp_protocol = {
    udp_made, udp_data, udp_error, udp_lost, NULL, NULL};

/* ---- the server ---- */

enum { MAX_SERVERS = 3 }; /* the stream servers: tcp, unix, pipe */

typedef struct app {
  proa_loop *loop;
  proa_server *servers[MAX_SERVERS];
  size_t nservers;
  udp_echo udp; /* udp.t: the UDP endpoint, or NULL */
} app;

static void on_signal(void *arg) {
  app *a = arg;
  size_t i;
  for (i = 0; i < a->nservers; i++) {
    proa_server_close(a->servers[i]);
    proa_server_close_clients(a->servers[i]);
  }
  if (a->udp.t)
    proa_datagram_close(a->udp.t);
  proa_loop_stop(a->loop);
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server [--tcp HOST:PORT] [--udp HOST:PORT] "
                  "[--unix PATH] [--pipe NAME]\n");
  return 2;
}

static void print_where(const char *proto, const char *where) {
  printf("listening on %s %s\n", proto, where);
  fflush(stdout);
}

/*
 * Awaits the future of a create_*_server call that returned `err` and
 * keeps the server; 0, or -1 (reported, naming `proto` and `where`).
 */
static int keep_server(app *a, int err, proa_future *f, const char *proto,
                       const char *where) {
  const char *m;
  void *result;
  if (!err)
    err = proa_loop_run_until_complete(a->loop, f, &result);
  if (err) {
    m = f ? proa_future_error_message(f) : NULL;
    fprintf(stderr, "echo_server: cannot listen on %s %s: %s\n", proto, where,
            m ? m : proa_strerror(err));
    proa_future_unref(f);
    return -1;
  }
  a->servers[a->nservers++] = proa_server_ref(result);
  proa_future_unref(f);
  return 0;
}

/* Starts listening on TCP and prints where; 0 or -1 (reported). */
static int listen_tcp(app *a, const char *host, int port) {
  proa_future *f = NULL;
  proa_sockaddr addr;
  char where[300];
  int err =
      proa_create_server(a->loop, make_connection, NULL, host, port, NULL, &f);
  snprintf(where, sizeof where, "%s:%d", host, port);
  if (keep_server(a, err, f, "tcp", where) != 0)
    return -1;
  proa_server_sockname(a->servers[a->nservers - 1], 0, &addr);
  proa_sockaddr_format(&addr, where, sizeof where);
  print_where("tcp", where);
  return 0;
}

/* The same on a Unix socket path. */
static int listen_unix(app *a, const char *path) {
  proa_future *f = NULL;
  int err =
      proa_create_unix_server(a->loop, make_connection, NULL, path, NULL, &f);
  if (keep_server(a, err, f, "unix", path) != 0)
    return -1;
  print_where("unix", path);
  return 0;
}

/* The same on a local pipe (a named pipe on Windows). */
static int listen_pipe(app *a, const char *name) {
  proa_future *f = NULL;
  int err =
      proa_create_pipe_server(a->loop, make_connection, NULL, name, NULL, &f);
  if (keep_server(a, err, f, "pipe", name) != 0)
    return -1;
  print_where("pipe", name);
  return 0;
}

/* Opens the UDP endpoint and prints where; 0 or -1 (reported). */
static int listen_udp(app *a, const char *host, int port) {
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  proa_future *f = NULL;
  proa_sockaddr addr;
  char where[64];
  int err = proa_future_new(a->loop, &a->udp.lost);
  o.local_host = host;
  o.local_port = port;
  if (!err)
    err =
        proa_create_datagram_endpoint(a->loop, &udp_protocol, &a->udp, &o, &f);
  if (!err)
    err = proa_loop_run_until_complete(a->loop, f, NULL);
  if (err) {
    const char *m = f ? proa_future_error_message(f) : NULL;
    fprintf(stderr, "echo_server: cannot listen on udp %s:%d: %s\n", host, port,
            m ? m : proa_strerror(err));
    proa_future_unref(f);
    return -1;
  }
  proa_future_unref(f); /* the loop keeps the endpoint until it is lost */
  proa_datagram_sockname(a->udp.t, &addr);
  proa_sockaddr_format(&addr, where, sizeof where);
  print_where("udp", where);
  return 0;
}

/* Lets the connections and the endpoint finish closing. */
static void finish(app *a) {
  proa_future *closed;
  size_t i;
  if (a->udp.t) {
    proa_datagram_close(a->udp.t);
    proa_loop_run_until_complete(a->loop, a->udp.lost, NULL);
  }
  for (i = 0; i < a->nservers; i++) {
    proa_server_close(a->servers[i]); /* closed already, unless one failed */
    if (proa_server_wait_closed(a->servers[i], &closed) == 0) {
      proa_loop_run_until_complete(a->loop, closed, NULL);
      proa_future_unref(closed);
    }
    proa_server_unref(a->servers[i]);
  }
  proa_future_unref(a->udp.lost);
}

int main(int argc, char **argv) {
  app a;
  char tcp_host[256], udp_host[256];
  const char *unix_path = NULL, *pipe_name = NULL;
  int tcp_port = -1, udp_port = -1, rc = 0, i, err;
  memset(&a, 0, sizeof a);
  if (argc < 3 || argc % 2 == 0)
    return usage();
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tcp") == 0 && tcp_port < 0) {
      if (parse_host_port(argv[i + 1], tcp_host, sizeof tcp_host, &tcp_port))
        return usage();
    } else if (strcmp(argv[i], "--udp") == 0 && udp_port < 0) {
      if (parse_host_port(argv[i + 1], udp_host, sizeof udp_host, &udp_port))
        return usage();
    } else if (strcmp(argv[i], "--unix") == 0 && !unix_path) {
      unix_path = argv[i + 1];
    } else if (strcmp(argv[i], "--pipe") == 0 && !pipe_name) {
      pipe_name = argv[i + 1];
    } else {
      return usage();
    }
  }
  if ((err = proa_loop_new(&a.loop)) != 0) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    return 1;
  }
  proa_loop_add_signal_handler(a.loop, PROA_SIGINT, on_signal, &a);
#ifdef PROA_SIGBREAK
  proa_loop_add_signal_handler(a.loop, PROA_SIGBREAK, on_signal, &a);
#else
  proa_loop_add_signal_handler(a.loop, PROA_SIGTERM, on_signal, &a);
#endif
  if (tcp_port >= 0 && listen_tcp(&a, tcp_host, tcp_port) != 0)
    rc = 1;
  if (!rc && udp_port >= 0 && listen_udp(&a, udp_host, udp_port) != 0)
    rc = 1;
  if (!rc && unix_path && listen_unix(&a, unix_path) != 0)
    rc = 1;
  if (!rc && pipe_name && listen_pipe(&a, pipe_name) != 0)
    rc = 1;
  if (!rc)
    proa_loop_run_forever(a.loop); /* until a signal */
  finish(&a);
  proa_loop_free(a.loop);
  return rc;
}
