/* The datagram transport and create_datagram_endpoint, for every backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "sockets.h"

#define RECVS_PER_WAKE 32 /* datagrams read per readiness, at most */
#define MAX_DATAGRAM 65536

/* A datagram waiting for the socket to take it. */
typedef struct dgram {
  struct dgram *next;
  proa_sockaddr addr;
  bool has_addr;
  size_t len;
  char data[];
} dgram;

struct proa_datagram {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa__atomic_int refs;
  proa_loop *loop;
  proa__socket *sock; /* NULL once lost */
  const proa_datagram_protocol *proto;
  void *self;
  proa_future *waiter;
  bool connected;
  proa__op read_op, write_op;
  dgram *qhead, *qtail;
  size_t qsize; /* bytes queued */
  proa__flow flow;
  bool made, read_pending, write_pending, closing, aborting, lost_scheduled;
  int lost_error; /* what connection_lost will say */
};

static void maybe_finish(proa_datagram *t);

proa_datagram *proa_datagram_ref(proa_datagram *t) {
  proa__atomic_add(&t->refs, 1);
  return t;
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

void proa_datagram_unref(proa_datagram *t) {
  if (!t || proa__atomic_add(&t->refs, -1) != 0)
    return;
  queue_clear(t);
  proa__resource_remove(t->loop, &t->res);
  if (t->sock)
    proa__socket_close(t->sock);
  proa_loop_unref(t->loop);
  free(t);
}

static void release(void *t) { proa_datagram_unref(t); }

static int schedule(proa_datagram *t, proa_callback cb) {
  int err = proa__call_soon(t->loop, cb, release, proa_datagram_ref(t));
  if (err)
    proa_datagram_unref(t);
  return err;
}

proa_loop *proa_datagram_loop(const proa_datagram *t) { return t->loop; }

/* ---- receiving ---- */

static void read_submit(proa_datagram *t) {
  if (t->read_pending || t->closing || !t->made)
    return;
  t->read_pending = true;
  proa__socket_wait_readable(t->sock, &t->read_op);
}

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
         err == PROA_EMSGSIZE || err == PROA_ETIMEDOUT || err == PROA_EAGAIN;
}

/* Drains a burst: several datagrams per readiness, not one round each. */
static void recv_some(proa_datagram *t) {
  int i;
  for (i = 0; i < RECVS_PER_WAKE && !t->closing; i++) {
    proa_sockaddr from;
    char *buf = read_buffer(t->loop);
    intptr_t n;
    if (!buf) {
      report(t, PROA_ENOMEM);
      return;
    }
    memset(&from, 0, sizeof from);
    n = proa__socket_try_recvfrom(t->sock, buf, t->loop->read_buf_size, &from);
    if (n == PROA_EAGAIN)
      return;
    if (n < 0 && !soft_error(n)) {
      report(t, (int)n);
      t->lost_error = (int)n;
      proa_datagram_abort(t); /* the socket itself is broken */
      return;
    }
    if (n < 0)
      report(t, (int)n); /* truncated, or ICMP news: the endpoint lives on */
    else if (t->proto && t->proto->datagram_received)
      t->proto->datagram_received(t->self, buf, (size_t)n, &from);
  }
}

static void on_read(proa__op *op) {
  proa_datagram *t =
      (proa_datagram *)(void *)((char *)op - offsetof(proa_datagram, read_op));
  t->read_pending = false;
  if (op->result < 0 && op->result != PROA_ECANCELED) {
    report(t, (int)op->result);
    if (!soft_error(op->result)) {
      /* Waiting again would fail the same way, forever: give up. */
      t->lost_error = (int)op->result;
      proa_datagram_abort(t);
    }
  }
  if (!t->closing)
    recv_some(t);
  read_submit(t);
  maybe_finish(t);
}

/* ---- sending ---- */

static void flow_cb(void *arg) {
  proa_datagram *t = arg;
  int step = proa__flow_step(&t->flow, t->qsize);
  if (!t->lost_scheduled && t->proto) {
    if (step > 0 && t->proto->pause_writing)
      t->proto->pause_writing(t->self);
    else if (step < 0 && t->proto->resume_writing)
      t->proto->resume_writing(t->self);
  }
  proa_datagram_unref(t);
}

static void flow_check(proa_datagram *t) {
  if (proa__flow_due(&t->flow, t->qsize) && !t->flow.scheduled &&
      !t->lost_scheduled && schedule(t, flow_cb) == 0)
    t->flow.scheduled = true;
}

static void write_submit(proa_datagram *t) {
  dgram *d = t->qhead;
  if (t->write_pending || !d || t->aborting)
    return;
  t->write_pending = true;
  proa__socket_sendto(t->sock, &t->write_op, d->data, d->len,
                      d->has_addr ? &d->addr : NULL);
}

static void on_write(proa__op *op) {
  proa_datagram *t =
      (proa_datagram *)(void *)((char *)op - offsetof(proa_datagram, write_op));
  dgram *d = t->qhead;
  t->write_pending = false;
  if (op->result < 0 && op->result != PROA_ECANCELED)
    report(t, (int)op->result);
  /* Sent or failed, the datagram leaves the queue: UDP never retries. An
   * abort already took it out of the count. */
  t->qhead = d->next;
  if (!t->qhead)
    t->qtail = NULL;
  if (!t->aborting)
    t->qsize -= d->len;
  free(d);
  if (t->aborting)
    queue_clear(t);
  else
    write_submit(t);
  flow_check(t);
  maybe_finish(t);
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
    memcpy(d->data, data, len);
  if (t->qtail)
    t->qtail->next = d;
  else
    t->qhead = d;
  t->qtail = d;
  t->qsize += len;
  return 0;
}

/* On a connected endpoint only the peer (or NULL) is a valid target. */
static int check_target(proa_datagram *t, const proa_sockaddr *addr) {
  proa_sockaddr peer;
  if (!t->connected)
    return addr ? 0 : PROA_EINVAL;
  if (!addr)
    return 0;
  if (proa__socket_name(t->sock, &peer, true) != 0 || peer.len != addr->len ||
      memcmp(peer.storage, addr->storage, (size_t)peer.len) != 0)
    return PROA_EINVAL;
  return 0;
}

int proa_datagram_sendto(proa_datagram *t, const void *data, size_t len,
                         const proa_sockaddr *addr) {
  int err;
  if (!t || (!data && len))
    return PROA_EINVAL;
  if (t->closing)
    return PROA_ECLOSED;
  if (len > MAX_DATAGRAM)
    return PROA_EMSGSIZE;
  err = check_target(t, addr);
  if (err)
    return err;
  if (t->connected)
    addr = NULL; /* send(), not sendto(): some systems insist */
  if (!t->qhead && !t->write_pending) {
    intptr_t n = proa__socket_try_sendto(t->sock, data, len, addr);
    if (n >= 0)
      return 0;
    if (n != PROA_EAGAIN)
      return (int)n;
  }
  err = enqueue(t, data, len, addr);
  if (!err) {
    write_submit(t);
    flow_check(t);
  }
  return err;
}

int proa_datagram_set_write_buffer_limits(proa_datagram *t, size_t high,
                                          size_t low) {
  int err = proa__flow_set_limits(&t->flow, high, low);
  if (!err)
    flow_check(t);
  return err;
}

size_t proa_datagram_get_write_buffer_size(const proa_datagram *t) {
  return t->qsize;
}

/* ---- lifetime ---- */

static void lost_cb(void *arg) {
  proa_datagram *t = arg;
  proa__resource_remove(t->loop, &t->res);
  proa__socket_close(t->sock);
  t->sock = NULL;
  if (t->proto && t->proto->connection_lost)
    t->proto->connection_lost(t->self, t->lost_error);
  proa_datagram_unref(t);
}

static void lost_drop(void *arg) {
  proa_datagram *t = arg;
  proa__resource_remove(t->loop, &t->res);
  proa__socket_close(t->sock);
  t->sock = NULL;
  proa_datagram_unref(t);
}

/* The loop is closing with the endpoint open: shut it, no callbacks. */
static void close_now(proa__resource *r) {
  proa_datagram *t = (proa_datagram *)(void *)r;
  if (t->lost_scheduled)
    return; /* lost_drop, already queued, finishes it */
  t->closing = t->aborting = t->lost_scheduled = true;
  t->read_pending = t->write_pending = false;
  queue_clear(t);
  if (t->waiter) {
    proa_future_cancel(t->waiter, "the event loop was closed");
    proa_future_unref(t->waiter);
    t->waiter = NULL;
  }
  lost_drop(t);
}

static void maybe_finish(proa_datagram *t) {
  if (!t->closing || t->lost_scheduled || !t->made)
    return;
  if (t->read_pending) {
    proa__socket_cancel(t->sock, &t->read_op);
    return;
  }
  if (t->write_pending || (t->qhead && !t->aborting))
    return;
  if (proa__call_soon(t->loop, lost_cb, lost_drop, t) == 0)
    t->lost_scheduled = true;
}

void proa_datagram_close(proa_datagram *t) {
  if (!t || t->closing)
    return;
  t->closing = true;
  maybe_finish(t);
}

/* Drops the queue now; a datagram being sent stays until its op ends. */
static void drop_queue(proa_datagram *t) {
  dgram *head = t->write_pending ? t->qhead : NULL;
  if (head) {
    t->qhead = head->next;
    head->next = NULL;
  }
  queue_clear(t);
  t->qhead = t->qtail = head;
}

void proa_datagram_abort(proa_datagram *t) {
  if (!t || t->lost_scheduled)
    return;
  t->closing = t->aborting = true;
  drop_queue(t);
  if (t->write_pending)
    proa__socket_cancel(t->sock, &t->write_op);
  maybe_finish(t);
}

bool proa_datagram_is_closing(const proa_datagram *t) { return t->closing; }

int proa_datagram_peername(const proa_datagram *t, proa_sockaddr *out) {
  if (!t || !out)
    return PROA_EINVAL;
  if (!t->sock)
    return PROA_ECLOSED;
  return t->connected ? proa__socket_name(t->sock, out, true) : PROA_ENOTCONN;
}

int proa_datagram_sockname(const proa_datagram *t, proa_sockaddr *out) {
  if (!t || !out)
    return PROA_EINVAL;
  return t->sock ? proa__socket_name(t->sock, out, false) : PROA_ECLOSED;
}

intptr_t proa_datagram_socket(const proa_datagram *t) {
  return t->sock ? proa__socket_fd(t->sock) : -1;
}

int proa_datagram_join_group(proa_datagram *t, const char *group,
                             const char *iface) {
  if (!t || !group)
    return PROA_EINVAL;
  return t->sock ? proa__socket_multicast(t->sock, group, iface, true)
                 : PROA_ECLOSED;
}

int proa_datagram_leave_group(proa_datagram *t, const char *group,
                              const char *iface) {
  if (!t || !group)
    return PROA_EINVAL;
  return t->sock ? proa__socket_multicast(t->sock, group, iface, false)
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

static void made_cb(void *arg) {
  proa_datagram *t = arg;
  proa_future *waiter = t->waiter;
  t->made = true;
  if (t->proto && t->proto->connection_made)
    t->proto->connection_made(t->self, t);
  t->waiter = NULL;
  if (proa_future_set_result(waiter, proa_datagram_ref(t), release) != 0) {
    proa_datagram_unref(t);
    proa_datagram_abort(t); /* the caller gave up on it */
  }
  proa_future_unref(waiter);
  read_submit(t);
  maybe_finish(t);
  proa_datagram_unref(t);
}

/* Wraps the socket (owned from here on) and schedules connection_made. */
static int start(setup *st, proa__socket *sock, bool connected) {
  proa_datagram *t = calloc(1, sizeof *t);
  if (!t) {
    proa__socket_close(sock);
    return PROA_ENOMEM;
  }
  t->refs = 1; /* the loop's, until connection_lost */
  t->loop = proa_loop_ref(st->loop);
  t->sock = sock;
  t->proto = st->proto;
  t->self = st->self;
  t->connected = connected;
  t->read_op.complete = on_read;
  t->write_op.complete = on_write;
  proa__flow_init(&t->flow);
  t->waiter = proa_future_ref(st->waiter);
  proa__resource_add(st->loop, &t->res, close_now);
  if (schedule(t, made_cb) != 0) {
    proa_future_unref(t->waiter);
    proa_datagram_unref(t);
    return PROA_ENOMEM;
  }
  return 0;
}

static int set_options(const proa_datagram_options *o, proa__socket *s) {
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
  proa__socket *s;
  int err = proa__socket_open(st->loop->backend, family, PROA_SOCK_DGRAM,
                              st->opts.proto, &s);
  if (err)
    return err;
  err = set_options(&st->opts, s);
  if (!err && local)
    err = proa__socket_bind(s, &local->addr);
  if (!err && remote)
    err = proa__socket_connect_now(s, &remote->addr);
  if (err) {
    proa__socket_close(s);
    return err;
  }
  return start(st, s, remote != NULL);
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
    err = proa_future_add_done_callback(st->lookups[slot], on_lookup, st);
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
  if (o->sock != -1)
    return local || remote ? PROA_EINVAL : 0;
  if (!local && !remote && o->family != PROA_AF_INET &&
      o->family != PROA_AF_INET6)
    return PROA_EINVAL;
  return 0;
}

static int adopt(setup *st) {
  proa__socket *s;
  proa_sockaddr peer;
  int err = proa__socket_adopt(st->loop->backend, st->opts.sock, &s);
  if (err)
    return err;
  if (proa__socket_type(s) != PROA_SOCK_DGRAM) {
    proa__socket_close(s); /* asyncio: "A datagram socket was expected" */
    return PROA_EINVAL;
  }
  return start(st, s, proa__socket_name(s, &peer, true) == 0);
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
  if (opts)
    o = *opts;
  if (!loop || !out)
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
