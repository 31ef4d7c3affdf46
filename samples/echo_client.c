/*
 * An echo client: sends COUNT messages of SIZE bytes, one at a time, checks
 * that each comes back byte for byte, and prints one line with the result.
 * Exits 0 only if every byte came back.
 *
 *   echo_client --tcp HOST:PORT [--size N] [--count N]
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#include "echo_args.h"

typedef struct client {
  proa_loop *loop;
  proa_transport *t;
  unsigned char *message;
  size_t size, got; /* bytes of the current echo that came back */
  long count, done;
  long long received;
  int error;
  bool mismatch;
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
  proa_loop_stop(c->loop);
}

static const proa_protocol client_protocol = {on_made, on_data, NULL, on_lost,
                                              NULL,    NULL,    NULL, NULL};

static int usage(void) {
  fprintf(stderr,
          "usage: echo_client --tcp HOST:PORT [--size N] [--count N]\n");
  return 2;
}

static int parse(int argc, char **argv, char *host, size_t hsize, int *port,
                 long *size, long *count) {
  int i;
  bool have_addr = false;
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tcp") == 0)
      have_addr = parse_host_port(argv[i + 1], host, hsize, port) == 0;
    else if (strcmp(argv[i], "--size") == 0)
      *size = parse_positive(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      *count = parse_positive(argv[i + 1]);
    else
      return -1;
  }
  return i == argc && have_addr && *size > 0 && *count > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  client c;
  char host[256];
  int port = 0, err;
  long size = 1024, count = 10;
  proa_future *f = NULL;
  if (parse(argc, argv, host, sizeof host, &port, &size, &count) != 0)
    return usage();
  memset(&c, 0, sizeof c);
  c.size = (size_t)size;
  c.count = count;
  c.message = malloc(c.size);
  if (!c.message || proa_loop_new(&c.loop) != 0)
    return 1;
  err = proa_create_connection(c.loop, &client_protocol, &c, host, port, NULL,
                               &f);
  if (!err)
    err = proa_loop_run_until_complete(c.loop, f, NULL);
  if (err) {
    printf("echo_client: tcp %s:%d: cannot connect: %s\n", host, port,
           f && proa_future_error_message(f) ? proa_future_error_message(f)
                                             : proa_strerror(err));
  } else {
    proa_loop_run_forever(c.loop); /* until connection_lost */
    err = c.mismatch ? PROA_EPROTO : c.error;
    printf("echo_client: tcp %s:%d: %ld of %ld messages of %zu bytes echoed "
           "(%lld bytes): %s\n",
           host, port, c.done, c.count, c.size, c.received,
           err ? proa_strerror(err) : "ok");
  }
  proa_future_unref(f);
  proa_loop_free(c.loop);
  free(c.message);
  return err || c.done != c.count ? 1 : 0;
}
