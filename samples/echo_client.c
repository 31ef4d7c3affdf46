/*
 * An echo client: sends COUNT messages of SIZE bytes, one at a time, checks
 * that each comes back byte for byte, and prints one line with the result.
 * Exits 0 only if every byte came back.
 *
 *   echo_client --tcp HOST:PORT [--size N] [--count N]
 *   echo_client --udp HOST:PORT [--size N] [--count N]
 *   echo_client --unix PATH [--size N] [--count N]
 *   echo_client --pipe NAME [--size N] [--count N]
 *
 * The line it prints names the target as given ("tcp HOST:PORT", "unix
 * PATH", ...).
 * Over UDP each message is one datagram; since UDP may drop, one that gets
 * no reply within a second is sent again, a few times at most.
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#include "echo_args.h"

#define UDP_TIMEOUT 1.0 /* seconds to wait for a reply */
#define UDP_RETRIES 5   /* resends of one message, at most */
#define UDP_STALE 8     /* earlier messages whose late replies are ignored */

typedef struct client {
  proa_loop *loop;
  proa_transport *t;
  proa_datagram *d;   /* UDP */
  proa_handle *timer; /* UDP: the reply's deadline */
  int attempts;       /* UDP: resends of the current message */
  long resent;        /* UDP: resends in all */
  int udp_error;      /* UDP: the last error_received */
  unsigned char *message;
  size_t size, got; /* bytes of the current echo that came back */
  long count, done;
  long long received;
  int error;
  bool mismatch;
  bool lost; /* connection_lost has run */
} client;

/* Message i is a byte pattern of its own, so a mix-up cannot pass. */
static void fill(client *c, long i) {
  size_t k;
  for (k = 0; k < c->size; k++)
    c->message[k] = (unsigned char)(k * 31 + (size_t)i * 7 + 1);
}

static void send_next(client *c) {
  fill(c, c->done);
  c->got = 0;
  c->error = proa_transport_write(c->t, c->message, c->size);
  if (c->error)
    proa_transport_abort(c->t);
}

static void on_made(void *self, proa_transport *t) {
  client *c = self;
  c->t = t;
  send_next(c);
}

static void on_data(void *self, const void *data, size_t len) {
  client *c = self;
  const unsigned char *p = data;
  size_t k;
  for (k = 0; k < len; k++, c->got++) {
    if (c->got >= c->size || p[k] != c->message[c->got]) {
      c->mismatch = true;
      proa_transport_abort(c->t);
      return;
    }
  }
  c->received += (long long)len;
  if (c->got < c->size)
    return;
  if (++c->done < c->count)
    send_next(c);
  else
    proa_transport_close(c->t);
}

static void on_lost(void *self, int error) {
  client *c = self;
  if (error && !c->error)
    c->error = error;
  c->lost = true;
  proa_loop_stop(c->loop);
}

static const proa_protocol client_protocol = {on_made, on_data, NULL, on_lost,
                                              NULL,    NULL,    NULL, NULL};

/* ---- UDP ---- */

static void udp_send(client *c);

static void udp_stop_timer(client *c) {
  if (c->timer) {
    proa_handle_cancel(c->timer);
    proa_handle_unref(c->timer);
    c->timer = NULL;
  }
}

static void udp_finish(client *c, int error) {
  if (error && !c->error)
    c->error = error;
  udp_stop_timer(c);
  proa_datagram_close(c->d);
}

static void udp_timeout(void *arg) {
  client *c = arg;
  proa_handle_unref(c->timer);
  c->timer = NULL;
  if (c->attempts >= UDP_RETRIES) {
    /* No reply at all: say why, if the network did. */
    udp_finish(c, c->udp_error ? c->udp_error : PROA_ETIMEDOUT);
    return;
  }
  c->attempts++;
  c->resent++;
  udp_send(c);
}

/* Sends the current message (again) and arms its deadline. */
static void udp_send(client *c) {
  int err = proa_datagram_sendto(c->d, c->message, c->size, NULL);
  /* A refusal (an ICMP report some systems give to the next send) is
   * one more attempt that failed; anything else is final. */
  if (err == PROA_ECONNREFUSED)
    c->udp_error = err;
  else if (err) {
    udp_finish(c, err);
    return;
  }
  if (proa_call_later(c->loop, UDP_TIMEOUT, udp_timeout, c, &c->timer) != 0)
    udp_finish(c, PROA_ENOMEM);
}

static void udp_next(client *c) {
  fill(c, c->done);
  c->attempts = 0;
  udp_send(c);
}

static void udp_made(void *self, proa_datagram *d) {
  client *c = self;
  c->d = d;
  udp_next(c);
}

/* Whether the reply is a late copy of an earlier (resent) message. */
static bool udp_stale(client *c, const unsigned char *p, size_t len) {
  long i;
  size_t k;
  if (len != c->size)
    return false;
  for (i = c->done - 1; i >= 0 && i >= c->done - UDP_STALE; i--) {
    for (k = 0; k < len; k++)
      if (p[k] != (unsigned char)(k * 31 + (size_t)i * 7 + 1))
        break;
    if (k == len)
      return true;
  }
  return false;
}

static void udp_data(void *self, const void *data, size_t len,
                     const proa_sockaddr *from) {
  client *c = self;
  (void)from; /* connected: only the server's datagrams arrive */
  if (!c->timer)
    return; /* finished, or nothing outstanding */
  if (len != c->size || memcmp(data, c->message, len) != 0) {
    if (udp_stale(c, data, len))
      return;
    c->mismatch = true;
    udp_finish(c, 0);
    return;
  }
  udp_stop_timer(c);
  c->received += (long long)len;
  if (++c->done < c->count)
    udp_next(c);
  else
    udp_finish(c, 0);
}

static void udp_error(void *self, int error) {
  ((client *)self)->udp_error = error;
}

static void udp_lost(void *self, int error) {
  client *c = self;
  if (error && !c->error)
    c->error = error;
  c->lost = true;
  proa_loop_stop(c->loop);
}

static const proa_datagram_protocol udp_protocol = {
    udp_made, udp_data, udp_error, udp_lost, NULL, NULL};

/* ---- the command line ---- */

static int usage(void) {
  fprintf(stderr, "usage: echo_client --tcp|--udp HOST:PORT [--size N] "
                  "[--count N]\n       echo_client --unix PATH|--pipe NAME "
                  "[--size N] [--count N]\n");
  return 2;
}

static int parse(int argc, char **argv, echo_target *t, long *size,
                 long *count) {
  int i, r;
  for (i = 1; i + 1 < argc; i += 2) {
    if ((r = parse_target(argv[i], argv[i + 1], t)) != 0) {
      if (r < 0)
        return -1;
    } else if (strcmp(argv[i], "--size") == 0)
      *size = parse_positive(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      *count = parse_positive(argv[i + 1]);
    else
      return -1;
  }
  return i == argc && t->proto && *size > 0 && *count > 0 ? 0 : -1;
}

/* Starts the client; *f receives the future of the start. */
static int start(client *c, const echo_target *t, proa_future **f) {
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  if (strcmp(t->proto, "tcp") == 0)
    return proa_create_connection(c->loop, &client_protocol, c, t->host,
                                  t->port, NULL, f);
  if (strcmp(t->proto, "unix") == 0)
    return proa_create_unix_connection(c->loop, &client_protocol, c, t->path,
                                       NULL, f);
  if (strcmp(t->proto, "pipe") == 0)
    return proa_create_pipe_connection(c->loop, &client_protocol, c, t->path,
                                       NULL, f);
  o.remote_host = t->host; /* connected: replies come from the server only */
  o.remote_port = t->port;
  return proa_create_datagram_endpoint(c->loop, &udp_protocol, c, &o, f);
}

int main(int argc, char **argv) {
  client c;
  echo_target t;
  int err;
  long size = 1024, count = 10;
  bool udp;
  proa_future *f = NULL;
  memset(&t, 0, sizeof t);
  if (parse(argc, argv, &t, &size, &count) != 0)
    return usage();
  udp = strcmp(t.proto, "udp") == 0;
  memset(&c, 0, sizeof c);
  c.size = (size_t)size;
  c.count = count;
  c.message = malloc(c.size);
  if (!c.message) {
    fprintf(stderr, "echo_client: out of memory\n");
    return 1;
  }
  if ((err = proa_loop_new(&c.loop)) != 0) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    free(c.message);
    return 1;
  }
  err = start(&c, &t, &f);
  if (!err)
    err = proa_loop_run_until_complete(c.loop, f, NULL);
  if (err) {
    printf("echo_client: %s %s: cannot connect: %s\n", t.proto, t.where,
           f && proa_future_error_message(f) ? proa_future_error_message(f)
                                             : proa_strerror(err));
  } else {
    if (!c.lost) /* it may be over already (a send failed at once) */
      proa_loop_run_forever(c.loop); /* until connection_lost */
    err = c.mismatch ? PROA_EPROTO : c.error;
    if (udp)
      printf("echo_client: udp %s: %ld of %ld messages of %zu bytes "
             "echoed (%lld bytes, %ld resent): %s\n",
             t.where, c.done, c.count, c.size, c.received, c.resent,
             err ? proa_strerror(err) : "ok");
    else
      printf("echo_client: %s %s: %ld of %ld messages of %zu bytes "
             "echoed (%lld bytes): %s\n",
             t.proto, t.where, c.done, c.count, c.size, c.received,
             err ? proa_strerror(err) : "ok");
  }
  proa_future_unref(f);
  proa_loop_free(c.loop);
  free(c.message);
  return err || c.done != c.count ? 1 : 0;
}
