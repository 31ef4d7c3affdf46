/* create_unix_server / create_unix_connection: AF_UNIX stream sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local.h"
#include "sockets.h"
#include "transport.h"

/* An AF_UNIX stream socket; PROA_ENOTSUP where the OS has no AF_UNIX
 * (Windows before 10 1803, Wine 8: socket() fails with WSAEAFNOSUPPORT). */
static int open_unix(proa_loop *loop, proa__ioh **out) {
  int err = proa__socket_open(loop, PROA_AF_UNIX, PROA_SOCK_STREAM, 0, out);
  return err == PROA_EAFNOSUPPORT || err == PROA_EPROTONOSUPPORT ? PROA_ENOTSUP
                                                                 : err;
}

/* ---- cleanup_socket ---- */

/* The socket file a server made, and which file it was. */
typedef struct cleanup {
  char *path;
  proa__file_id id;
} cleanup;

static void cleanup_free(void *arg) {
  cleanup *cl = arg;
  free(cl->path);
  free(cl);
}

/* Removes the file only if it is still the one the server made: another
 * server may have replaced it since (asyncio 3.13 compares st_ino). */
static void cleanup_run(void *arg) {
  cleanup *cl = arg;
  proa__file_id now;
  if (proa__socket_file_id(cl->path, &now) == 0 && now.dev == cl->id.dev &&
      now.ino == cl->id.ino)
    proa__file_remove(cl->path);
}

/* Remembers the file at `path` for `s`; nothing when it is not there. */
static int cleanup_arm(proa_server *s, const char *path) {
  cleanup *cl = calloc(1, sizeof *cl);
  if (!cl || !(cl->path = proa__strdup(path))) {
    free(cl);
    return PROA_ENOMEM;
  }
  if (proa__socket_file_id(path, &cl->id) != 0) {
    cleanup_free(cl); /* gone already, or never a file: nothing to clean */
    return 0;
  }
  proa__server_on_close(s, cleanup_run, cl, cleanup_free);
  return 0;
}

/* ---- create_unix_server ---- */

/* A server being made; it waits only while a stale file is probed. */
typedef struct unix_setup {
  proa__resource res; /* first: the loop closes it during a probe */
  proa_loop *loop;
  proa_future *waiter;
  proa_protocol_factory factory;
  void *factory_arg;
  proa_free_fn factory_free; /* ours until the server takes it */
  proa_unix_server_options opts;
  proa_sockaddr addr;
  char *path;       /* the socket file; NULL for an abstract name */
  proa__ioh *sock;  /* the listener */
  proa__ioh *probe; /* connects to see whether the file's server lives */
  proa__op probe_op;
  bool dropped; /* the loop closed during the probe */
} unix_setup;

static void setup_free(unix_setup *st) {
  if (st->sock)
    proa__ioh_close(st->sock);
  if (st->factory_free)
    st->factory_free(st->factory_arg);
  proa_future_unref(st->waiter);
  free(st->path);
  free(st);
}

static int make_server(unix_setup *st, proa_server **out) {
  int err = proa__server_new(st->loop, st->factory, st->factory_arg,
                             st->factory_free, st->sock, out);
  if (err)
    return err;
  st->sock = NULL; /* the server's now, as is the factory's argument */
  st->factory_free = NULL;
  if (st->opts.cleanup_socket && st->path)
    err = cleanup_arm(*out, st->path);
  if (!err && st->opts.start_serving)
    err = proa_server_start_serving(*out);
  if (err) {
    proa_server_close(*out);
    proa_server_unref(*out);
  }
  return err;
}

static void server_release(void *s) { proa_server_unref(s); }

/* Completes the caller's future with the listening server, or `err`. */
static void settle(unix_setup *st, int err) {
  char why[256], where[112] = "the given socket";
  proa_server *s;
  if (!err)
    err = make_server(st, &s);
  if (!err) {
    if (proa_future_set_result(st->waiter, s, server_release) != 0) {
      proa_server_close(s); /* the caller cancelled meanwhile */
      proa_server_unref(s);
    }
  } else {
    if (st->addr.len)
      proa_sockaddr_format(&st->addr, where, sizeof where);
    snprintf(why, sizeof why,
             "error while attempting to bind on address '%s': %s", where,
             proa_strerror(err));
    proa_future_set_error(st->waiter, err, why);
  }
  setup_free(st);
}

static void on_probe(proa__op *op);

/* The loop is closing while a probe is out: cancel it; its completion,
 * which the loop waits for, frees the setup. */
static void close_now(proa__resource *r) {
  unix_setup *st = (unix_setup *)(void *)r;
  st->dropped = true;
  proa_future_cancel(st->waiter, "the event loop was closed");
  proa__ioh_cancel(st->probe, &st->probe_op);
}

/* Someone has the path: a connect tells a live server from a stale file. */
static void probe_start(unix_setup *st) {
  int err = open_unix(st->loop, &st->probe);
  if (err) { /* EMFILE, ENOMEM: say that, not what the probe would have */
    settle(st, err);
    return;
  }
  proa__resource_add(st->loop, &st->res, close_now);
  st->probe_op.complete = on_probe;
  proa__socket_connect(st->probe, &st->probe_op, &st->addr);
}

static int bind_listen(unix_setup *st) {
  int err = proa__socket_bind(st->sock, &st->addr);
  return err ? err : proa__socket_listen(st->sock, st->opts.backlog);
}

/* Nobody accepts on the file: replace it, if it is a socket file. */
static void replace_stale(unix_setup *st) {
  proa__file_id id;
  int err = proa__socket_file_id(st->path, &id);
  if (!err)
    err = proa__file_remove(st->path);
  if (err == PROA_ENOENT)
    err = 0; /* gone meanwhile: the path is free */
  settle(st, err ? PROA_EADDRINUSE : bind_listen(st));
}

static void on_probe(proa__op *op) {
  unix_setup *st = PROA__CONTAINER(op, unix_setup, probe_op);
  intptr_t result = op->result;
  proa__ioh_close(st->probe);
  st->probe = NULL;
  proa__resource_remove(st->loop, &st->res);
  if (st->dropped || proa_future_done(st->waiter))
    setup_free(st); /* the loop closed, or the caller cancelled */
  else if (result == PROA_ECONNREFUSED || result == PROA_ENOENT)
    replace_stale(st);
  else
    settle(st, PROA_EADDRINUSE); /* it accepted: a live server */
}

static void start_path(unix_setup *st) {
  int err = bind_listen(st);
  if (err == PROA_EADDRINUSE && st->path)
    probe_start(st);
  else
    settle(st, err);
}

/* The caller's socket; its file, if any, is cleaned up like our own. */
static int adopt(unix_setup *st) {
  proa_sockaddr name;
  char path[112];
  int err = proa__adopt_listener(st->loop, st->opts.sock, PROA_AF_UNIX,
                                 st->opts.backlog, &st->sock);
  if (err)
    return err;
  if (proa__socket_name(st->sock, &name, false) == 0 &&
      proa_sockaddr_path(&name, path, sizeof path) > 0 && path[0] != '@' &&
      !(st->path = proa__strdup(path)))
    return PROA_ENOMEM;
  return 0;
}

static int check_server_args(proa_loop *loop, proa_protocol_factory factory,
                             const char *path, proa_unix_server_options *o,
                             proa_sockaddr *addr) {
  if (!loop || !factory || (path != NULL) == (o->sock != -1))
    return PROA_EINVAL;
  if (o->ssl)
    return PROA_ENOTSUP;
  if (o->backlog <= 0)
    o->backlog = 100;
  return path ? proa_sockaddr_from_path(addr, path) : 0;
}

int proa__create_unix_server(proa_loop *loop, proa_protocol_factory factory,
                             void *factory_arg, proa_free_fn factory_free,
                             const char *path,
                             const proa_unix_server_options *opts,
                             proa_future **out) {
  proa_unix_server_options o = PROA_UNIX_SERVER_OPTIONS_INIT;
  unix_setup *st;
  int err;
  if (out)
    *out = NULL;
  if (!out || proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  st = calloc(1, sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  st->loop = loop;
  st->opts = o;
  err = check_server_args(loop, factory, path, &st->opts, &st->addr);
  if (!err)
    err = proa__loop_check(loop, "proa_create_unix_server");
  if (!err && path && path[0] != '@' && !(st->path = proa__strdup(path)))
    err = PROA_ENOMEM;
  if (!err)
    err = path ? open_unix(loop, &st->sock) : adopt(st);
  if (!err)
    err = proa_future_new(loop, &st->waiter);
  if (err) {
    if (st->sock && st->opts.sock != -1) { /* refused: the caller's, open */
      proa__ioh_detach(st->sock);
      st->sock = NULL;
    }
    setup_free(st); /* factory_free is not set: the caller keeps its arg */
    return err;
  }
  st->factory = factory;
  st->factory_arg = factory_arg;
  st->factory_free = factory_free;
  *out = proa_future_ref(st->waiter);
  if (path)
    start_path(st);
  else
    settle(st, 0);
  return 0;
}

int proa_create_unix_server(proa_loop *loop, proa_protocol_factory factory,
                            void *factory_arg, const char *path,
                            const proa_unix_server_options *opts,
                            proa_future **out) {
  return proa__create_unix_server(loop, factory, factory_arg, NULL, path, opts,
                                  out);
}

/* ---- create_unix_connection ---- */

static int wrap_given(proa_loop *loop, const proa_protocol *protocol,
                      void *self, intptr_t sock, proa_future **out) {
  int err = proa_future_new(loop, out);
  if (!err)
    err = proa__wrap_connected(loop, protocol, self, sock, PROA_AF_UNIX, *out);
  if (err) {
    proa_future_unref(*out);
    *out = NULL;
  }
  return err;
}

int proa_create_unix_connection(proa_loop *loop, const proa_protocol *protocol,
                                void *self, const char *path,
                                const proa_unix_connect_options *opts,
                                proa_future **out) {
  proa_unix_connect_options o = PROA_UNIX_CONNECT_OPTIONS_INIT;
  proa_sockaddr addr;
  proa__ioh *sock;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts) ||
      (path != NULL) == (o.sock != -1))
    return PROA_EINVAL;
  if (o.ssl || o.server_hostname)
    return PROA_ENOTSUP;
  err = proa__loop_check(loop, "proa_create_unix_connection");
  if (!err && o.sock != -1)
    return wrap_given(loop, protocol, self, o.sock, out);
  if (!err)
    err = proa_sockaddr_from_path(&addr, path);
  if (!err)
    err = open_unix(loop, &sock);
  return err ? err
             : proa__connect_socket(loop, protocol, self, sock, &addr, out);
}
