/* open_connection / start_server: buffered reader and writer over a transport.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "transport.h"

enum read_kind { READ_NONE, READ_SOME, READ_EXACT, READ_UNTIL, READ_LINE };

struct proa_stream {
  proa__atomic_int refs;
  proa_loop *loop;
  proa_transport *t; /* referenced from connection_made on */
  size_t limit;
  unsigned char *buf;
  size_t len, cap;
  bool eof, lost, paused, write_paused;
  int error; /* what ended the connection */
  /* the pending read */
  enum read_kind kind;
  size_t n;
  unsigned char *sep;
  size_t seplen;
  proa_future *reader;
  /* drain and wait_closed futures */
  proa_future **waiters;
  size_t nwaiters;
  proa_future *closed;
  /* start_server: the handler each connection runs */
  proa_stream_handler handler;
  void *handler_arg;
};

proa_stream *proa_stream_ref(proa_stream *s) {
  proa__atomic_add(&s->refs, 1);
  return s;
}

void proa_stream_unref(proa_stream *s) {
  size_t i;
  if (!s || proa__atomic_add(&s->refs, -1) != 0)
    return;
  if (s->reader)
    proa_future_unref(s->reader);
  for (i = 0; i < s->nwaiters; i++)
    proa_future_unref(s->waiters[i]);
  proa_future_unref(s->closed);
  free(s->waiters);
  free(s->sep);
  free(s->buf);
  proa_transport_unref(s->t);
  proa_loop_unref(s->loop);
  free(s);
}

static void release(void *s) { proa_stream_unref(s); }

static proa_stream *stream_new(proa_loop *loop, size_t limit) {
  proa_stream *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->refs = 1; /* the protocol's, until connection_lost */
  s->loop = proa_loop_ref(loop);
  s->limit = limit ? limit : PROA_STREAM_LIMIT_DEFAULT;
  return s;
}

/* ---- the buffer ---- */

/* Hands the first k buffered bytes to the pending read. */
static void take(proa_stream *s, size_t k) {
  proa_future *f = s->reader;
  proa_bytes *b = malloc(offsetof(proa_bytes, data) + (k ? k : 1));
  s->reader = NULL;
  s->kind = READ_NONE;
  if (!b) {
    proa_future_set_error(f, PROA_ENOMEM, NULL);
  } else {
    b->len = k;
    if (k) { /* s->buf is NULL until the first byte arrives */
      memcpy(b->data, s->buf, k);
      memmove(s->buf, s->buf + k, s->len - k);
      s->len -= k;
    }
    if (proa_future_set_result(f, b, free) != 0)
      free(b); /* not taken (the read was cancelled): still ours */
  }
  proa_future_unref(f);
  /* Reading resumes once the buffer is back under the limit. */
  if (s->paused && s->len <= s->limit && s->t) {
    s->paused = false;
    proa_transport_resume_reading(s->t);
  }
}

static void fail(proa_stream *s, int err, const char *message) {
  proa_future *f = s->reader;
  s->reader = NULL;
  s->kind = READ_NONE;
  proa_future_set_error(f, err, message);
  proa_future_unref(f);
}

/* Where sep starts in the buffer, or SIZE_MAX. */
static size_t find(const proa_stream *s) {
  size_t i;
  for (i = 0; i + s->seplen <= s->len; i++)
    if (memcmp(s->buf + i, s->sep, s->seplen) == 0)
      return i;
  return SIZE_MAX;
}

static void drop(proa_stream *s, size_t k) {
  if (!k)
    return;
  memmove(s->buf, s->buf + k, s->len - k);
  s->len -= k;
}

static void complete_until(proa_stream *s) {
  size_t at = find(s);
  char msg[96];
  if (at != SIZE_MAX) {
    size_t chunk = at + s->seplen;
    if (chunk <= s->limit) {
      take(s, chunk);
      return;
    }
    if (s->kind == READ_LINE)
      drop(s, chunk);
    fail(s, PROA_ELIMIT, "separator found, but the chunk exceeds the limit");
  } else if (s->len > s->limit) {
    if (s->kind == READ_LINE)
      drop(s, s->len);
    fail(s, PROA_ELIMIT, "separator not found within the limit");
  } else if (s->eof && s->kind == READ_LINE) {
    take(s, s->len); /* the partial last line */
  } else if (s->eof) {
    snprintf(msg, sizeof msg,
             "stream ended after %zu bytes without the "
             "separator",
             s->len);
    drop(s, s->len);
    fail(s, s->error ? s->error : PROA_EOF, msg);
  }
}

/* Completes the pending read if the buffer (or the end) allows. A read that
 * must wait for more data resumes reading, even past twice the limit. */
static void try_complete(proa_stream *s) {
  char msg[96];
  if (s->reader && proa_future_done(s->reader)) {
    /* The read was cancelled: what it would have taken stays buffered. */
    proa_future_unref(s->reader);
    s->reader = NULL;
    s->kind = READ_NONE;
  }
  if (s->reader && s->paused && s->t && !s->lost) {
    s->paused = false;
    proa_transport_resume_reading(s->t);
  }
  switch (s->kind) {
  case READ_SOME:
    if (s->len)
      take(s, s->len < s->n ? s->len : s->n);
    else if (s->error)
      fail(s, s->error, NULL);
    else if (s->eof)
      take(s, 0);
    break;
  case READ_EXACT:
    if (s->len >= s->n) {
      take(s, s->n);
    } else if (s->eof) {
      snprintf(msg, sizeof msg, "incomplete read: %zu of %zu bytes", s->len,
               s->n);
      drop(s, s->len);
      fail(s, s->error ? s->error : PROA_EOF, msg);
    }
    break;
  case READ_UNTIL:
  case READ_LINE:
    complete_until(s);
    break;
  default:
    break;
  }
}

/* ---- the protocol ---- */

static void on_made(void *self, proa_transport *t);

static void on_data(void *self, const void *data, size_t len) {
  proa_stream *s = self;
  if (s->len + len > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    unsigned char *grown;
    while (cap < s->len + len)
      cap *= 2;
    grown = realloc(s->buf, cap);
    if (!grown) {
      proa_transport_abort(s->t); /* cannot keep the data: say so */
      s->error = PROA_ENOMEM;
      return;
    }
    s->buf = grown;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, data, len);
  s->len += len;
  if (!s->paused && s->len > 2 * s->limit) {
    s->paused = true;
    proa_transport_pause_reading(s->t);
  }
  try_complete(s);
}

static bool on_eof(void *self) {
  proa_stream *s = self;
  s->eof = true;
  try_complete(s);
  return true; /* the writer may go on: half-close */
}

static void settle_waiters(proa_stream *s, bool all) {
  size_t i, kept = 0;
  for (i = 0; i < s->nwaiters; i++) {
    proa_future *f = s->waiters[i];
    if (f == s->closed && !all) {
      s->waiters[kept++] = f;
      continue;
    }
    if (s->error && !proa_future_done(f))
      proa_future_set_error(f, s->error, NULL);
    else if (!proa_future_done(f))
      proa_future_set_result(f, NULL, NULL);
    proa_future_unref(f);
  }
  s->nwaiters = kept;
}

static void on_lost(void *self, int error) {
  proa_stream *s = self;
  s->lost = true;
  s->eof = true;
  if (error)
    s->error = error;
  try_complete(s);
  s->write_paused = false;
  settle_waiters(s, true);
  if (s->closed && !proa_future_done(s->closed))
    proa_future_set_result(s->closed, NULL, NULL);
  proa_stream_unref(s); /* the protocol's reference */
}

static void on_pause(void *self) { ((proa_stream *)self)->write_paused = true; }

static void on_drained(void *arg) { settle_waiters(arg, false); }

static void on_resume(void *self) {
  proa_stream *s = self;
  s->write_paused = false;
  settle_waiters(s, false);
}

static const proa_protocol stream_protocol = {
    on_made, on_data, on_eof, on_lost, on_pause, on_resume, NULL, NULL};

/* ---- reading ---- */

static int start_read(proa_stream *s, enum read_kind kind, size_t n,
                      const void *sep, size_t seplen, proa_future **out) {
  int err;
  if (out)
    *out = NULL;
  if (!s || !out)
    return PROA_EINVAL;
  if (s->reader && !proa_future_done(s->reader))
    return PROA_EBUSY;
  if (s->reader) { /* a cancelled read */
    proa_future_unref(s->reader);
    s->reader = NULL;
    s->kind = READ_NONE;
  }
  err = proa_future_new(s->loop, out);
  if (err)
    return err;
  free(s->sep);
  s->sep = seplen ? malloc(seplen) : NULL;
  if (seplen && !s->sep) {
    proa_future_unref(*out);
    *out = NULL;
    return PROA_ENOMEM;
  }
  if (seplen)
    memcpy(s->sep, sep, seplen);
  s->seplen = seplen;
  s->kind = kind;
  s->n = n;
  s->reader = proa_future_ref(*out);
  try_complete(s);
  return 0;
}

int proa_stream_read(proa_stream *s, size_t n, proa_future **out) {
  if (out)
    *out = NULL;
  return n ? start_read(s, READ_SOME, n, NULL, 0, out) : PROA_EINVAL;
}

int proa_stream_readexactly(proa_stream *s, size_t n, proa_future **out) {
  return start_read(s, READ_EXACT, n, NULL, 0, out);
}

int proa_stream_readuntil(proa_stream *s, const void *sep, size_t seplen,
                          proa_future **out) {
  if (out)
    *out = NULL;
  if (!sep || !seplen)
    return PROA_EINVAL;
  return start_read(s, READ_UNTIL, 0, sep, seplen, out);
}

int proa_stream_readline(proa_stream *s, proa_future **out) {
  return start_read(s, READ_LINE, 0, "\n", 1, out);
}

bool proa_stream_at_eof(const proa_stream *s) { return s->eof && !s->len; }

/* ---- writing ---- */

int proa_stream_write(proa_stream *s, const void *data, size_t len) {
  if (!s)
    return PROA_EINVAL;
  if (s->lost)
    return s->error ? s->error : PROA_ECLOSED;
  return proa_transport_write(s->t, data, len);
}

static int add_waiter(proa_stream *s, proa_future *f) {
  proa_future **grown =
      realloc(s->waiters, (s->nwaiters + 1) * sizeof *s->waiters);
  if (!grown)
    return PROA_ENOMEM;
  s->waiters = grown;
  s->waiters[s->nwaiters++] = proa_future_ref(f);
  return 0;
}

/*
 * Over the high-water mark drain waits, even when pause_writing (which is
 * scheduled, never called from inside write) has not come yet.
 */
static bool must_wait(const proa_stream *s) {
  size_t high;
  proa_transport_get_write_buffer_limits(s->t, NULL, &high);
  return s->write_paused || proa_transport_get_write_buffer_size(s->t) > high;
}

int proa_stream_drain(proa_stream *s, proa_future **out) {
  int err;
  if (out)
    *out = NULL;
  if (!s || !out)
    return PROA_EINVAL;
  err = proa_future_new(s->loop, out);
  if (err)
    return err;
  if (s->lost && s->error)
    proa_future_set_error(*out, s->error, NULL);
  else if (s->lost || !must_wait(s))
    proa_future_set_result(*out, NULL, NULL);
  else if ((err = add_waiter(s, *out)) != 0) {
    proa_future_unref(*out);
    *out = NULL;
  } else {
    /* Settled by whichever comes first: this, or resume_writing. */
    proa__transport_when_drained(s->t, on_drained, s);
  }
  return err;
}

int proa_stream_write_eof(proa_stream *s) {
  if (!s)
    return PROA_EINVAL;
  return s->lost ? PROA_ECLOSED : proa_transport_write_eof(s->t);
}

void proa_stream_close(proa_stream *s) {
  if (s && s->t && !s->lost)
    proa_transport_close(s->t);
}

int proa_stream_wait_closed(proa_stream *s, proa_future **out) {
  int err;
  if (out)
    *out = NULL;
  if (!s || !out)
    return PROA_EINVAL;
  if (!s->closed) {
    err = proa_future_new(s->loop, &s->closed);
    if (err)
      return err;
    if (s->lost)
      proa_future_set_result(s->closed, NULL, NULL);
  }
  *out = proa_future_ref(s->closed);
  return 0;
}

proa_transport *proa_stream_transport(const proa_stream *s) { return s->t; }

/* ---- where a stream connects or listens ---- */

/* A host and port, a socket path or a pipe name, with the options of the
 * call that connects or listens there. */
typedef struct endpoint {
  const char *name;
  int port;
  const void *opts;
} endpoint;

/* create_connection and its kin, given the stream's protocol and self. */
typedef int (*connect_fn)(proa_loop *loop, const proa_protocol *protocol,
                          void *self, const endpoint *e, proa_future **out);

static int connect_tcp(proa_loop *loop, const proa_protocol *protocol,
                       void *self, const endpoint *e, proa_future **out) {
  return proa_create_connection(loop, protocol, self, e->name, e->port,
                                (const proa_connect_options *)e->opts, out);
}

static int connect_unix(proa_loop *loop, const proa_protocol *protocol,
                        void *self, const endpoint *e, proa_future **out) {
  return proa_create_unix_connection(loop, protocol, self, e->name,
                                     (const proa_unix_connect_options *)e->opts,
                                     out);
}

static int connect_pipe(proa_loop *loop, const proa_protocol *protocol,
                        void *self, const endpoint *e, proa_future **out) {
  return proa_create_pipe_connection(loop, protocol, self, e->name,
                                     (const proa_pipe_connect_options *)e->opts,
                                     out);
}

/* create_server and its kin; factory_arg goes with factory_free. */
typedef int (*serve_fn)(proa_loop *loop, proa_protocol_factory factory,
                        void *factory_arg, proa_free_fn factory_free,
                        const endpoint *e, proa_future **out);

static int serve_tcp(proa_loop *loop, proa_protocol_factory factory,
                     void *factory_arg, proa_free_fn factory_free,
                     const endpoint *e, proa_future **out) {
  return proa__create_server(loop, factory, factory_arg, factory_free, e->name,
                             e->port, (const proa_server_options *)e->opts,
                             out);
}

static int serve_unix(proa_loop *loop, proa_protocol_factory factory,
                      void *factory_arg, proa_free_fn factory_free,
                      const endpoint *e, proa_future **out) {
  return proa__create_unix_server(
      loop, factory, factory_arg, factory_free, e->name,
      (const proa_unix_server_options *)e->opts, out);
}

static int serve_pipe(proa_loop *loop, proa_protocol_factory factory,
                      void *factory_arg, proa_free_fn factory_free,
                      const endpoint *e, proa_future **out) {
  return proa__create_pipe_server(
      loop, factory, factory_arg, factory_free, e->name,
      (const proa_pipe_server_options *)e->opts, out);
}

/* ---- open_connection ---- */

typedef struct opening {
  proa_stream *s;
  proa_future *outer;
} opening;

static void on_connected(proa_future *f, void *arg) {
  opening *o = arg;
  int err = proa_future_error(f);
  if (err) {
    /* No connection_made, so no connection_lost: drop the protocol's. */
    proa_future_set_error(o->outer, err, proa_future_error_message(f));
    proa_stream_unref(o->s);
  } else if (proa_future_done(o->outer)) {
    proa_stream_close(o->s); /* the caller cancelled: nobody will use it */
  } else {
    /* Pending, so set_result takes the reference (future.h): it never
     * fails once it has, and freeing on an error would free it twice. */
    proa_future_set_result(o->outer, proa_stream_ref(o->s), release);
  }
  proa_future_unref(o->outer);
  proa_future_unref(f);
  free(o);
}

/* The loop closed while connecting: no connection_made will come. */
static void dropped(proa_future *f, void *arg) {
  opening *o = arg;
  proa_future_cancel(o->outer, "the event loop was closed");
  proa_stream_unref(o->s);
  proa_future_unref(o->outer);
  proa_future_unref(f);
  free(o);
}

static int open_stream(proa_loop *loop, connect_fn connect_with,
                       const endpoint *e, size_t limit, proa_future **out) {
  opening *o;
  proa_future *inner;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out)
    return PROA_EINVAL;
  o = calloc(1, sizeof *o);
  if (o)
    o->s = stream_new(loop, limit);
  if (!o || !o->s) {
    free(o);
    return PROA_ENOMEM;
  }
  err = connect_with(loop, &stream_protocol, o->s, e, &inner);
  if (!err)
    err = proa_future_new(loop, &o->outer);
  if (!err)
    err = proa__future_add_done_callback(inner, on_connected, dropped, o);
  if (err) {
    if (inner)
      proa_future_cancel(inner, NULL);
    proa_future_unref(inner);
    proa_future_unref(o->outer);
    proa_stream_unref(o->s);
    free(o);
    return err;
  }
  *out = proa_future_ref(o->outer);
  return 0;
}

int proa_open_connection(proa_loop *loop, const char *host, int port,
                         const proa_connect_options *opts, size_t limit,
                         proa_future **out) {
  endpoint e = {host, port, opts};
  return open_stream(loop, connect_tcp, &e, limit, out);
}

int proa_open_unix_connection(proa_loop *loop, const char *path,
                              const proa_unix_connect_options *opts,
                              size_t limit, proa_future **out) {
  endpoint e = {path, 0, opts};
  return open_stream(loop, connect_unix, &e, limit, out);
}

int proa_open_pipe_connection(proa_loop *loop, const char *name,
                              const proa_pipe_connect_options *opts,
                              size_t limit, proa_future **out) {
  endpoint e = {name, 0, opts};
  return open_stream(loop, connect_pipe, &e, limit, out);
}

/* ---- start_server ---- */

typedef struct serving {
  proa_loop *loop;
  proa_stream_handler handler;
  void *arg;
  size_t limit;
} serving;

static int handler_task(void *arg, void **result) {
  proa_stream *s = arg;
  int rc = s->handler(s, s->handler_arg);
  (void)result;
  proa_stream_close(s);
  proa_stream_unref(s); /* the task's reference */
  return rc;
}

static void on_made(void *self, proa_transport *t) {
  proa_stream *s = self;
  proa_future *task;
  s->t = proa_transport_ref(t);
  if (!s->handler)
    return; /* open_connection: the caller drives the stream */
  if (proa_create_task(s->loop, handler_task, proa_stream_ref(s), NULL,
                       &task) != 0) {
    proa_stream_unref(s);
    proa_transport_abort(t);
    return;
  }
  proa_future_unref(task); /* the task keeps itself alive */
}

static int make_stream(void *arg, const proa_protocol **protocol, void **self) {
  serving *sv = arg;
  proa_stream *s = stream_new(sv->loop, sv->limit);
  if (!s)
    return PROA_ENOMEM;
  s->handler = sv->handler;
  s->handler_arg = sv->arg;
  *protocol = &stream_protocol;
  *self = s;
  return 0;
}

static int start_stream_server(proa_loop *loop, proa_stream_handler handler,
                               void *arg, serve_fn serve, const endpoint *e,
                               size_t limit, proa_future **out) {
  serving *sv;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !handler || !out)
    return PROA_EINVAL;
  sv = malloc(sizeof *sv);
  if (!sv)
    return PROA_ENOMEM;
  sv->loop = loop; /* the server holds a reference to it */
  sv->handler = handler;
  sv->arg = arg;
  sv->limit = limit;
  err = serve(loop, make_stream, sv, free, e, out);
  if (err)
    free(sv);
  return err;
}

int proa_start_server(proa_loop *loop, proa_stream_handler handler, void *arg,
                      const char *host, int port,
                      const proa_server_options *opts, size_t limit,
                      proa_future **out) {
  endpoint e = {host, port, opts};
  return start_stream_server(loop, handler, arg, serve_tcp, &e, limit, out);
}

int proa_start_unix_server(proa_loop *loop, proa_stream_handler handler,
                           void *arg, const char *path,
                           const proa_unix_server_options *opts, size_t limit,
                           proa_future **out) {
  endpoint e = {path, 0, opts};
  return start_stream_server(loop, handler, arg, serve_unix, &e, limit, out);
}

int proa_start_pipe_server(proa_loop *loop, proa_stream_handler handler,
                           void *arg, const char *name,
                           const proa_pipe_server_options *opts, size_t limit,
                           proa_future **out) {
  endpoint e = {name, 0, opts};
  return start_stream_server(loop, handler, arg, serve_pipe, &e, limit, out);
}
