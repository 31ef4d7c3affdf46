/* create_connection: resolve, try each address (or race them), wrap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockets.h"
#include "transport.h"

typedef struct connector connector;

/* One connection attempt to one address. */
typedef struct attempt {
  proa__op op;
  connector *c;
  proa__ioh *sock;
  size_t index; /* into c->addrs */
  bool active;
} attempt;

struct connector {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa_loop *loop;
  proa_future *waiter; /* the caller's future */
  const proa_protocol *proto;
  void *self;
  proa_connect_options opts;
  char *host; /* copies of the caller's strings */
  char *local_host;
  int port;
  proa_future *lookup;       /* the getaddrinfo of the host, in progress */
  proa_future *local_lookup; /* that of local_host, when it is a name */
  bool have_remote;          /* addrs is filled in */
  proa_addrinfo *addrs;
  size_t naddrs, next;
  proa_sockaddr *locals; /* resolved local_host, if any */
  size_t nlocals;
  attempt *attempts; /* one per address */
  size_t active;
  proa__ioh *given;   /* the caller's socket for the first attempt */
  proa_handle *timer; /* happy eyeballs: starts the next attempt */
  bool done;
  int last_error;
  char *errors; /* "addr: ENAME; addr: ENAME" */
};

static void on_waiter_done(proa_future *f, void *arg);
static void on_resolved(proa_future *f, void *arg);
static void on_local_resolved(proa_future *f, void *arg);

/* Gives up a lookup still in flight: its result is no longer wanted. */
static void drop_lookup(proa_future **lookup, proa_done_callback cb,
                        connector *c) {
  if (!*lookup)
    return;
  proa_future_remove_done_callback(*lookup, cb, c);
  proa_future_cancel(*lookup, NULL);
  proa_future_unref(*lookup);
  *lookup = NULL;
}

static void connector_free(connector *c) {
  proa__resource_remove(c->loop, &c->res);
  proa_future_remove_done_callback(c->waiter, on_waiter_done, c);
  proa_handle_cancel(c->timer);
  proa_handle_unref(c->timer);
  drop_lookup(&c->lookup, on_resolved, c);
  drop_lookup(&c->local_lookup, on_local_resolved, c);
  if (c->given)
    proa__ioh_close(c->given);
  proa_future_unref(c->waiter);
  free(c->host);
  free(c->local_host);
  free(c->addrs);
  free(c->locals);
  free(c->attempts);
  free(c->errors);
  free(c);
}

/* Frees the connector once it is done and no attempt is in flight. */
static void maybe_free(connector *c) {
  if (c->done && c->active == 0 && !c->lookup && !c->local_lookup)
    connector_free(c);
}

/* Adds "<what> <addr>: ENAME" to the message; `what` says which call. */
static void record(connector *c, const char *what, const proa_sockaddr *addr,
                   int err) {
  char where[112] = "?"; /* an IP address and port, or a socket path */
  size_t old = c->errors ? strlen(c->errors) : 0;
  char *grown = realloc(c->errors, old + sizeof where + 64);
  c->last_error = err;
  if (!grown)
    return; /* the code still says what happened */
  c->errors = grown;
  if (addr)
    proa_sockaddr_format(addr, where, sizeof where);
  snprintf(c->errors + old, sizeof where + 64, "%s%s %s: %s", old ? "; " : "",
           what, where, proa_err_name(err));
}

static void record_error(connector *c, const proa_sockaddr *addr, int err) {
  record(c, "connect to", addr, err);
}

static void fail(connector *c, int err, const char *message) {
  if (c->done)
    return;
  c->done = true;
  proa_future_set_error(c->waiter, err, message);
}

static void start_next(connector *c);

/* Every address was tried and none connected. */
static void maybe_all_failed(connector *c) {
  if (c->done || c->active || c->next < c->naddrs)
    return;
  /* The common error, else the last one; the message names them all. */
  fail(c, c->last_error ? c->last_error : PROA_EAI_NODATA, c->errors);
}

static void attempt_end(attempt *a) {
  a->active = false;
  a->c->active--;
  if (a->sock) {
    proa__ioh_close(a->sock);
    a->sock = NULL;
  }
}

/* Cancels the attempts still in flight (another one won, or the caller
 * gave up); each ends through its own completion. */
static void cancel_others(connector *c, attempt *winner) {
  size_t i;
  for (i = 0; i < c->naddrs; i++)
    if (c->attempts[i].active && &c->attempts[i] != winner)
      proa__ioh_cancel(c->attempts[i].sock, &c->attempts[i].op);
  proa_handle_cancel(c->timer);
}

int proa__connection_start(proa_loop *loop, proa__ioh *h,
                           const proa_protocol *protocol, void *self,
                           proa_future *waiter) {
  proa_transport *t;
  int err = proa__transport_new(loop, h, protocol, self, NULL, &t);
  if (err) {
    proa__ioh_close(h);
    return err;
  }
  err = proa__transport_start(t, waiter);
  if (err)
    proa_transport_unref(t); /* it never started: drop it, handle too */
  return err;
}

static void connected(connector *c, attempt *a) {
  proa__ioh *sock = a->sock;
  int err;
  c->done = true;
  cancel_others(c, a);
  a->sock = NULL; /* the transport's now, or closed */
  err = proa__connection_start(c->loop, sock, c->proto, c->self, c->waiter);
  if (err)
    proa_future_set_error(c->waiter, err, NULL);
  attempt_end(a);
}

static void on_connect(proa__op *op) {
  attempt *a = (attempt *)(void *)op;
  connector *c = a->c;
  /* The caller may have cancelled with on_waiter_done not run yet: then
   * no transport is built for a connection nobody will use. */
  if (op->result == 0 && !c->done && proa_future_done(c->waiter))
    c->done = true;
  if (op->result == 0 && !c->done) {
    connected(c, a);
  } else {
    if (op->result != PROA_ECANCELED || !c->done)
      record_error(c, &c->addrs[a->index].addr,
                   op->result ? (int)op->result : PROA_ECANCELED);
    attempt_end(a);
    if (!c->done) {
      /* The next address need not wait for the stagger timer. */
      proa_handle_cancel(c->timer);
      proa_handle_unref(c->timer);
      c->timer = NULL;
      start_next(c);
    }
  }
  maybe_free(c);
}

/*
 * Binds to the first local address of the socket's family that it can
 * have, as asyncio does: a bind failure moves on to the next one, and
 * each failure is recorded naming the local address. Returns 0 or the
 * error of the last bind (PROA_EADDRNOTAVAIL when none is of the family).
 */
static int bind_local(connector *c, proa__ioh *sock, const proa_addrinfo *ai) {
  size_t i;
  int err = 0;
  bool tried = false;
  for (i = 0; i < c->nlocals; i++) {
    const proa_sockaddr *local = &c->locals[i];
    if (proa_sockaddr_family(local) != ai->family)
      continue;
    tried = true;
    err = proa__socket_bind(sock, local);
    if (!err)
      return 0;
    record(c, "bind on", local, err);
  }
  if (!tried) {
    err = PROA_EADDRNOTAVAIL;
    record(c,
           ai->family == PROA_AF_INET6 ? "no IPv6 local address to connect to"
                                       : "no IPv4 local address to connect to",
           &ai->addr, err);
  }
  return err;
}

/* Opens, binds and starts connecting; errors are recorded, not raised. */
static bool attempt_start(connector *c, size_t index) {
  attempt *a = &c->attempts[index];
  const proa_addrinfo *ai = &c->addrs[index];
  int err;
  a->c = c;
  a->index = index;
  a->op.complete = on_connect;
  a->sock = c->given;
  c->given = NULL;
  err = a->sock ? 0
                : proa__socket_open(c->loop, ai->family, PROA_SOCK_STREAM,
                                    ai->protocol, &a->sock);
  if (err) {
    record_error(c, &ai->addr, err);
    a->sock = NULL;
    return false;
  }
  if (c->local_host || c->opts.local_port)
    err = bind_local(c, a->sock, ai); /* records its own errors */
  if (err) {
    c->last_error = err;
    proa__ioh_close(a->sock);
    a->sock = NULL;
    return false;
  }
  if (ai->family != PROA_AF_UNIX)
    proa__socket_setopt(a->sock, IPPROTO_TCP, TCP_NODELAY, 1);
  a->active = true;
  c->active++;
  proa__socket_connect(a->sock, &a->op, &ai->addr);
  return true;
}

static void on_stagger(void *arg) {
  connector *c = arg;
  proa_handle_unref(c->timer);
  c->timer = NULL;
  start_next(c);
}

/* Starts attempts until one is in flight; with happy eyeballs, arms the
 * timer that starts the next one while this one is still trying. */
static void start_next(connector *c) {
  while (!c->done && c->next < c->naddrs) {
    if (attempt_start(c, c->next++))
      break;
  }
  if (!c->done && c->next < c->naddrs && c->active &&
      c->opts.happy_eyeballs_delay > 0 && !c->timer)
    proa_call_later(c->loop, c->opts.happy_eyeballs_delay, on_stagger, c,
                    &c->timer);
  maybe_all_failed(c);
}

/* Reorders addresses as RFC 8305 asks: `first` of the first family, then
 * the two families alternate. */
static void interleave(proa_addrinfo *addrs, size_t n, int first) {
  proa_addrinfo *out = malloc(n * sizeof *out);
  size_t i, k = 0, pos[2] = {0, 0};
  int fam[2];
  if (!out)
    return; /* keep the resolver's order */
  fam[0] = n ? addrs[0].family : 0;
  fam[1] = fam[0] == PROA_AF_INET ? PROA_AF_INET6 : PROA_AF_INET;
  /* turn 0 takes `first` of family 0, then each turn takes one. */
  for (i = 0; k < n; i++) {
    int side = (int)(i & 1), take = i == 0 ? first : 1;
    while (take > 0 && pos[side] < n) {
      proa_addrinfo *ai = &addrs[pos[side]++];
      if (ai->family == fam[side]) {
        out[k++] = *ai;
        take--;
      }
    }
    if (pos[0] >= n && pos[1] >= n)
      break;
  }
  memcpy(addrs, out, k * sizeof *out);
  free(out);
}

static void addresses_ready(connector *c) {
  int first = c->opts.interleave;
  if (!first && c->opts.happy_eyeballs_delay > 0)
    first = 1;
  if (first > 0)
    interleave(c->addrs, c->naddrs, first);
  c->attempts = calloc(c->naddrs, sizeof *c->attempts);
  if (!c->attempts) {
    fail(c, PROA_ENOMEM, NULL);
    return;
  }
  start_next(c);
}

static void on_resolved(proa_future *f, void *arg) {
  connector *c = arg;
  proa_addrinfo_list *list;
  int err = proa_future_result(f, (void **)&list);
  proa_future_unref(c->lookup);
  c->lookup = NULL;
  if (!err && !c->done) {
    c->addrs = malloc(list->count * sizeof *c->addrs);
    if (c->addrs) {
      memcpy(c->addrs, list->items, list->count * sizeof *c->addrs);
      c->naddrs = list->count;
      c->have_remote = true;
      if (!c->local_lookup)
        addresses_ready(c);
    } else {
      fail(c, PROA_ENOMEM, NULL);
    }
  } else if (err) {
    fail(c, err, NULL);
  }
  maybe_free(c);
}

/* The loop is closing mid-connect: cancel the attempts. Each ends through
 * its completion while the loop drains the backend, and the last one frees
 * the connector. */
static void close_now(proa__resource *r) {
  connector *c = (connector *)(void *)r;
  if (!c->done)
    proa_future_cancel(c->waiter, "the event loop was closed");
  c->done = true;
  if (c->active)
    cancel_others(c, NULL);
  else
    connector_free(c); /* drops the lookups too */
}

/* The caller cancelled its future: stop whatever is in flight. */
static void on_waiter_done(proa_future *f, void *arg) {
  connector *c = arg;
  (void)f;
  if (!proa_future_cancelled(c->waiter) || c->done)
    return;
  c->done = true;
  cancel_others(c, NULL);
  if (c->lookup)
    proa_future_cancel(c->lookup, NULL);
  if (c->local_lookup)
    proa_future_cancel(c->local_lookup, NULL);
  maybe_free(c);
}

static void on_local_resolved(proa_future *f, void *arg) {
  connector *c = arg;
  proa_addrinfo_list *list;
  size_t i;
  int err = proa_future_result(f, (void **)&list);
  proa_future_unref(c->local_lookup);
  c->local_lookup = NULL;
  if (!err && !c->done) {
    c->locals = malloc(list->count * sizeof *c->locals);
    err = c->locals ? 0 : PROA_ENOMEM;
    for (i = 0; !err && i < list->count; i++)
      c->locals[c->nlocals++] = list->items[i].addr;
  }
  if (err)
    fail(c, err, "could not resolve the local address");
  else if (c->have_remote && !c->done)
    addresses_ready(c);
  maybe_free(c);
}

/* local_host (a name, a numeric address, or NULL for the wildcard) and
 * local_port; a name is resolved alongside the host. */
static int resolve_local(connector *c) {
  static const char *const wildcards[2] = {"0.0.0.0", "::"};
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  size_t i, n = c->local_host ? 1 : 2;
  char service[8];
  int err;
  c->locals = calloc(n, sizeof *c->locals);
  if (!c->locals)
    return PROA_ENOMEM;
  for (i = 0; i < n; i++) {
    const char *ip = c->local_host ? c->local_host : wildcards[i];
    if (proa_sockaddr_from_ip(&c->locals[i], ip, c->opts.local_port) != 0)
      break;
  }
  if (i == n) {
    c->nlocals = n;
    return 0;
  }
  free(c->locals);
  c->locals = NULL;
  hints.family = c->opts.family;
  hints.socktype = PROA_SOCK_STREAM;
  hints.flags = c->opts.flags | PROA_AI_PASSIVE;
  snprintf(service, sizeof service, "%d", c->opts.local_port);
  err = proa_getaddrinfo(c->loop, c->local_host, service, &hints,
                         &c->local_lookup);
  if (!err)
    err = proa_future_add_done_callback(c->local_lookup, on_local_resolved, c);
  return err;
}

/* A numeric host needs no lookup (and no thread hop). */
static int resolve(connector *c) {
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  proa_addrinfo ai;
  char service[8];
  int err;
  memset(&ai, 0, sizeof ai);
  if (proa_sockaddr_from_ip(&ai.addr, c->host, c->port) == 0) {
    ai.family = proa_sockaddr_family(&ai.addr);
    ai.socktype = PROA_SOCK_STREAM;
    if (c->opts.family && c->opts.family != ai.family) {
      /* A lookup error, so it comes through the future like the others. */
      fail(c, PROA_EAI_FAMILY, "the host is not of the requested family");
      return 0;
    }
    c->addrs = malloc(sizeof ai);
    if (!c->addrs)
      return PROA_ENOMEM;
    c->addrs[0] = ai;
    c->naddrs = 1;
    c->have_remote = true;
    if (!c->local_lookup)
      addresses_ready(c);
    return 0;
  }
  hints.family = c->opts.family;
  hints.socktype = PROA_SOCK_STREAM;
  hints.protocol = c->opts.proto;
  hints.flags = c->opts.flags;
  snprintf(service, sizeof service, "%d", c->port);
  err = proa_getaddrinfo(c->loop, c->host, service, &hints, &c->lookup);
  if (!err)
    err = proa_future_add_done_callback(c->lookup, on_resolved, c);
  return err;
}

int proa__wrap_connected(proa_loop *loop, const proa_protocol *protocol,
                         void *self, intptr_t sock, int family,
                         proa_future *waiter) {
  proa__ioh *s;
  int err = proa__os_socket_type(sock);
  if (err < 0)
    return err;
  if (err != PROA_SOCK_STREAM)
    return PROA_EINVAL; /* asyncio: "A Stream Socket was expected" */
  if (family && (err = proa__os_socket_family(sock)) != family)
    return err < 0 ? err : PROA_EINVAL;
  err = proa__ioh_adopt(loop, sock, &s);
  if (err)
    return err;
  return proa__connection_start(loop, s, protocol, self, waiter);
}

static int check_options(const char *host, int port,
                         const proa_connect_options *o) {
  if (o->ssl || o->server_hostname)
    return PROA_ENOTSUP;
  /* A given socket comes with nothing that would make or find one. */
  if (o->sock != -1)
    return host || port || o->local_host || o->local_port || o->family ||
                   o->proto || o->flags
               ? PROA_EINVAL
               : 0;
  if (!host || port < 0 || port > 65535 || o->local_port < 0 ||
      o->local_port > 65535 || o->happy_eyeballs_delay < 0 || o->interleave < 0)
    return PROA_EINVAL;
  return 0;
}

/* A connector for the caller's future `waiter`, registered with the loop. */
static connector *connector_new(proa_loop *loop, const proa_protocol *protocol,
                                void *self, const proa_connect_options *o,
                                proa_future *waiter) {
  connector *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->loop = loop;
  proa__resource_add(loop, &c->res, close_now);
  c->waiter = proa_future_ref(waiter);
  c->proto = protocol;
  c->self = self;
  c->opts = *o;
  return c;
}

int proa__connect_socket(proa_loop *loop, const proa_protocol *protocol,
                         void *self, proa__ioh *sock, const proa_sockaddr *addr,
                         proa_future **out) {
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  connector *c = NULL;
  int err = proa_future_new(loop, out);
  if (!err && !(c = connector_new(loop, protocol, self, &o, *out)))
    err = PROA_ENOMEM;
  if (!c) {
    proa__ioh_close(sock);
    proa_future_unref(*out);
    *out = NULL;
    return err;
  }
  c->given = sock;
  c->addrs = calloc(1, sizeof *c->addrs);
  err = c->addrs ? proa_future_add_done_callback(*out, on_waiter_done, c)
                 : PROA_ENOMEM;
  if (!err) {
    c->addrs[0].family = proa_sockaddr_family(addr);
    c->addrs[0].socktype = PROA_SOCK_STREAM;
    c->addrs[0].addr = *addr;
    c->naddrs = 1;
    c->have_remote = true;
    addresses_ready(c);
  } else {
    c->done = true;
    proa_future_unref(*out);
    *out = NULL;
  }
  maybe_free(c);
  return err;
}

int proa_create_connection(proa_loop *loop, const proa_protocol *protocol,
                           void *self, const char *host, int port,
                           const proa_connect_options *opts,
                           proa_future **out) {
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  connector *c;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  err = check_options(host, port, &o);
  if (!err)
    err = proa__loop_check(loop, "proa_create_connection");
  if (!err)
    err = proa_future_new(loop, out);
  if (err)
    return err;
  if (o.sock != -1) {
    err = proa__wrap_connected(loop, protocol, self, o.sock, 0, *out);
  } else if (!(c = connector_new(loop, protocol, self, &o, *out))) {
    err = PROA_ENOMEM;
  } else {
    c->port = port;
    c->host = proa__strdup(host);
    c->local_host = proa__strdup(o.local_host);
    err = !c->host || (o.local_host && !c->local_host) ? PROA_ENOMEM : 0;
    if (!err && (o.local_host || o.local_port))
      err = resolve_local(c);
    if (!err)
      err = proa_future_add_done_callback(*out, on_waiter_done, c);
    if (!err)
      err = resolve(c);
    if (err)
      c->done = true;
    /* Every attempt may have failed already (a numeric host whose socket or
     * bind failed): then nothing else will free the connector. */
    maybe_free(c);
  }
  if (err) {
    proa_future_unref(*out);
    *out = NULL;
  }
  return err;
}
