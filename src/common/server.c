/* create_server and proa_server: listening sockets that accept transports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockets.h"
#include "transport.h"

#define MAX_ACCEPTS 8       /* accepts in flight per listener, at most */
#define ACCEPT_BACKOFF 0.25 /* seconds to pause after EMFILE and friends */

typedef struct listener listener;

/* One accept operation and the listener it belongs to. */
typedef struct accept_slot {
  proa__accept_op aop; /* first: the op's address is the slot's */
  listener *l;
  bool busy;
} accept_slot;

struct listener {
  proa_server *server;
  proa__ioh *sock; /* NULL once closed */
  accept_slot slots[MAX_ACCEPTS];
};

struct proa_server {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa__atomic_int refs;
  proa_loop *loop;
  proa_protocol_factory factory;
  void *factory_arg;
  proa_free_fn factory_free; /* releases factory_arg with the server */
  listener *listeners;
  size_t nlisteners;
  size_t open_listeners; /* sockets not yet closed */
  proa__list clients;    /* through proa__transport_server_link */
  size_t nclients;
  proa_future **waiters; /* wait_closed futures */
  size_t nwaiters;
  proa_handle *backoff;
  /* Runs once when the listeners close (a Unix server's cleanup_socket);
   * its argument goes with the server. */
  proa_callback on_close;
  void *on_close_arg;
  proa_free_fn on_close_free;
  bool registered; /* in the loop's resources */
  bool nodelay;    /* TCP: TCP_NODELAY on each accepted connection */
  int backlog;
  bool serving;
  bool closed;
};

proa_server *proa_server_ref(proa_server *s) {
  proa__atomic_add(&s->refs, 1);
  return s;
}

void proa_server_unref(proa_server *s) {
  if (!s || proa__atomic_add(&s->refs, -1) != 0)
    return;
  if (s->factory_free)
    s->factory_free(s->factory_arg);
  if (s->on_close_free)
    s->on_close_free(s->on_close_arg);
  free(s->listeners);
  free(s->waiters);
  proa_loop_unref(s->loop);
  free(s);
}

static void server_release(void *s) { proa_server_unref(s); }

static void on_accept(proa__op *op);
static void close_now(proa__resource *r);

/* ---- wait_closed ---- */

static void maybe_closed(proa_server *s) {
  size_t i;
  if (!s->closed || s->open_listeners || s->nclients)
    return;
  for (i = 0; i < s->nwaiters; i++) {
    proa_future_set_result(s->waiters[i], NULL, NULL);
    proa_future_unref(s->waiters[i]);
  }
  s->nwaiters = 0;
}

int proa_server_wait_closed(proa_server *s, proa_future **out) {
  proa_future **grown;
  int err;
  if (!s || !out)
    return PROA_EINVAL;
  err = proa_future_new(s->loop, out);
  if (err)
    return err;
  grown = realloc(s->waiters, (s->nwaiters + 1) * sizeof *grown);
  if (!grown) {
    proa_future_unref(*out);
    *out = NULL;
    return PROA_ENOMEM;
  }
  s->waiters = grown;
  s->waiters[s->nwaiters++] = proa_future_ref(*out);
  maybe_closed(s);
  return 0;
}

/* ---- accepting ---- */

/* Each accept in flight holds a reference: the server's memory holds the
 * op until its completion has been seen. */
static void accept_submit(listener *l) {
  int i, max;
  if (!l->sock)
    return;
  max = proa__socket_accept_max(l->sock);
  for (i = 0; i < max && i < MAX_ACCEPTS; i++) {
    accept_slot *slot = &l->slots[i];
    if (!l->sock || !l->server->serving || l->server->backoff)
      return;
    if (slot->busy)
      continue;
    slot->busy = true;
    slot->l = l;
    slot->aop.op.complete = on_accept;
    proa_server_ref(l->server);
    proa__socket_accept(l->sock, &slot->aop);
  }
}

/* The server is a loop resource while it listens. */
static void update_resource(proa_server *s) {
  bool want = s->open_listeners > 0;
  if (want && !s->registered)
    proa__resource_add(s->loop, &s->res, close_now);
  else if (!want && s->registered)
    proa__resource_remove(s->loop, &s->res);
  s->registered = want;
}

/*
 * Closes the listening socket at once, as asyncio does, so that a connect
 * made right after proa_server_close() is refused. Its accepts in flight
 * are cancelled first (the contract allows closing a handle whose ops are
 * all cancelled); their completions still arrive and find the listener
 * closed (on_accept), each holding the server until then.
 */
static void listener_close(listener *l) {
  int i;
  for (i = 0; i < MAX_ACCEPTS; i++)
    if (l->slots[i].busy)
      proa__ioh_cancel(l->sock, &l->slots[i].aop.op);
  proa__ioh_close(l->sock);
  l->sock = NULL;
  l->server->open_listeners--;
}

/* Closes every listener still open. */
static void close_listeners(proa_server *s) {
  size_t i, closed = 0;
  proa_server_ref(s); /* the last listener may hold the last reference */
  for (i = 0; i < s->nlisteners; i++) {
    if (s->listeners[i].sock) {
      listener_close(&s->listeners[i]);
      closed++;
    }
  }
  update_resource(s);
  if (closed && s->on_close) {
    proa_callback fn = s->on_close;
    s->on_close = NULL;
    fn(s->on_close_arg);
  }
  maybe_closed(s);
  while (closed-- > 0)
    proa_server_unref(s); /* each open listener held one */
  proa_server_unref(s);
}

/* The loop is closing with the server listening: close the listeners; the
 * loop waits for the cancelled accepts' completions. */
/* Stops serving for good: no back-off pending, the listeners closed. */
static void shut(proa_server *s) {
  s->closed = true;
  s->serving = false;
  proa_handle_cancel(s->backoff);
  proa_handle_unref(s->backoff);
  s->backoff = NULL;
  close_listeners(s);
}

static void close_now(proa__resource *r) {
  proa_server *s = (proa_server *)(void *)r;
  s->registered = false; /* the loop removed it */
  shut(s);
}

static void new_connection(proa_server *s, proa__ioh *sock) {
  const proa_protocol *proto = NULL;
  void *self = NULL;
  proa_transport *t;
  int err = s->factory(s->factory_arg, &proto, &self);
  if (!err)
    err = proa__transport_new(s->loop, sock, proto, self, s, &t);
  if (err) {
    proa__ioh_close(sock);
    proa__report(s->loop, err, "server could not set up a new connection");
    return;
  }
  if (s->nodelay)
    proa__socket_setopt(sock, IPPROTO_TCP, TCP_NODELAY, 1);
  err = proa__transport_start(t, NULL);
  if (err) {
    /* Nothing was scheduled: drop it (and its socket) here. */
    proa_transport_unref(t);
    proa__report(s->loop, err, "server could not start a new connection");
    return;
  }
  proa__list_push(&s->clients, proa__transport_server_link(t));
  s->nclients++;
  proa_server_ref(s); /* each client holds one until it is lost */
}

void proa__server_connection_lost(proa_server *s, proa_transport *t) {
  proa__list_remove(&s->clients, proa__transport_server_link(t));
  s->nclients--;
  maybe_closed(s);
  proa_server_unref(s);
}

static void end_backoff(void *arg) {
  proa_server *s = arg;
  size_t i;
  proa_handle_unref(s->backoff);
  s->backoff = NULL;
  for (i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].sock)
      accept_submit(&s->listeners[i]);
}

/* Out of descriptors or memory, or worse: say so, pause, then go on. */
static void back_off(proa_server *s, int err) {
  proa__report(s->loop, err,
               "server could not accept a connection; retrying in %.2f s",
               ACCEPT_BACKOFF);
  if (s->closed)
    return; /* the exception handler closed it: nothing to resume */
  if (!s->backoff &&
      proa_call_later(s->loop, ACCEPT_BACKOFF, end_backoff, s, &s->backoff)) {
    /* Without a timer to resume, retrying now would spin: stop. */
    proa__report(s->loop, PROA_ENOMEM,
                 "server stopped accepting: no timer to resume with");
    proa_server_close(s);
  }
}

/* Errors that concern one connection only: accepting simply goes on.
 * Linux's accept() passes on the network errors of the new connection
 * (accept(2) lists them: treat them like EAGAIN). */
static bool transient_error(intptr_t err) {
  return err == PROA_ECONNABORTED || err == PROA_ECONNRESET ||
         err == PROA_EAGAIN || err == PROA_EINTR || err == PROA_EPROTO ||
         err == PROA_ETIMEDOUT || err == PROA_ENETDOWN ||
         err == PROA_ENOPROTOOPT || err == PROA_EHOSTDOWN ||
         err == PROA_EHOSTUNREACH || err == PROA_ENETUNREACH ||
         err == PROA_ENOTSUP;
}

static void on_accept(proa__op *op) {
  accept_slot *slot = (accept_slot *)(void *)op;
  listener *l = slot->l;
  proa_server *s = l->server;
  slot->busy = false;
  if (!l->sock) { /* closed since: the accept was cancelled, or raced */
    if (op->result == 0)
      proa__ioh_close(slot->aop.accepted);
    proa_server_unref(s); /* the accept's reference */
    return;
  }
  /* The accept's reference covers the factory and the exception handler,
   * which may close the server and drop the user's reference below. */
  if (op->result == 0)
    new_connection(s, slot->aop.accepted);
  else if (op->result != PROA_ECANCELED && !transient_error(op->result))
    back_off(s, (int)op->result); /* EMFILE and the like: never spin */
  accept_submit(l); /* nothing when the listener closed meanwhile */
  proa_server_unref(s);
}

int proa_server_start_serving(proa_server *s) {
  size_t i;
  if (!s)
    return PROA_EINVAL;
  if (s->closed)
    return PROA_ECLOSED;
  if (s->serving)
    return 0;
  s->serving = true;
  for (i = 0; i < s->nlisteners; i++)
    accept_submit(&s->listeners[i]);
  return 0;
}

bool proa_server_is_serving(const proa_server *s) { return s->serving; }

void proa_server_close(proa_server *s) {
  if (s && !s->closed)
    shut(s);
}

static void for_each_client(proa_server *s, void (*fn)(proa_transport *)) {
  proa__list_node *n = s->clients.head, *next;
  /* Closing a client only schedules its removal, so the list holds. */
  for (; n; n = next) {
    next = n->next;
    fn(proa__transport_of_server_link(n));
  }
}

void proa_server_close_clients(proa_server *s) {
  for_each_client(s, proa_transport_close);
}

void proa_server_abort_clients(proa_server *s) {
  for_each_client(s, proa_transport_abort);
}

size_t proa_server_socket_count(const proa_server *s) {
  return s->closed ? 0 : s->nlisteners;
}

int proa_server_sockname(const proa_server *s, size_t i, proa_sockaddr *out) {
  if (!s || !out || i >= proa_server_socket_count(s))
    return PROA_EINVAL;
  if (s->listeners[i].sock->kind != PROA__IOH_SOCKET)
    return PROA_ENOTSUP; /* a named pipe has no socket address */
  return proa__socket_name(s->listeners[i].sock, out, false);
}

intptr_t proa_server_socket(const proa_server *s, size_t i) {
  if (!s || i >= proa_server_socket_count(s))
    return -1;
  return proa__ioh_os(s->listeners[i].sock);
}

/* ---- create_server ---- */

/* A create_server call waiting for its host lookups. */
typedef struct setup {
  proa_server *s;
  proa_future *waiter;
  proa_server_options opts;
  int port;
  proa_sockaddr *addrs; /* every address to listen on */
  size_t naddrs;
  size_t lookups; /* getaddrinfo calls still running */
  int error;
  bool wildcard; /* no host given: skip families the OS lacks */
} setup;

static int add_addr(setup *st, const proa_sockaddr *a) {
  size_t i;
  proa_sockaddr *grown;
  for (i = 0; i < st->naddrs; i++)
    if (st->addrs[i].len == a->len &&
        memcmp(st->addrs[i].storage, a->storage, (size_t)a->len) == 0)
      return 0; /* listed twice by the resolver */
  grown = realloc(st->addrs, (st->naddrs + 1) * sizeof *grown);
  if (!grown)
    return PROA_ENOMEM;
  st->addrs = grown;
  st->addrs[st->naddrs++] = *a;
  return 0;
}

static int set_listener_options(setup *st, proa__ioh *sock, int family) {
  int err = 0;
#ifdef _WIN32
  /* SO_REUSEADDR on Windows lets another process steal the port. */
  bool reuse_addr = st->opts.reuse_address > 0;
#else
  bool reuse_addr = st->opts.reuse_address != 0;
#endif
  if (reuse_addr)
    err = proa__socket_setopt(sock, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!err && st->opts.reuse_port > 0) {
#ifdef SO_REUSEPORT
    err = proa__socket_setopt(sock, SOL_SOCKET, SO_REUSEPORT, 1);
#else
    err = PROA_ENOTSUP;
#endif
  }
  /* Separate IPv4 and IPv6 listeners, as asyncio does. */
  if (!err && family == PROA_AF_INET6)
    err = proa__socket_setopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  return err;
}

/* Opens, binds and listens on one address; on failure says where. */
static int open_listener(setup *st, const proa_sockaddr *a, listener *l,
                         char *why, size_t whysize) {
  int family = proa_sockaddr_family(a), err;
  char where[64] = "?";
  err = proa__socket_open(st->s->loop, family, PROA_SOCK_STREAM, 0, &l->sock);
  if (err)
    return err;
  err = set_listener_options(st, l->sock, family);
  if (!err)
    err = proa__socket_bind(l->sock, a);
  if (!err)
    err = proa__socket_listen(l->sock, st->opts.backlog);
  if (err) {
    proa_sockaddr_format(a, where, sizeof where);
    snprintf(why, whysize, "error while attempting to bind on address %s: %s",
             where, proa_strerror(err));
    proa__ioh_close(l->sock);
    l->sock = NULL;
  }
  return err;
}

static void add_listener(proa_server *s, listener *l) {
  l->server = s;
  s->open_listeners++;
  update_resource(s);
  proa_server_ref(s); /* each open listener holds one */
}

/* All lookups are in: listen everywhere, or nowhere. */
static void setup_finish(setup *st) {
  proa_server *s = st->s;
  char why[160] = "";
  size_t i;
  int err = st->error;
  /* An adopted socket (opts.sock) is already listening. */
  if (!err && !s->listeners && !proa_future_done(st->waiter)) {
    s->listeners = calloc(st->naddrs ? st->naddrs : 1, sizeof *s->listeners);
    err = s->listeners ? 0 : PROA_ENOMEM;
    for (i = 0; !err && i < st->naddrs; i++) {
      listener *l = &s->listeners[s->nlisteners];
      err = open_listener(st, &st->addrs[i], l, why, sizeof why);
      if (err == PROA_EAFNOSUPPORT && st->wildcard)
        err = 0; /* this OS has no IPv6 (or IPv4): listen on the rest */
      else if (!err) {
        add_listener(s, l);
        s->nlisteners++;
      }
    }
    if (!err && !s->nlisteners)
      err = PROA_EADDRNOTAVAIL;
  }
  if (err) {
    close_listeners(s);
    s->closed = true;
    proa_future_set_error(st->waiter, err, why[0] ? why : NULL);
  } else if (!proa_future_done(st->waiter)) {
    if (st->opts.start_serving)
      proa_server_start_serving(s);
    proa_future_set_result(st->waiter, proa_server_ref(s), server_release);
  } else {
    proa_server_close(s); /* the caller cancelled */
  }
  proa_server_unref(s);
  proa_future_unref(st->waiter);
  free(st->addrs);
  free(st);
}

static void on_lookup(proa_future *f, void *arg) {
  setup *st = arg;
  proa_addrinfo_list *list;
  size_t i;
  int err = proa_future_result(f, (void **)&list);
  for (i = 0; !err && i < list->count; i++)
    err = add_addr(st, &list->items[i].addr);
  if (err && !st->error)
    st->error = err;
  proa_future_unref(f);
  if (--st->lookups == 0)
    setup_finish(st);
}

/* The loop closed during the lookup: give up without opening anything. */
static void lookup_dropped(proa_future *f, void *arg) {
  setup *st = arg;
  if (!st->error)
    st->error = PROA_ECLOSED;
  proa_future_unref(f);
  if (--st->lookups == 0)
    setup_finish(st);
}

/* A numeric host is added at once; a name goes to the resolver. */
static int add_host(setup *st, const char *host) {
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  proa_sockaddr a;
  proa_future *f;
  char service[8];
  int err;
  if (proa_sockaddr_from_ip(&a, host, st->port) == 0) {
    if (st->opts.family && proa_sockaddr_family(&a) != st->opts.family)
      return PROA_EAI_FAMILY;
    return add_addr(st, &a);
  }
  hints.family = st->opts.family;
  hints.socktype = PROA_SOCK_STREAM;
  hints.flags = st->opts.flags | PROA_AI_PASSIVE;
  snprintf(service, sizeof service, "%d", st->port);
  err = proa_getaddrinfo(st->s->loop, host, service, &hints, &f);
  if (!err) {
    err = proa__future_add_done_callback(f, on_lookup, lookup_dropped, st);
    if (err)
      proa_future_unref(f);
    else
      st->lookups++;
  }
  return err;
}

/* Every interface, each family the caller allows (asyncio's host None or
 * ""): families the OS lacks are skipped. */
static int add_wildcards(setup *st) {
  int err = 0;
  st->wildcard = true;
  if (st->opts.family != PROA_AF_INET6)
    err = add_host(st, "0.0.0.0");
  if (!err && st->opts.family != PROA_AF_INET)
    err = add_host(st, "::");
  return err;
}

static int add_hosts(setup *st, const char *host) {
  const char *const *h;
  int err = 0;
  if (st->opts.hosts) {
    for (h = st->opts.hosts; *h && !err; h++)
      err = **h ? add_host(st, *h) : add_wildcards(st);
    return err;
  }
  return host && *host ? add_host(st, host) : add_wildcards(st);
}

/* Makes `sock` the server's one listener. */
static int single_listener(proa_server *s, proa__ioh *sock) {
  s->listeners = calloc(1, sizeof *s->listeners);
  if (!s->listeners)
    return PROA_ENOMEM;
  s->listeners[0].sock = sock;
  add_listener(s, &s->listeners[0]);
  s->nlisteners = 1;
  return 0;
}

int proa__adopt_listener(proa_loop *loop, intptr_t sock, int family,
                         int backlog, proa__ioh **out) {
  int err, type = proa__os_socket_type(sock);
  *out = NULL;
  if (type < 0)
    return type;
  if (type != PROA_SOCK_STREAM)
    return PROA_EINVAL; /* asyncio: "A Stream Socket was expected" */
  if (family && (err = proa__os_socket_family(sock)) != family)
    return err < 0 ? err : PROA_EINVAL;
  err = proa__os_listen(sock, backlog);
  return err ? err : proa__ioh_adopt(loop, sock, out);
}

/* The caller's socket: checked and set listening before it is adopted,
 * so that a refused socket stays the caller's, open. */
static int adopt_listener(setup *st) {
  proa__ioh *sock;
  int err = proa__adopt_listener(st->s->loop, st->opts.sock, 0,
                                 st->opts.backlog, &sock);
  if (!err && (err = single_listener(st->s, sock)) != 0)
    proa__ioh_detach(sock); /* refused: the caller's again, open */
  return err;
}

static proa_server *server_alloc(proa_loop *loop, proa_protocol_factory factory,
                                 void *factory_arg) {
  proa_server *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->refs = 1;
  s->loop = proa_loop_ref(loop);
  s->factory = factory;
  s->factory_arg = factory_arg;
  return s;
}

int proa__server_new(proa_loop *loop, proa_protocol_factory factory,
                     void *factory_arg, proa_free_fn factory_free,
                     proa__ioh *sock, proa_server **out) {
  proa_server *s = server_alloc(loop, factory, factory_arg);
  int err = s ? single_listener(s, sock) : PROA_ENOMEM;
  *out = NULL;
  if (err) {
    proa_server_unref(s);
    return err;
  }
  s->factory_free = factory_free;
  *out = s;
  return 0;
}

void proa__server_on_close(proa_server *s, proa_callback fn, void *arg,
                           proa_free_fn arg_free) {
  s->on_close = fn;
  s->on_close_arg = arg;
  s->on_close_free = arg_free;
}

int proa_create_server(proa_loop *loop, proa_protocol_factory factory,
                       void *factory_arg, const char *host, int port,
                       const proa_server_options *opts, proa_future **out) {
  return proa__create_server(loop, factory, factory_arg, NULL, host, port, opts,
                             out);
}

int proa__create_server(proa_loop *loop, proa_protocol_factory factory,
                        void *factory_arg, proa_free_fn factory_free,
                        const char *host, int port,
                        const proa_server_options *opts, proa_future **out) {
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  setup *st;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !factory || !out || port < 0 || port > 65535 ||
      proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  /* As asyncio: a given socket comes with nothing that would make one. */
  if (o.sock != -1 && ((host && *host) || o.hosts || port || o.family ||
                       o.flags || o.reuse_port > 0))
    return PROA_EINVAL;
  if (o.ssl)
    return PROA_ENOTSUP;
  err = proa__loop_check(loop, "proa_create_server");
  if (err)
    return err;
  st = calloc(1, sizeof *st);
  if (!st || !(st->s = server_alloc(loop, factory, factory_arg))) {
    free(st);
    return PROA_ENOMEM;
  }
  st->s->nodelay = true;
  st->opts = o;
  st->port = port;
  if (st->opts.backlog <= 0)
    st->opts.backlog = 100;
  err = proa_future_new(loop, &st->waiter);
  if (!err) {
    st->s->factory_free = factory_free; /* the server owns it from here */
    *out = proa_future_ref(st->waiter);
    st->lookups = 1; /* held until every host is handed out */
    if (o.sock != -1)
      st->error = adopt_listener(st);
    else
      st->error = add_hosts(st, host);
    if (--st->lookups == 0)
      setup_finish(st);
    return 0;
  }
  proa_server_unref(st->s);
  free(st);
  return err;
}
