/*
 * Copies stdin to stdout through connect_read_pipe and connect_write_pipe,
 * byte for byte, in constant memory: when the writer's buffer fills
 * (pause_writing) the reader pauses, and resumes on resume_writing.
 *
 *   cat_pipe
 *
 * Exits 0 at the end of stdin once everything is written; on an error it
 * says what failed on stderr and exits 1. stdin and stdout stay open
 * (keep_open) and are handed back as they were.
 *
 * asyncio's rule refuses regular files in connect_*_pipe (a file is always
 * "ready": there is nothing to wait for), and so does proa. So a file on
 * stdin is read here in 64 KiB chunks on the executor, one at a time and
 * none while the writer is paused, so that the loop never waits for the
 * disk; a file on stdout is written on the spot, since a file write waits
 * for no reader (the backends treat files the same way).
 */
#include <stdio.h>
#include <stdlib.h>

#include <proa.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

#define CHUNK 65536 /* what one read of a file stdin takes */

typedef struct cat {
  proa_loop *loop;
  proa_transport *in, *out; /* NULL for a file */
  intptr_t in_h, out_h;     /* stdin, stdout */
  bool in_file, out_file;
  bool paused;        /* the writer asked the reader to wait */
  proa_future *chunk; /* a file stdin: the chunk being read, or NULL */
  bool finished;      /* everything was written */
  int error;
  const char *what; /* what failed */
} cat;

/* ---- the few calls that differ between the OSes ---- */

static intptr_t std_handle(int n) {
#ifdef _WIN32
  return (intptr_t)GetStdHandle(n == 0 ? STD_INPUT_HANDLE : STD_OUTPUT_HANDLE);
#else
  return n;
#endif
}

/* One blocking read of a file: the bytes, 0 at its end, -1 on an error. */
static long file_read(intptr_t h, void *buf, size_t len) {
#ifdef _WIN32
  DWORD n = 0;
  return ReadFile((HANDLE)h, buf, (DWORD)len, &n, NULL) ? (long)n : -1;
#else
  return (long)read((int)h, buf, len);
#endif
}

static int file_write(intptr_t h, const char *p, size_t len) {
  while (len > 0) {
#ifdef _WIN32
    DWORD n = 0;
    if (!WriteFile((HANDLE)h, p, (DWORD)len, &n, NULL))
      return PROA_EIO;
#else
    ssize_t n = write((int)h, p, len);
    if (n < 0)
      return PROA_EIO;
#endif
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- the end ---- */

static void fail(cat *c, const char *what, int err) {
  if (!c->error) {
    c->error = err;
    c->what = what;
  }
  proa_loop_stop(c->loop);
}

static void finish(cat *c) {
  c->finished = true;
  proa_loop_stop(c->loop);
}

static void input_ended(cat *c) {
  if (c->out_file)
    finish(c);
  else
    proa_transport_write_eof(c->out); /* closes once flushed: out_lost */
}

static void put(cat *c, const void *data, size_t len) {
  int err = c->out_file ? file_write(c->out_h, data, len)
                        : proa_transport_write(c->out, data, len);
  if (err)
    fail(c, "write", err);
}

/* ---- a file on stdin, read on the executor ---- */

static void read_next(cat *c);

/* On an executor thread: one chunk, its length first, the bytes after. */
static int read_chunk(void *arg, void **result) {
  cat *c = arg;
  size_t *chunk = malloc(sizeof *chunk + CHUNK);
  long n;
  if (!chunk)
    return PROA_ENOMEM;
  n = file_read(c->in_h, chunk + 1, CHUNK);
  if (n < 0) {
    free(chunk);
    return PROA_EIO;
  }
  *chunk = (size_t)n;
  *result = chunk;
  return 0;
}

static void chunk_read(proa_future *f, void *arg) {
  cat *c = arg;
  void *v = NULL;
  int err = proa_future_result(f, &v);
  c->chunk = NULL;
  if (c->error) {
    proa_loop_stop(c->loop); /* main was waiting for this read to end */
  } else if (err) {
    fail(c, "read", err);
  } else if (*(size_t *)v == 0) {
    input_ended(c);
  } else {
    put(c, (size_t *)v + 1, *(size_t *)v);
    read_next(c);
  }
  proa_future_unref(f); /* frees the chunk */
}

static void read_next(cat *c) {
  proa_future *f = NULL;
  int err;
  if (c->chunk || c->paused || c->error)
    return;
  err = proa_run_in_executor(c->loop, NULL, read_chunk, c, free, &f);
  if (!err)
    err = proa_future_add_done_callback(f, chunk_read, c);
  if (err) {
    proa_future_unref(f);
    fail(c, "read", err);
    return;
  }
  c->chunk = f;
}

/* ---- stdin as a read pipe ---- */

static void in_made(void *self, proa_transport *t) {
  cat *c = self;
  c->in = t;
  if (c->paused) /* the writer is full already */
    proa_transport_pause_reading(t);
}

static void in_data(void *self, const void *data, size_t len) {
  put(self, data, len);
}

static bool in_eof(void *self) {
  input_ended(self);
  return false;
}

static void in_lost(void *self, int error) {
  cat *c = self;
  c->in = NULL;
  if (error)
    fail(c, "read", error);
}

static const proa_protocol in_protocol = {in_made, in_data, in_eof, in_lost,
                                          NULL,    NULL,    NULL,   NULL};

/* ---- stdout as a write pipe ---- */

static void out_made(void *self, proa_transport *t) { ((cat *)self)->out = t; }

static void out_lost(void *self, int error) {
  cat *c = self;
  c->out = NULL;
  if (error)
    fail(c, "write", error);
  else
    finish(c);
}

static void out_pause(void *self) {
  cat *c = self;
  c->paused = true;
  if (c->in)
    proa_transport_pause_reading(c->in);
}

static void out_resume(void *self) {
  cat *c = self;
  c->paused = false;
  if (c->in)
    proa_transport_resume_reading(c->in);
  else if (c->in_file)
    read_next(c);
}

static const proa_protocol out_protocol = {
    out_made, NULL, NULL, out_lost, out_pause, out_resume, NULL, NULL};

/* ---- main ---- */

/* Connects stdout, then stdin (in that order, so that the writer is there
 * before the first bytes are). PROA_EINVAL: a regular file, served above. */
static int start(cat *c) {
  proa_pipe_options o = PROA_PIPE_OPTIONS_INIT;
  proa_future *f = NULL;
  int err;
  o.keep_open = true;
  err = proa_connect_write_pipe(c->loop, &out_protocol, c, c->out_h, &o, &f);
  c->out_file = err == PROA_EINVAL;
  proa_future_unref(f); /* its result holds the transport; it is made */
  if (err && !c->out_file)
    return err;
  f = NULL;
  err = proa_connect_read_pipe(c->loop, &in_protocol, c, c->in_h, &o, &f);
  c->in_file = err == PROA_EINVAL;
  proa_future_unref(f);
  if (c->in_file)
    read_next(c);
  return c->in_file ? 0 : err;
}

int main(void) {
  cat c = {0};
  int err;
  c.in_h = std_handle(0);
  c.out_h = std_handle(1);
  err = proa_loop_new(&c.loop);
  if (err) {
    fprintf(stderr, "cat_pipe: %s\n", proa_strerror(err));
    return 1;
  }
  err = start(&c);
  if (err)
    fail(&c, "stdin/stdout", err);
  else
    proa_loop_run_forever(c.loop); /* until finish or fail */
  if (c.chunk) /* an error came during a file read: let it end first */
    proa_loop_run_forever(c.loop);
  if (c.error)
    fprintf(stderr, "cat_pipe: %s: %s\n", c.what, proa_strerror(c.error));
  proa_loop_close(c.loop); /* aborts what is still open */
  proa_loop_free(c.loop);
  return c.finished && !c.error ? 0 : 1;
}
