/* create_pipe_server / create_pipe_connection: one name for local IPC, a
 * named pipe on Windows and a Unix socket elsewhere (libuv's uv_pipe). */
#include <stdlib.h>
#include <string.h>

#include "local.h"
#include "transport.h"

/* Seconds between connection attempts while every instance is busy. */
#define BUSY_RETRY 0.01

/* ---- servers ---- */

static void server_release(void *s) { proa_server_unref(s); }

static int unix_server(proa_loop *loop, proa_protocol_factory factory,
                       void *factory_arg, proa_free_fn factory_free,
                       const char *path, const proa_pipe_server_options *o,
                       proa_future **out) {
  proa_unix_server_options u = PROA_UNIX_SERVER_OPTIONS_INIT;
  u.backlog = o->backlog ? o->backlog : 100;
  u.start_serving = o->start_serving;
  return proa__create_unix_server(loop, factory, factory_arg, factory_free,
                                  path, &u, out);
}

/* The backend's named-pipe listener under the common accept loop. Every
 * error goes through `waiter`, and factory_arg is released with it, as
 * with the other servers once their future exists. */
static void named_server_start(proa_loop *loop, proa_protocol_factory factory,
                               void *factory_arg, proa_free_fn factory_free,
                               const char *name,
                               const proa_pipe_server_options *o,
                               proa_future *waiter) {
  proa__pipe_listen_opts lo;
  proa__ioh *h;
  proa_server *s = NULL;
  int err;
  lo.instances = o->backlog ? o->backlog : 8;
  lo.security_descriptor = o->security_descriptor;
  err = loop->be_ops->pipe_listen(loop->backend, name, &lo, &h);
  if (!err && (err = proa__server_new(loop, factory, factory_arg, factory_free,
                                      h, &s)) != 0)
    proa__ioh_close(h);
  if (!err && o->start_serving)
    err = proa_server_start_serving(s);
  if (!err && proa_future_set_result(waiter, s, server_release) == 0)
    return;
  if (s) {
    proa_server_close(s);
    proa_server_unref(s); /* releases factory_arg */
  } else if (factory_free) {
    factory_free(factory_arg);
  }
  proa_future_set_error(waiter, err, NULL);
}

static int named_server(proa_loop *loop, proa_protocol_factory factory,
                        void *factory_arg, proa_free_fn factory_free,
                        const char *name, const proa_pipe_server_options *o,
                        proa_future **out) {
  int err;
  if (!loop->be_ops->pipe_listen)
    return PROA_ENOTSUP; /* this build's backend has no named pipes */
  err = proa__loop_check(loop, "proa_create_pipe_server");
  if (!err)
    err = proa_future_new(loop, out);
  if (!err)
    named_server_start(loop, factory, factory_arg, factory_free, name, o, *out);
  return err;
}

int proa__create_pipe_server(proa_loop *loop, proa_protocol_factory factory,
                             void *factory_arg, proa_free_fn factory_free,
                             const char *name,
                             const proa_pipe_server_options *opts,
                             proa_future **out) {
  proa_pipe_server_options o = PROA_PIPE_SERVER_OPTIONS_INIT;
  char full[PROA__PIPE_NAME_MAX];
  int kind;
  if (out)
    *out = NULL;
  if (!loop || !factory || !out || proa__options_read(&o, sizeof o, opts) ||
      o.backlog < 0)
    return PROA_EINVAL;
  if (o.ssl)
    return PROA_ENOTSUP;
  kind = proa__pipe_full_name(name, full, sizeof full);
  if (kind < 0)
    return kind;
  if (kind == PROA__PIPE_UNIX_SOCKET)
    return unix_server(loop, factory, factory_arg, factory_free, full, &o, out);
  return named_server(loop, factory, factory_arg, factory_free, full, &o, out);
}

int proa_create_pipe_server(proa_loop *loop, proa_protocol_factory factory,
                            void *factory_arg, const char *name,
                            const proa_pipe_server_options *opts,
                            proa_future **out) {
  return proa__create_pipe_server(loop, factory, factory_arg, NULL, name, opts,
                                  out);
}

/* ---- connections ---- */

/*
 * A client that retries while the server is busy: every named-pipe
 * instance taken (Windows: ERROR_PIPE_BUSY), or a Unix socket's backlog
 * full (Linux: EAGAIN), so that a burst of clients gets in on every OS.
 */
typedef struct dialer {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa_loop *loop;
  proa_future *waiter;
  proa_future *attempt; /* Unix: the connection being tried */
  const proa_protocol *proto;
  void *self;
  bool unix_socket;   /* NAME is a Unix socket path */
  double deadline;    /* loop time after which busy is final */
  proa_handle *timer; /* the next attempt */
  char name[PROA__PIPE_NAME_MAX];
} dialer;

static void on_waiter_done(proa_future *f, void *arg);
static void on_attempt(proa_future *f, void *arg);

static void dialer_free(dialer *d) {
  proa__resource_remove(d->loop, &d->res);
  proa_future_remove_done_callback(d->waiter, on_waiter_done, d);
  if (d->attempt) {
    void *t = NULL;
    proa_future_remove_done_callback(d->attempt, on_attempt, d);
    /* Pending: cancelled, it makes no connection. Done with a transport
     * that nobody was handed (the caller cancelled first): it goes. */
    if (!proa_future_cancel(d->attempt, NULL) &&
        proa_future_result(d->attempt, &t) == 0 && t)
      proa_transport_abort(t);
    proa_future_unref(d->attempt);
  }
  proa_handle_cancel(d->timer);
  proa_handle_unref(d->timer);
  proa_future_unref(d->waiter);
  free(d);
}

/* The caller cancelled its future: no more attempts. */
static void on_waiter_done(proa_future *f, void *arg) {
  (void)f;
  dialer_free(arg);
}

static void close_now(proa__resource *r) {
  dialer *d = (dialer *)(void *)r;
  proa_future_cancel(d->waiter, "the event loop was closed");
  dialer_free(d);
}

static void on_retry(void *arg);

/* Schedules another attempt at a busy server, unless busy_timeout has
 * passed: the last one is made at the deadline, never before it. */
static bool retry_later(dialer *d) {
  double left = d->deadline - proa_loop_time(d->loop);
  return left > 0 &&
         proa_call_later(d->loop, left < BUSY_RETRY ? left : BUSY_RETRY,
                         on_retry, d, &d->timer) == 0;
}

/* The dialer is done: the waiter gets `err` (0: it has its result). */
static void dial_end(dialer *d, int err, const char *message) {
  if (err == PROA_EAGAIN || err == PROA_EBUSY) {
    err = PROA_EBUSY;
    message = "the server stayed busy (every pipe instance taken, or its "
              "backlog full) for busy_timeout";
  }
  if (err)
    proa_future_set_error(d->waiter, err, message);
  dialer_free(d);
}

/* A Unix attempt ended: hand its transport over, or try again. */
static void on_attempt(proa_future *f, void *arg) {
  dialer *d = arg;
  void *t = NULL;
  int err = proa_future_result(f, &t);
  if (err == PROA_EAGAIN) { /* the backlog is full: nothing was made */
    proa_future_unref(d->attempt);
    d->attempt = NULL;
    if (!retry_later(d))
      dial_end(d, err, NULL);
    return;
  }
  if (!err) {
    if (proa_future_done(d->waiter)) /* the caller gave up: nobody wants it */
      proa_transport_abort(t);
    else /* the waiter's reference; setting a pending one cannot fail */
      proa_future_set_result(d->waiter, proa_transport_ref(t),
                             proa__transport_release);
    proa_future_unref(d->attempt);
    d->attempt = NULL; /* handed over or aborted */
    dialer_free(d);
    return;
  }
  /* d->attempt (f) is released by dial_end, after its message is copied. */
  dial_end(d, err, proa_future_error_message(f));
}

static int dial_unix(dialer *d) {
  proa_unix_connect_options u = PROA_UNIX_CONNECT_OPTIONS_INIT;
  int err = proa_create_unix_connection(d->loop, d->proto, d->self, d->name, &u,
                                        &d->attempt);
  if (!err &&
      (err = proa_future_add_done_callback(d->attempt, on_attempt, d)) != 0) {
    proa_future_cancel(d->attempt, NULL);
    proa_future_unref(d->attempt);
    d->attempt = NULL;
  }
  return err;
}

/* One attempt; the dialer is done (and freed) unless another is due. */
static void dial(dialer *d) {
  proa__ioh *h;
  int err;
  if (d->unix_socket) {
    if ((err = dial_unix(d)) != 0)
      dial_end(d, err, NULL);
    return;
  }
  err = d->loop->be_ops->pipe_connect(d->loop->backend, d->name, &h);
  if (err == PROA_EBUSY && retry_later(d))
    return;
  if (!err)
    err = proa__connection_start(d->loop, h, d->proto, d->self, d->waiter);
  dial_end(d, err, NULL);
}

static void on_retry(void *arg) {
  dialer *d = arg;
  proa_handle_unref(d->timer);
  d->timer = NULL;
  dial(d);
}

static int dialer_start(proa_loop *loop, const proa_protocol *protocol,
                        void *self, const char *name, bool unix_socket,
                        const proa_pipe_connect_options *o, proa_future **out) {
  dialer *d = NULL;
  int err;
  if (!unix_socket && !loop->be_ops->pipe_connect)
    return PROA_ENOTSUP; /* this build's backend has no named pipes */
  err = proa__loop_check(loop, "proa_create_pipe_connection");
  if (!err && !(d = calloc(1, sizeof *d)))
    err = PROA_ENOMEM;
  if (!err && (err = proa_future_new(loop, out)) != 0)
    free(d);
  if (err)
    return err;
  d->loop = loop;
  d->waiter = proa_future_ref(*out);
  d->proto = protocol;
  d->self = self;
  d->unix_socket = unix_socket;
  d->deadline = proa_loop_time(loop) + o->busy_timeout;
  /* proa__pipe_full_name made it shorter than the buffer. */
  memcpy(d->name, name, strlen(name) + 1);
  proa__resource_add(loop, &d->res, close_now);
  err = proa_future_add_done_callback(*out, on_waiter_done, d);
  if (err) {
    dialer_free(d);
    proa_future_unref(*out);
    *out = NULL;
    return err;
  }
  dial(d);
  return 0;
}

int proa_create_pipe_connection(proa_loop *loop, const proa_protocol *protocol,
                                void *self, const char *name,
                                const proa_pipe_connect_options *opts,
                                proa_future **out) {
  proa_pipe_connect_options o = PROA_PIPE_CONNECT_OPTIONS_INIT;
  char full[PROA__PIPE_NAME_MAX];
  int kind;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts) ||
      !(o.busy_timeout >= 0))
    return PROA_EINVAL;
  if (o.ssl || o.server_hostname)
    return PROA_ENOTSUP;
  kind = proa__pipe_full_name(name, full, sizeof full);
  if (kind < 0)
    return kind;
  return dialer_start(loop, protocol, self, full,
                      kind == PROA__PIPE_UNIX_SOCKET, &o, out);
}
