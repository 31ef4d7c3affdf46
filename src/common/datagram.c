/* The datagram transport and create_datagram_endpoint, for every backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "sockets.h"

#define RECVS_PER_WAKE 32 /* datagrams read per readiness, at most */
#define MAX_DATAGRAM 65536

/* A datagram waiting for the socket to take it; its bytes follow the
 * header in the same block (no flexible array member: MSVC's C4200). */
typedef struct dgram {
  struct dgram *next;
  proa_sockaddr addr;
  bool has_addr;
  size_t len;
} dgram;

static char *dgram_data(dgram *d) { return (char *)(d + 1); }

struct proa_datagram {
  proa__channel ch; /* first: lifetime, ops, flow control, closing */
  const proa_datagram_protocol *proto;
  void *self;
  bool connected;
  /* allow_broadcast with a remote address: the socket is not connected
   * (asyncio), but sendto without an address goes here. */
  bool has_remote;
  proa_sockaddr remote;
  dgram *qhead, *qtail;
  size_t qsize; /* bytes queued */
};

static proa_datagram *of(proa__channel *ch) {
  return (proa_datagram *)(void *)ch;
}

static void queue_clear(proa_datagram *t) {
  while (t->qhead) {
    dgram *d = t->qhead;
    t->qhead = d->next;
    free(d);
  }
  t->qtail = NULL;
  t->qsize = 0;
}

/* ---- the channel class ---- */

static size_t buffered(const proa__channel *ch) {
  return ((const proa_datagram *)(const void *)ch)->qsize;
}

/* Drops the queue now; a datagram being sent stays until its op ends. */
static void drop_queue(proa__channel *ch) {
  proa_datagram *t = of(ch);
  dgram *head = ch->write_pending ? t->qhead : NULL;
  if (head) {
    t->qhead = head->next;
    head->next = NULL;
  }
  queue_clear(t);
  t->qhead = t->qtail = head;
}

static void made(proa__channel *ch) {
  proa_datagram *t = of(ch);
  if (t->proto && t->proto->connection_made)
    t->proto->connection_made(t->self, t);
}

static void destroy(proa__channel *ch) { queue_clear(of(ch)); }

/* Waits for a datagram; recv_some then takes each with its sender. */
static void submit_read(proa__channel *ch) {
  proa__ioh_wait_readable(ch->sock, &ch->read_op.op);
}

static void release(void *t) { proa_datagram_unref(t); }

static const proa__channel_class datagram_class = {buffered,
                                                   drop_queue,
                                                   made,
                                                   NULL,
                                                   destroy,
                                                   submit_read,
                                                   0 /* the channel is first */,
                                                   release};

proa_datagram *proa_datagram_ref(proa_datagram *t) {
  proa__channel_ref(&t->ch);
  return t;
}

void proa_datagram_unref(proa_datagram *t) {
  if (t)
    proa__channel_unref(&t->ch);
}

proa_loop *proa_datagram_loop(const proa_datagram *t) { return t->ch.loop; }

/* ---- receiving ---- */

static char *read_buffer(proa_loop *loop) {
  if (!loop->read_buf) {
    loop->read_buf = malloc(MAX_DATAGRAM);
    if (loop->read_buf)
      loop->read_buf_size = MAX_DATAGRAM;
  }
  return loop->read_buf;
}

static void report(proa_datagram *t, int error) {
  if (t->proto && t->proto->error_received)
    t->proto->error_received(t->self, error);
}

/* ICMP news and truncation: the endpoint itself is fine. */
static bool soft_error(intptr_t err) {
  return err == PROA_ECONNREFUSED || err == PROA_ECONNRESET ||
         err == PROA_EHOSTUNREACH || err == PROA_ENETUNREACH ||
         err == PROA_EHOSTDOWN || err == PROA_ENETRESET ||
         err == PROA_EMSGSIZE || err == PROA_ETIMEDOUT || err == PROA_EAGAIN;
}

/* Reports an error; one that is not ICMP news means the socket itself is
 * broken, and waiting again would fail the same way forever: give up. */
static void receive_error(proa_datagram *t, int err) {
  report(t, err);
  if (!soft_error(err))
    proa__channel_abort(&t->ch, err);
}

/* Drains a burst: several datagrams per readiness, not one round each. */
static void recv_some(proa_datagram *t) {
  int i;
  for (i = 0; i < RECVS_PER_WAKE && !t->ch.closing; i++) {
    proa_sockaddr from;
    char *buf = read_buffer(t->ch.loop);
    intptr_t n;
    if (!buf) {
      report(t, PROA_ENOMEM);
      return;
    }
    memset(&from, 0, sizeof from);
    n = proa__socket_try_recvfrom(t->ch.sock, buf, t->ch.loop->read_buf_size,
                                  &from);
    if (n == PROA_EAGAIN)
      return;
    if (n < 0)
      receive_error(t, (int)n); /* truncated, ICMP news, or worse */
    else if (t->proto && t->proto->datagram_received)
      t->proto->datagram_received(t->self, buf, (size_t)n, &from);
  }
}

static void on_read(proa__op *op) {
  proa_datagram *t = of(proa__channel_of_read(op));
  t->ch.read_pending = false;
  if (op->result < 0 && op->result != PROA_ECANCELED)
    receive_error(t, (int)op->result);
  if (!t->ch.closing)
    recv_some(t);
  proa__channel_read_submit(&t->ch);
  proa__channel_maybe_finish(&t->ch);
}

/* ---- sending ---- */

static void write_submit(proa_datagram *t) {
  dgram *d = t->qhead;
  if (t->ch.write_pending || !d || t->ch.aborting)
    return;
  t->ch.write_pending = true;
  t->ch.sendto_op.buf = dgram_data(d);
  t->ch.sendto_op.len = d->len;
  t->ch.sendto_op.to = d->has_addr ? &d->addr : NULL;
  proa__socket_sendto(t->ch.sock, &t->ch.sendto_op);
}

static void on_write(proa__op *op) {
  proa_datagram *t = of(proa__channel_of_write(op));
  dgram *d = t->qhead;
  t->ch.write_pending = false;
  if (op->result < 0 && op->result != PROA_ECANCELED)
    report(t, (int)op->result);
  /* Sent or failed, the datagram leaves the queue: UDP never retries. An
   * abort already took it out of the count. */
  t->qhead = d->next;
  if (!t->qhead)
    t->qtail = NULL;
  if (!t->ch.aborting)
    t->qsize -= d->len;
  free(d);
  if (t->ch.aborting)
    queue_clear(t);
  else
    write_submit(t);
  proa__channel_flow_check(&t->ch);
  proa__channel_maybe_finish(&t->ch);
}

static int enqueue(proa_datagram *t, const void *data, size_t len,
                   const proa_sockaddr *addr) {
  dgram *d = malloc(sizeof *d + len);
  if (!d)
    return PROA_ENOMEM;
  d->next = NULL;
  d->has_addr = addr != NULL;
  if (addr)
    d->addr = *addr;
  d->len = len;
  if (len)
    memcpy(dgram_data(d), data, len);
  if (t->qtail)
    t->qtail->next = d;
  else
    t->qhead = d;
  t->qtail = d;
  t->qsize += len;
  return 0;
}

static bool same_addr(const proa_sockaddr *a, const proa_sockaddr *b) {
  return a->len == b->len &&
         memcmp(a->storage, b->storage, (size_t)a->len) == 0;
}

/* On an endpoint with a remote address only that address (or NULL) is a
 * valid target. */
static int check_target(proa_datagram *t, const proa_sockaddr *addr) {
  proa_sockaddr peer;
  if (t->has_remote)
    return !addr || same_addr(addr, &t->remote) ? 0 : PROA_EINVAL;
  if (!t->connected)
    return addr ? 0 : PROA_EINVAL;
  if (!addr)
    return 0;
  if (proa__socket_name(t->ch.sock, &peer, true) != 0 ||
      !same_addr(&peer, addr))
    return PROA_EINVAL;
  return 0;
}

int proa_datagram_sendto(proa_datagram *t, const void *data, size_t len,
                         const proa_sockaddr *addr) {
  int err;
  if (!t || (!data && len))
    return PROA_EINVAL;
  if (t->ch.closing)
    return PROA_ECLOSED;
  if (len > MAX_DATAGRAM)
    return PROA_EMSGSIZE;
  err = check_target(t, addr);
  if (err)
    return err;
  if (t->connected)
    addr = NULL; /* send(), not sendto(): some systems insist */
  else if (t->has_remote)
    addr = &t->remote;
  if (!t->qhead && !t->ch.write_pending) {
    intptr_t n = proa__socket_try_sendto(t->ch.sock, data, len, addr);
    if (n >= 0)
      return 0;
    if (n != PROA_EAGAIN)
      return (int)n;
  }
  err = enqueue(t, data, len, addr);
  if (!err) {
    write_submit(t);
    proa__channel_flow_check(&t->ch);
  }
  return err;
}

int proa_datagram_set_write_buffer_limits(proa_datagram *t, size_t high,
                                          size_t low) {
  int err = proa__flow_set_limits(&t->ch.flow, high, low);
  if (!err)
    proa__channel_flow_check(&t->ch);
  return err;
}

size_t proa_datagram_get_write_buffer_size(const proa_datagram *t) {
  return t->qsize;
}

/* ---- closing and extra info ---- */

void proa_datagram_close(proa_datagram *t) {
  if (t)
    proa__channel_close(&t->ch);
}

void proa_datagram_abort(proa_datagram *t) {
  if (t)
    proa__channel_abort(&t->ch, 0);
}

bool proa_datagram_is_closing(const proa_datagram *t) { return t->ch.closing; }

int proa_datagram_peername(const proa_datagram *t, proa_sockaddr *out) {
  if (t && out && t->ch.sock && !t->connected)
    return PROA_ENOTCONN;
  return proa__channel_name(t ? &t->ch : NULL, out, true);
}

int proa_datagram_sockname(const proa_datagram *t, proa_sockaddr *out) {
  return proa__channel_name(t ? &t->ch : NULL, out, false);
}

intptr_t proa_datagram_socket(const proa_datagram *t) {
  return proa__channel_socket(&t->ch);
}

int proa_datagram_join_group(proa_datagram *t, const char *group,
                             const char *iface) {
  if (!t || !group)
    return PROA_EINVAL;
  return t->ch.sock ? proa__socket_multicast(t->ch.sock, group, iface, true)
                    : PROA_ECLOSED;
}

int proa_datagram_leave_group(proa_datagram *t, const char *group,
                              const char *iface) {
  if (!t || !group)
    return PROA_EINVAL;
  return t->ch.sock ? proa__socket_multicast(t->ch.sock, group, iface, false)
                    : PROA_ECLOSED;
}

/* ---- create_datagram_endpoint ---- */

/* An endpoint waiting for its addresses to be resolved. */
typedef struct setup {
  proa_loop *loop;
  proa_future *waiter;
  const proa_datagram_protocol *proto;
  void *self;
  proa_datagram_options opts;
  proa_addrinfo_list *local, *remote; /* NULL: no such address */
  proa_future *lookups[2];
  proa_addrinfo_list numeric[2]; /* numeric hosts skip the resolver */
  proa_addrinfo numeric_item[2];
  int pending;
  int error;
} setup;

/* Wraps the socket (owned from here on) and schedules connection_made.
 * `remote` (may be NULL) is where sendto without an address goes on a
 * socket that is not connected. */
static int start(setup *st, proa__ioh *sock, bool connected,
                 const proa_sockaddr *remote) {
  proa_datagram *t = calloc(1, sizeof *t);
  int err;
  if (!t) {
    proa__ioh_close(sock);
    return PROA_ENOMEM;
  }
  proa__channel_init(&t->ch, &datagram_class, st->loop, sock, on_read,
                     on_write);
  t->proto = st->proto;
  t->self = st->self;
  t->ch.proto = PROA__CHANNEL_PROTO(st->proto, st->self);
  t->connected = connected;
  t->has_remote = remote != NULL;
  if (remote)
    t->remote = *remote;
  err = proa__channel_start(&t->ch, st->waiter);
  if (err)
    proa_datagram_unref(t); /* never started: the socket goes with it */
  return err;
}

static int set_options(const proa_datagram_options *o, proa__ioh *s) {
  int err = 0;
  if (o->reuse_address > 0)
    err = proa__socket_setopt(s, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!err && o->reuse_port > 0) {
#ifdef SO_REUSEPORT
    err = proa__socket_setopt(s, SOL_SOCKET, SO_REUSEPORT, 1);
#else
    err = PROA_ENOTSUP;
#endif
  }
  if (!err && o->allow_broadcast)
    err = proa__socket_setopt(s, SOL_SOCKET, SO_BROADCAST, 1);
  return err;
}

/* One try: a socket of `family`, bound and connected as asked. */
static int try_pair(setup *st, int family, const proa_addrinfo *local,
                    const proa_addrinfo *remote) {
  proa__ioh *s;
  int err =
      proa__socket_open(st->loop, family, PROA_SOCK_DGRAM, st->opts.proto, &s);
  if (err)
    return err;
  err = set_options(&st->opts, s);
  if (!err && local)
    err = proa__socket_bind(s, &local->addr);
  /* asyncio connects unless broadcasting is allowed: then datagrams from
   * anywhere arrive, and sendto without an address goes to the remote. */
  if (!err && remote && !st->opts.allow_broadcast)
    err = proa__socket_connect_now(s, &remote->addr);
  if (err) {
    proa__ioh_close(s);
    return err;
  }
  if (remote && st->opts.allow_broadcast)
    return start(st, s, false, &remote->addr);
  return start(st, s, remote != NULL, NULL);
}

/* Tries each (local, remote) pair of one family until one works. */
static int open_endpoint(setup *st) {
  size_t nl = st->local ? st->local->count : 1;
  size_t nr = st->remote ? st->remote->count : 1;
  size_t i, j;
  int err = PROA_EAI_FAMILY; /* no pair of one family */
  if (!st->local && !st->remote)
    return try_pair(st, st->opts.family, NULL, NULL);
  for (i = 0; i < nr; i++) {
    for (j = 0; j < nl; j++) {
      const proa_addrinfo *r = st->remote ? &st->remote->items[i] : NULL;
      const proa_addrinfo *l = st->local ? &st->local->items[j] : NULL;
      int family = r ? r->family : l->family;
      if (l && r && l->family != r->family)
        continue;
      err = try_pair(st, family, l, r);
      if (!err)
        return 0;
    }
  }
  return err;
}

static void setup_free(setup *st) {
  int i;
  for (i = 0; i < 2; i++)
    proa_future_unref(st->lookups[i]);
  proa_future_unref(st->waiter);
  free(st);
}

static void setup_finish(setup *st) {
  int err = st->error;
  if (!err && !proa_future_done(st->waiter))
    err = open_endpoint(st);
  if (err)
    proa_future_set_error(st->waiter, err, NULL);
  setup_free(st);
}

static void on_lookup(proa_future *f, void *arg) {
  setup *st = arg;
  void *list = NULL;
  int err = proa_future_result(f, &list);
  if (err && !st->error)
    st->error = err;
  if (f == st->lookups[0])
    st->local = list;
  else
    st->remote = list;
  if (--st->pending == 0)
    setup_finish(st);
}

/* The loop closed during the lookup: give up without opening anything. */
static void lookup_dropped(proa_future *f, void *arg) {
  setup *st = arg;
  (void)f; /* setup_free releases it */
  if (!st->error)
    st->error = PROA_ECLOSED;
  if (--st->pending == 0)
    setup_finish(st);
}

/* Resolves one address; the list stays owned by its future. */
static int lookup(setup *st, int slot, const char *host, int port,
                  bool passive) {
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  char service[8];
  int err;
  hints.family = st->opts.family;
  hints.socktype = PROA_SOCK_DGRAM;
  hints.protocol = st->opts.proto;
  hints.flags = st->opts.flags | (passive ? PROA_AI_PASSIVE : 0);
  if (!host) /* a port alone: the wildcard of the family */
    host = st->opts.family == PROA_AF_INET6 ? "::" : "0.0.0.0";
  if (proa_sockaddr_from_ip(&st->numeric_item[slot].addr, host, port) == 0) {
    proa_addrinfo *ai = &st->numeric_item[slot];
    ai->family = proa_sockaddr_family(&ai->addr);
    ai->socktype = PROA_SOCK_DGRAM;
    if (st->opts.family && st->opts.family != ai->family)
      return PROA_EAI_FAMILY;
    st->numeric[slot].count = 1;
    st->numeric[slot].items = ai;
    if (slot == 0)
      st->local = &st->numeric[0];
    else
      st->remote = &st->numeric[1];
    return 0;
  }
  snprintf(service, sizeof service, "%d", port);
  err = proa_getaddrinfo(st->loop, host, service, &hints, &st->lookups[slot]);
  if (!err)
    err = proa__future_add_done_callback(st->lookups[slot], on_lookup,
                                         lookup_dropped, st);
  if (!err)
    st->pending++;
  return err;
}

static int check(const proa_datagram_options *o) {
  bool local = o->local_host || o->local_port;
  bool remote = o->remote_host != NULL;
  if (o->local_port < 0 || o->local_port > 65535 || o->remote_port < 0 ||
      o->remote_port > 65535 || (remote && o->remote_port == 0))
    return PROA_EINVAL;
  /* As asyncio: a given socket comes with nothing that would make one. */
  if (o->sock != -1)
    return local || remote || o->family || o->proto || o->flags ||
                   o->reuse_port > 0 || o->allow_broadcast
               ? PROA_EINVAL
               : 0;
  if (!local && !remote && o->family != PROA_AF_INET &&
      o->family != PROA_AF_INET6)
    return PROA_EINVAL;
  return 0;
}

/* The caller's socket; its type is checked before it is adopted, so that
 * a refused socket stays the caller's, open. */
static int adopt(setup *st) {
  proa__ioh *s;
  proa_sockaddr peer;
  int err = proa__os_socket_type(st->opts.sock);
  if (err < 0)
    return err;
  if (err != PROA_SOCK_DGRAM)
    return PROA_EINVAL; /* asyncio: "A datagram socket was expected" */
  err = proa__ioh_adopt(st->loop, st->opts.sock, &s);
  if (err)
    return err;
  return start(st, s, proa__socket_name(s, &peer, true) == 0, NULL);
}

int proa_create_datagram_endpoint(proa_loop *loop,
                                  const proa_datagram_protocol *protocol,
                                  void *self, const proa_datagram_options *opts,
                                  proa_future **out) {
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  setup *st;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  err = check(&o);
  if (!err)
    err = proa__loop_check(loop, "proa_create_datagram_endpoint");
  if (err)
    return err;
  st = calloc(1, sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  err = proa_future_new(loop, &st->waiter);
  if (err) {
    free(st);
    return err;
  }
  st->loop = loop;
  st->proto = protocol;
  st->self = self;
  st->opts = o;
  *out = proa_future_ref(st->waiter);
  st->pending = 1; /* held until every lookup is started */
  if (o.sock != -1)
    st->error = adopt(st);
  else {
    if (o.local_host || o.local_port)
      st->error = lookup(st, 0, o.local_host, o.local_port, true);
    if (!st->error && o.remote_host)
      st->error = lookup(st, 1, o.remote_host, o.remote_port, false);
  }
  if (o.sock != -1) {
    if (st->error)
      proa_future_set_error(st->waiter, st->error, NULL);
    setup_free(st);
  } else if (--st->pending == 0) {
    setup_finish(st);
  }
  return 0;
}
