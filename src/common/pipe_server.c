/* create_pipe_server and create_pipe_connection: local IPC by one name. */
#include <stdlib.h>

#include "transport.h"

/*
 * NAME means a Windows named pipe or a Unix socket (include/proa/pipe.h).
 * This file holds the named-pipe path, over the backend's pipe_listen and
 * pipe_connect; the unix-sockets branch adds the Unix path (a Unix socket
 * at NAME). Until then a backend without named pipes gives PROA_ENOTSUP.
 */

/* Seconds between tries while every instance is busy. */
#define BUSY_RETRY 0.01

/* The errors that a call reports at once rather than through its future:
 * the name or the options were wrong, or memory ran out. */
static bool immediate(int err) {
  return err == PROA_EINVAL || err == PROA_ENAMETOOLONG || err == PROA_ENOMEM;
}

static void server_release(void *s) { proa_server_unref(s); }

/* What both calls begin with, once their arguments are checked: the loop,
 * the backend's named pipes, and the future in *out. */
static int begin(proa_loop *loop, const char *what, bool has_named_pipes,
                 proa_future **out) {
  int err = proa__loop_check(loop, what);
  if (!err && !has_named_pipes)
    err = PROA_ENOTSUP; /* Unix sockets: the unix-sockets branch */
  return err ? err : proa_future_new(loop, out);
}

/* What both end with: a call that fails leaves the caller no future. */
static int end(int err, proa_future **out) {
  if (err && *out) {
    proa_future_unref(*out);
    *out = NULL;
  }
  return err;
}

/* ---- servers ---- */

/* The backend's listener, and a server on it. An immediate error is
 * returned; any other (a name in use: PROA_EADDRINUSE) fails `waiter`. */
static int named_pipe_server(proa_loop *loop, proa_protocol_factory factory,
                             void *factory_arg, const char *name,
                             const proa_pipe_server_options *o,
                             proa_future *waiter) {
  proa__pipe_listen_opts lo;
  proa__ioh *h;
  proa_server *s;
  int err;
  lo.instances = o->backlog;
  lo.security_descriptor = o->security_descriptor;
  err = loop->be_ops->pipe_listen(loop->backend, name, &lo, &h);
  if (immediate(err))
    return err;
  if (!err)
    err = proa__server_new_on(loop, factory, factory_arg, h, o->start_serving,
                              &s);
  if (err)
    proa_future_set_error(waiter, err, NULL);
  else
    proa_future_set_result(waiter, s, server_release);
  return 0;
}

int proa_create_pipe_server(proa_loop *loop, proa_protocol_factory factory,
                            void *factory_arg, const char *name,
                            const proa_pipe_server_options *opts,
                            proa_future **out) {
  proa_pipe_server_options o = PROA_PIPE_SERVER_OPTIONS_INIT;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !factory || !out || proa__options_read(&o, sizeof o, opts) ||
      o.backlog < 0)
    return PROA_EINVAL;
  if (o.ssl)
    return PROA_ENOTSUP;
  err = begin(loop, "proa_create_pipe_server",
              loop->be_ops->pipe_listen != NULL, out);
  if (!err)
    err = named_pipe_server(loop, factory, factory_arg, name, &o, *out);
  return end(err, out);
}

/* ---- connections ---- */

/* A client waiting for a free instance (every one was busy). */
typedef struct pipe_connector {
  proa__resource res; /* first: the loop closes it if it is still waiting */
  proa_loop *loop;
  proa_future *waiter; /* the caller's */
  const proa_protocol *proto;
  void *self;
  char *name;
  double deadline; /* loop time after which "busy" is the answer */
  proa_handle *timer;
} pipe_connector;

static void on_waiter_done(proa_future *f, void *arg);

static void connector_free(pipe_connector *c) {
  proa__resource_remove(c->loop, &c->res);
  proa_future_remove_done_callback(c->waiter, on_waiter_done, c);
  proa_handle_cancel(c->timer);
  proa_handle_unref(c->timer);
  proa_future_unref(c->waiter);
  free(c->name);
  free(c);
}

/* One try: 0 with the transport started on `waiter`, or the error. */
static int named_pipe_connect(proa_loop *loop, const char *name,
                              const proa_protocol *proto, void *self,
                              proa_future *waiter) {
  proa__ioh *h;
  int err = loop->be_ops->pipe_connect(loop->backend, name, &h);
  return err ? err : proa__connection_start(loop, h, proto, self, waiter);
}

static void on_retry(void *arg);

/* Tries again a little later, the last time at the deadline; false once
 * the deadline has passed. */
static bool retry_later(pipe_connector *c) {
  double left = c->deadline - proa_loop_time(c->loop);
  if (left <= 0)
    return false;
  return proa_call_later(c->loop, left < BUSY_RETRY ? left : BUSY_RETRY,
                         on_retry, c, &c->timer) == 0;
}

static void on_retry(void *arg) {
  pipe_connector *c = arg;
  int err;
  proa_handle_unref(c->timer);
  c->timer = NULL;
  if (proa_future_done(c->waiter)) { /* cancelled: on_waiter_done is due */
    connector_free(c);
    return;
  }
  err = named_pipe_connect(c->loop, c->name, c->proto, c->self, c->waiter);
  if (err == PROA_EBUSY && retry_later(c))
    return;
  if (err)
    proa_future_set_error(
        c->waiter, err,
        err == PROA_EBUSY ? "every instance of the pipe stayed busy" : NULL);
  connector_free(c);
}

/* The caller cancelled its future: stop trying. */
static void on_waiter_done(proa_future *f, void *arg) {
  (void)f;
  connector_free(arg);
}

/* The loop is closing while the client waits. */
static void close_now(proa__resource *r) {
  pipe_connector *c = (pipe_connector *)(void *)r;
  proa_future_cancel(c->waiter, "the event loop was closed");
  connector_free(c);
}

/* Every instance is busy: keep trying for busy_timeout seconds. */
static int wait_for_instance(proa_loop *loop, const char *name,
                             const proa_protocol *proto, void *self,
                             double busy_timeout, proa_future *waiter) {
  pipe_connector *c = calloc(1, sizeof *c);
  if (!c || !(c->name = proa__strdup(name))) {
    free(c);
    return PROA_ENOMEM;
  }
  c->loop = loop;
  c->waiter = proa_future_ref(waiter);
  c->proto = proto;
  c->self = self;
  c->deadline = proa_loop_time(loop) + busy_timeout;
  proa__resource_add(loop, &c->res, close_now);
  if (!retry_later(c)) {
    proa_future_set_error(waiter, PROA_EBUSY,
                          "every instance of the pipe was busy");
    connector_free(c);
    return 0;
  }
  if (proa_future_add_done_callback(waiter, on_waiter_done, c) != 0) {
    connector_free(c);
    return PROA_ENOMEM;
  }
  return 0;
}

/* The try made in the caller's call: an immediate error is returned, a
 * busy pipe is tried again later, any other error fails `waiter`. */
static int first_try(proa_loop *loop, const char *name,
                     const proa_protocol *proto, void *self,
                     double busy_timeout, proa_future *waiter) {
  int err = named_pipe_connect(loop, name, proto, self, waiter);
  if (err == PROA_EBUSY)
    return wait_for_instance(loop, name, proto, self, busy_timeout, waiter);
  if (err && !immediate(err)) {
    proa_future_set_error(waiter, err, NULL); /* no server, refused, ... */
    return 0;
  }
  return err;
}

int proa_create_pipe_connection(proa_loop *loop, const proa_protocol *protocol,
                                void *self, const char *name,
                                const proa_pipe_connect_options *opts,
                                proa_future **out) {
  proa_pipe_connect_options o = PROA_PIPE_CONNECT_OPTIONS_INIT;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts) ||
      !(o.busy_timeout >= 0))
    return PROA_EINVAL;
  if (o.ssl || o.server_hostname)
    return PROA_ENOTSUP;
  err = begin(loop, "proa_create_pipe_connection",
              loop->be_ops->pipe_connect != NULL, out);
  if (!err)
    err = first_try(loop, name, protocol, self, o.busy_timeout, *out);
  return end(err, out);
}

/* ---- who is at the other end ---- */

/* A named pipe tells the peer's pid only. */
static int pipe_peer_cred(proa__ioh *h, proa_peer_cred *out) {
  return proa__ioh_peer_pid(h, &out->pid);
}

int proa_transport_peer_cred(const proa_transport *t, proa_peer_cred *out) {
  proa__ioh *h;
  int err;
  if (!t || !out)
    return PROA_EINVAL;
  out->pid = out->uid = out->gid = -1;
  err = proa__transport_ioh(t, &h);
  if (err)
    return err;
  if (h->kind == PROA__IOH_PIPE)
    return pipe_peer_cred(h, out);
  return PROA_ENOTSUP; /* sockets: SO_PEERCRED, the unix-sockets branch */
}
