/*
 * An echo server over TCP, UDP or both at once. TCP: every byte a client
 * sends comes back; when a client half-closes, the echo is finished and
 * then this side closes too. UDP: every datagram goes back to its sender.
 * SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on Windows) stops it cleanly.
 *
 *   echo_server [--tcp HOST:PORT] [--udp HOST:PORT]   (at least one; PORT 0
 *                                                      picks a free port)
 *
 * Once ready it prints one line per protocol: "listening on tcp HOST:PORT",
 * "listening on udp HOST:PORT".
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

typedef struct app {
  proa_loop *loop;
  proa_server *server; /* TCP, or NULL */
  udp_echo udp;        /* udp.t: the UDP endpoint, or NULL */
} app;

static void on_signal(void *arg) {
  app *a = arg;
  if (a->server) {
    proa_server_close(a->server);
    proa_server_close_clients(a->server);
  }
  if (a->udp.t)
    proa_datagram_close(a->udp.t);
  proa_loop_stop(a->loop);
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server [--tcp HOST:PORT] [--udp HOST:PORT]\n");
  return 2;
}

static void print_where(const char *proto, const proa_sockaddr *addr) {
  char where[64];
  proa_sockaddr_format(addr, where, sizeof where);
  printf("listening on %s %s\n", proto, where);
  fflush(stdout);
}

/* Starts listening on TCP and prints where; 0 or -1 (reported). */
static int listen_tcp(app *a, const char *host, int port) {
  proa_future *f = NULL;
  proa_sockaddr addr;
  void *result;
  int err =
      proa_create_server(a->loop, make_connection, NULL, host, port, NULL, &f);
  if (!err)
    err = proa_loop_run_until_complete(a->loop, f, &result);
  if (err) {
    fprintf(stderr, "echo_server: cannot listen on %s:%d: %s\n", host, port,
            f ? proa_future_error_message(f) : proa_strerror(err));
    proa_future_unref(f);
    return -1;
  }
  a->server = proa_server_ref(result);
  proa_future_unref(f);
  proa_server_sockname(a->server, 0, &addr);
  print_where("tcp", &addr);
  return 0;
}

/* Opens the UDP endpoint and prints where; 0 or -1 (reported). */
static int listen_udp(app *a, const char *host, int port) {
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  proa_future *f = NULL;
  proa_sockaddr addr;
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
  print_where("udp", &addr);
  return 0;
}

/* Lets the connections and the endpoint finish closing. */
static void finish(app *a) {
  proa_future *closed;
  if (a->udp.t) {
    proa_datagram_close(a->udp.t);
    proa_loop_run_until_complete(a->loop, a->udp.lost, NULL);
  }
  if (a->server) {
    proa_server_close(a->server); /* closed already, unless UDP failed */
    if (proa_server_wait_closed(a->server, &closed) == 0) {
      proa_loop_run_until_complete(a->loop, closed, NULL);
      proa_future_unref(closed);
    }
    proa_server_unref(a->server);
  }
  proa_future_unref(a->udp.lost);
}

int main(int argc, char **argv) {
  app a;
  char tcp_host[256], udp_host[256];
  int tcp_port = -1, udp_port = -1, rc = 0, i;
  memset(&a, 0, sizeof a);
  if (argc != 3 && argc != 5)
    return usage();
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tcp") == 0 && tcp_port < 0) {
      if (parse_host_port(argv[i + 1], tcp_host, sizeof tcp_host, &tcp_port))
        return usage();
    } else if (strcmp(argv[i], "--udp") == 0 && udp_port < 0) {
      if (parse_host_port(argv[i + 1], udp_host, sizeof udp_host, &udp_port))
        return usage();
    } else {
      return usage();
    }
  }
  if (proa_loop_new(&a.loop) != 0)
    return 1;
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
  if (!rc)
    proa_loop_run_forever(a.loop); /* until a signal */
  finish(&a);
  proa_loop_free(a.loop);
  return rc;
}
