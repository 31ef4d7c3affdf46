/*
 * The echo client written as a task, in straight-line code: connect, then
 * for each message write, drain, read the echo back and compare. Same
 * command line and output as echo_client:
 *
 *   task_echo_client --tcp HOST:PORT [--size N] [--count N]
 *   task_echo_client --unix PATH [--size N] [--count N]
 *   task_echo_client --pipe NAME [--size N] [--count N]
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#include "echo_args.h"

typedef struct job {
  proa_loop *loop;
  echo_target target;
  size_t size;
  long count, done;
} job;

/* Awaits a future that only signals completion, then lets go of it. */
static int await_done(proa_future *f) {
  int err = proa_await(f, NULL);
  proa_future_unref(f);
  return err;
}

/* Sends one message and checks that the same bytes come back. */
static int echo_once(proa_stream *s, unsigned char *msg, size_t size, long i) {
  proa_future *f = NULL;
  proa_bytes *echo = NULL;
  size_t k;
  int err;
  for (k = 0; k < size; k++)
    msg[k] = (unsigned char)(k * 31 + (size_t)i * 7 + 1);
  err = proa_stream_write(s, msg, size);
  if (!err)
    err = proa_stream_drain(s, &f);
  if (!err)
    err = await_done(f); /* flow control: wait while the buffer is full */
  if (err)
    return err;
  /* The bytes are the future's: compare before letting go of it. */
  err = proa_stream_readexactly(s, size, &f);
  if (!err)
    err = proa_await(f, (void **)&echo);
  if (!err && memcmp(echo->data, msg, size) != 0)
    err = PROA_EPROTO;
  proa_future_unref(f);
  return err;
}

/* open_connection, or its kin for the target's protocol. */
static int open_stream(const job *j, proa_future **f) {
  const echo_target *t = &j->target;
  if (strcmp(t->proto, "unix") == 0)
    return proa_open_unix_connection(j->loop, t->path, NULL, j->size, f);
  if (strcmp(t->proto, "pipe") == 0)
    return proa_open_pipe_connection(j->loop, t->path, NULL, j->size, f);
  return proa_open_connection(j->loop, t->host, t->port, NULL, j->size, f);
}

static int client(void *arg, void **result) {
  job *j = arg;
  proa_future *f = NULL;
  proa_stream *s;
  unsigned char *msg = malloc(j->size);
  void *v;
  int err = msg ? 0 : PROA_ENOMEM;
  (void)result;
  if (!err)
    err = open_stream(j, &f);
  if (!err)
    err = proa_await(f, &v);
  if (err) {
    proa_future_unref(f);
    free(msg);
    return err;
  }
  s = proa_stream_ref(v);
  proa_future_unref(f);
  for (; !err && j->done < j->count; j->done++)
    err = echo_once(s, msg, j->size, j->done);
  if (err)
    j->done--; /* the last one did not come back */
  proa_stream_close(s);
  if (!err)
    err = proa_stream_wait_closed(s, &f);
  if (!err)
    err = await_done(f);
  proa_stream_unref(s);
  free(msg);
  return err;
}

static int usage(void) {
  fprintf(stderr, "usage: task_echo_client --tcp HOST:PORT|--unix PATH|"
                  "--pipe NAME [--size N] [--count N]\n");
  return 2;
}

static int parse(int argc, char **argv, job *j) {
  long size = 1024, count = 10;
  int i, r;
  for (i = 1; i + 1 < argc; i += 2) {
    if ((r = parse_target(argv[i], argv[i + 1], &j->target)) != 0) {
      if (r < 0 || strcmp(j->target.proto, "udp") == 0)
        return -1; /* streams only */
    } else if (strcmp(argv[i], "--size") == 0)
      size = parse_positive(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      count = parse_positive(argv[i + 1]);
    else
      return -1;
  }
  j->size = (size_t)size;
  j->count = count;
  return i == argc && j->target.proto && size > 0 && count > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  job j;
  proa_future *task;
  int err;
  memset(&j, 0, sizeof j);
  if (parse(argc, argv, &j) != 0)
    return usage();
  if ((err = proa_loop_new(&j.loop)) != 0) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    return 1;
  }
  err = proa_create_task(j.loop, client, &j, NULL, &task);
  if (!err) {
    err = proa_loop_run_until_complete(j.loop, task, NULL);
    proa_future_unref(task);
  }
  printf("task_echo_client: %s %s: %ld of %ld messages of %zu bytes "
         "echoed (%lld bytes): %s\n",
         j.target.proto, j.target.where, j.done, j.count, j.size,
         (long long)j.done * (long long)j.size,
         err ? proa_strerror(err) : "ok");
  proa_loop_free(j.loop);
  return err || j.done != j.count ? 1 : 0;
}
