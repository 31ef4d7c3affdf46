/* The stream transport, written once over the backend's socket operations. */
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "sockets.h"
#include "transport.h"

#define READ_BUF_SIZE 65536
#define READS_PER_WAKE 16  /* reads per readiness before others get a turn */
#define CHUNK_SIZE 16384   /* the usual write-queue chunk */
#define MAX_FREE_CHUNKS 64 /* chunks a loop keeps for reuse */

/* A piece of the write queue: bytes [start, end) of data are unsent. */
typedef struct wchunk {
  struct wchunk *next;
  size_t start, end, cap;
  char data[];
} wchunk;

struct proa_transport {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa__atomic_int refs;
  proa_loop *loop;
  proa__socket *sock; /* NULL once the connection is lost */
  const proa_protocol *proto;
  void *self;
  proa_server *server;
  proa_transport *server_prev, *server_next; /* the server's connections */
  proa_future *waiter;   /* completed after connection_made */
  proa_callback drained; /* internal: told once the buffer is at `low` */
  void *drained_arg;

  proa__op read_op;
  proa__op write_op;
  proa_buf *send_bufs; /* what write_op sends; held only while queueing */

  wchunk *whead, *wtail;
  size_t wsize; /* bytes queued and not yet confirmed sent */
  proa__flow flow;
  int error; /* what connection_lost will say */

  bool made;          /* connection_made ran */
  bool reading;       /* not paused by the user */
  bool read_pending;  /* read_op in flight */
  bool write_pending; /* write_op in flight */
  bool eof;           /* the peer's end of stream was seen */
  bool eof_requested; /* write_eof was called */
  bool eof_sent;
  bool closing;  /* close, abort or an error: no new reads or writes */
  bool aborting; /* drop the queue instead of flushing it */
  bool lost_scheduled;
};

static void force_close(proa_transport *t, int error);
static void maybe_finish(proa_transport *t);

/* ---- references and scheduling ---- */

/* A send list, from the loop's cache: idle connections hold none. */
typedef union sendbufs {
  union sendbufs *next; /* first: the loop's cache links them */
  proa_buf bufs[PROA__MAX_SEND_BUFS];
} sendbufs;

static proa_buf *sendbufs_get(proa_loop *loop) {
  sendbufs *b = loop->free_sendbufs;
  if (!b)
    return malloc(sizeof(sendbufs));
  loop->free_sendbufs = b->next;
  loop->nfree_sendbufs--;
  return b->bufs;
}

static void sendbufs_put(proa_transport *t) {
  sendbufs *b = (sendbufs *)(void *)t->send_bufs;
  proa_loop *loop = t->loop;
  t->send_bufs = NULL;
  if (!b)
    return;
  if (!loop->closed && loop->nfree_sendbufs < MAX_FREE_CHUNKS) {
    b->next = loop->free_sendbufs;
    loop->free_sendbufs = b;
    loop->nfree_sendbufs++;
  } else {
    free(b);
  }
}

proa_transport *proa_transport_ref(proa_transport *t) {
  proa__atomic_add(&t->refs, 1);
  return t;
}

static void chunk_free(proa_loop *loop, wchunk *c) {
  if (c->cap == CHUNK_SIZE && !loop->closed &&
      loop->nfree_chunks < MAX_FREE_CHUNKS) {
    c->next = loop->free_chunks;
    loop->free_chunks = c;
    loop->nfree_chunks++;
  } else {
    free(c);
  }
}

static void queue_clear(proa_transport *t) {
  while (t->whead) {
    wchunk *c = t->whead;
    t->whead = c->next;
    chunk_free(t->loop, c);
  }
  t->wtail = NULL;
  t->wsize = 0;
}

void proa_transport_unref(proa_transport *t) {
  if (!t || proa__atomic_add(&t->refs, -1) != 0)
    return;
  queue_clear(t);
  sendbufs_put(t);
  proa__resource_remove(t->loop, &t->res);
  if (t->sock) /* never started: nothing can be in flight */
    proa__socket_close(t->sock);
  proa_loop_unref(t->loop);
  free(t);
}

void proa__transport_release(void *t) { proa_transport_unref(t); }

void proa__transport_when_drained(proa_transport *t, proa_callback fn,
                                  void *arg) {
  t->drained = fn;
  t->drained_arg = arg;
}

static void drop_ref(void *arg) { proa_transport_unref(arg); }

/* Schedules cb(t) with a reference that cb (or the drop at close) releases. */
static int schedule(proa_transport *t, proa_callback cb) {
  int err = proa__call_soon(t->loop, cb, drop_ref, proa_transport_ref(t));
  if (err)
    proa_transport_unref(t);
  return err;
}

proa_loop *proa_transport_loop(const proa_transport *t) { return t->loop; }

void proa__transport_link(proa_transport **head, proa_transport *t) {
  t->server_prev = NULL;
  t->server_next = *head;
  if (*head)
    (*head)->server_prev = t;
  *head = t;
}

void proa__transport_unlink(proa_transport **head, proa_transport *t) {
  if (t->server_prev)
    t->server_prev->server_next = t->server_next;
  else if (*head == t)
    *head = t->server_next;
  if (t->server_next)
    t->server_next->server_prev = t->server_prev;
  t->server_prev = t->server_next = NULL;
}

proa_transport *proa__transport_next(const proa_transport *t) {
  return t->server_next;
}

/* ---- creation and connection_made ---- */

static void on_read(proa__op *op);
static void on_write(proa__op *op);
static void close_now(proa__resource *r);

int proa__transport_new(proa_loop *loop, proa__socket *sock,
                        const proa_protocol *protocol, void *self,
                        proa_server *server, proa_transport **out) {
  proa_transport *t = calloc(1, sizeof *t);
  if (!t)
    return PROA_ENOMEM;
  t->refs = 1;
  t->loop = proa_loop_ref(loop);
  t->sock = sock;
  t->proto = protocol;
  t->self = self;
  t->server = server;
  t->read_op.complete = on_read;
  t->write_op.complete = on_write;
  proa__flow_init(&t->flow);
  t->reading = true;
  proa__resource_add(loop, &t->res, close_now);
  *out = t;
  return 0;
}

static void read_submit(proa_transport *t) {
  if (t->read_pending || !t->reading || t->closing || t->eof || !t->made)
    return;
  t->read_pending = true;
  proa__socket_wait_readable(t->sock, &t->read_op);
}

static void made_cb(void *arg) {
  proa_transport *t = arg;
  proa_future *waiter = t->waiter;
  t->made = true;
  if (t->proto && t->proto->connection_made)
    t->proto->connection_made(t->self, t);
  if (waiter) {
    t->waiter = NULL;
    if (proa_future_set_result(waiter, proa_transport_ref(t),
                               proa__transport_release) != 0) {
      /* The caller cancelled the connection: nobody will use it. */
      proa_transport_unref(t);
      force_close(t, 0);
    }
    proa_future_unref(waiter);
  }
  read_submit(t);
  maybe_finish(t);
  proa_transport_unref(t);
}

int proa__transport_start(proa_transport *t, proa_future *waiter) {
  int err;
  t->waiter = waiter ? proa_future_ref(waiter) : NULL;
  err = schedule(t, made_cb);
  if (err && t->waiter) {
    proa_future_unref(t->waiter);
    t->waiter = NULL;
  }
  return err;
}

/* ---- reading ---- */

static void *read_buffer(proa_transport *t, size_t *size) {
  proa_loop *loop = t->loop;
  if (t->proto && t->proto->get_buffer && t->proto->buffer_updated) {
    void *buf = t->proto->get_buffer(t->self, READ_BUF_SIZE, size);
    return buf && *size ? buf : NULL;
  }
  if (!loop->read_buf) {
    loop->read_buf = malloc(READ_BUF_SIZE);
    if (!loop->read_buf)
      return NULL;
    loop->read_buf_size = READ_BUF_SIZE;
  }
  *size = loop->read_buf_size;
  return loop->read_buf;
}

static void deliver(proa_transport *t, const void *data, size_t n) {
  if (!t->proto)
    return;
  if (t->proto->get_buffer && t->proto->buffer_updated)
    t->proto->buffer_updated(t->self, n);
  else if (t->proto->data_received)
    t->proto->data_received(t->self, data, n);
}

static void on_eof(proa_transport *t) {
  bool keep_open = false;
  t->eof = true;
  if (t->proto && t->proto->eof_received)
    keep_open = t->proto->eof_received(t->self);
  if (!keep_open)
    proa_transport_close(t);
}

/* Reads what is there, a bounded number of times, and delivers it. */
static void read_some(proa_transport *t) {
  int i;
  for (i = 0; i < READS_PER_WAKE; i++) {
    size_t size = 0;
    void *buf;
    intptr_t n;
    if (!t->reading || t->closing || t->eof)
      return;
    buf = read_buffer(t, &size);
    if (!buf) {
      force_close(t,
                  t->proto && t->proto->get_buffer ? PROA_EINVAL : PROA_ENOMEM);
      return;
    }
    n = proa__socket_try_recv(t->sock, buf, size);
    if (n == PROA_EAGAIN)
      return;
    if (n < 0) {
      force_close(t, (int)n);
      return;
    }
    if (n == 0) {
      on_eof(t);
      return;
    }
    deliver(t, buf, (size_t)n);
    if ((size_t)n < size)
      return; /* most likely drained; readiness says if not */
  }
}

static void on_read(proa__op *op) {
  proa_transport *t =
      (proa_transport *)(void *)((char *)op -
                                 offsetof(proa_transport, read_op));
  t->read_pending = false;
  if (op->result < 0 && op->result != PROA_ECANCELED)
    force_close(t, (int)op->result);
  else if (!t->closing)
    read_some(t);
  read_submit(t);
  maybe_finish(t);
}

int proa_transport_pause_reading(proa_transport *t) {
  /* A wait already in flight stays: it consumes nothing, and its
   * completion reads nothing while paused. */
  t->reading = false;
  return 0;
}

int proa_transport_resume_reading(proa_transport *t) {
  if (t->closing)
    return 0;
  t->reading = true;
  read_submit(t);
  return 0;
}

bool proa_transport_is_reading(const proa_transport *t) {
  return t->reading && !t->closing;
}

/* ---- writing ---- */

static void flow_cb(void *arg) {
  proa_transport *t = arg;
  int step = proa__flow_step(&t->flow, t->wsize);
  if (!t->lost_scheduled && t->proto) {
    if (step > 0 && t->proto->pause_writing)
      t->proto->pause_writing(t->self);
    else if (step < 0 && t->proto->resume_writing)
      t->proto->resume_writing(t->self);
  }
  proa_transport_unref(t);
}

static void flow_check(proa_transport *t) {
  if (proa__flow_due(&t->flow, t->wsize) && !t->flow.scheduled &&
      !t->lost_scheduled && schedule(t, flow_cb) == 0)
    t->flow.scheduled = true;
}

static void write_submit(proa_transport *t) {
  wchunk *c;
  size_t n = 0;
  if (t->write_pending || !t->whead || t->aborting)
    return;
  if (!t->send_bufs && !(t->send_bufs = sendbufs_get(t->loop))) {
    force_close(t, PROA_ENOMEM); /* the data cannot be sent: say so */
    return;
  }
  for (c = t->whead; c && n < PROA__MAX_SEND_BUFS; c = c->next) {
    t->send_bufs[n].base = c->data + c->start;
    t->send_bufs[n].len = c->end - c->start;
    n++;
  }
  t->write_pending = true;
  proa__socket_send(t->sock, &t->write_op, t->send_bufs, n);
}

static void shutdown_write(proa_transport *t) {
  int err;
  t->eof_sent = true;
  err = proa__socket_shutdown_write(t->sock);
  if (err)
    force_close(t, err);
}

/* Drops n sent bytes from the head of the queue. */
static void consume(proa_transport *t, size_t n) {
  t->wsize -= n;
  while (n) {
    wchunk *c = t->whead;
    size_t take = c->end - c->start < n ? c->end - c->start : n;
    c->start += take;
    n -= take;
    if (c->start == c->end) {
      t->whead = c->next;
      if (!t->whead)
        t->wtail = NULL;
      chunk_free(t->loop, c);
    }
  }
}

static void on_write(proa__op *op) {
  proa_transport *t =
      (proa_transport *)(void *)((char *)op -
                                 offsetof(proa_transport, write_op));
  t->write_pending = false;
  if (op->result < 0 && !t->aborting)
    force_close(t, (int)op->result);
  else if (op->result >= 0 && !t->aborting)
    consume(t, (size_t)op->result);
  if (t->aborting) {
    queue_clear(t);
  } else if (t->whead) {
    write_submit(t);
  } else if (t->eof_requested && !t->eof_sent) {
    shutdown_write(t);
  }
  if (!t->write_pending)
    sendbufs_put(t);
  if (t->drained && t->wsize <= t->flow.low) {
    proa_callback fn = t->drained;
    t->drained = NULL;
    fn(t->drained_arg);
  }
  flow_check(t);
  maybe_finish(t);
}

static wchunk *chunk_new(proa_loop *loop, size_t need) {
  wchunk *c;
  if (need <= CHUNK_SIZE && loop->free_chunks) {
    c = loop->free_chunks;
    loop->free_chunks = c->next;
    loop->nfree_chunks--;
  } else {
    size_t cap = need > CHUNK_SIZE ? need : CHUNK_SIZE;
    c = malloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->cap = cap;
  }
  c->next = NULL;
  c->start = c->end = 0;
  return c;
}

/* Copies bytes into the queue, filling the last chunk first. */
static int enqueue(proa_transport *t, const char *p, size_t len) {
  while (len) {
    wchunk *c = t->wtail;
    size_t room = c ? c->cap - c->end : 0, take;
    if (!room) {
      c = chunk_new(t->loop, len);
      if (!c)
        return PROA_ENOMEM;
      if (t->wtail)
        t->wtail->next = c;
      else
        t->whead = c;
      t->wtail = c;
      room = c->cap;
    }
    take = len < room ? len : room;
    memcpy(c->data + c->end, p, take);
    c->end += take;
    t->wsize += take;
    p += take;
    len -= take;
  }
  return 0;
}

int proa_transport_writelines(proa_transport *t, const proa_buf *bufs,
                              size_t count) {
  size_t i, total = 0, skip = 0;
  int err = 0;
  if (!t || (!bufs && count))
    return PROA_EINVAL;
  if (t->closing || t->lost_scheduled)
    return PROA_ECLOSED;
  if (t->eof_requested)
    return PROA_EPIPE;
  for (i = 0; i < count; i++)
    total += bufs[i].len;
  if (!total)
    return 0;
  /* Speculative send straight from the caller's memory: no copy at all
   * when the socket takes everything. */
  if (!t->whead && !t->write_pending) {
    intptr_t n = proa__socket_try_send(t->sock, bufs, count);
    if (n < 0 && n != PROA_EAGAIN) {
      force_close(t, (int)n); /* reported through connection_lost */
      return 0;
    }
    skip = n > 0 ? (size_t)n : 0;
  }
  for (i = 0; i < count && !err; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    err = enqueue(t, (const char *)bufs[i].base + skip, len - skip);
    skip = 0;
  }
  if (err) {
    force_close(t, err); /* part of the data would be lost silently */
    return err;
  }
  write_submit(t);
  flow_check(t);
  return 0;
}

int proa_transport_write(proa_transport *t, const void *data, size_t len) {
  proa_buf buf;
  if (!data && len)
    return PROA_EINVAL;
  buf.base = data;
  buf.len = len;
  return proa_transport_writelines(t, &buf, 1);
}

int proa_transport_write_eof(proa_transport *t) {
  if (t->closing || t->lost_scheduled)
    return PROA_ECLOSED;
  if (t->eof_requested)
    return 0;
  t->eof_requested = true;
  if (!t->whead && !t->write_pending)
    shutdown_write(t);
  return 0;
}

bool proa_transport_can_write_eof(const proa_transport *t) {
  (void)t;
  return true;
}

int proa_transport_set_write_buffer_limits(proa_transport *t, size_t high,
                                           size_t low) {
  int err = proa__flow_set_limits(&t->flow, high, low);
  if (!err)
    flow_check(t);
  return err;
}

void proa_transport_get_write_buffer_limits(const proa_transport *t,
                                            size_t *low, size_t *high) {
  if (low)
    *low = t->flow.low;
  if (high)
    *high = t->flow.high;
}

size_t proa_transport_get_write_buffer_size(const proa_transport *t) {
  return t->wsize;
}

/* ---- closing ---- */

static void lost_cb(void *arg) {
  proa_transport *t = arg;
  proa__resource_remove(t->loop, &t->res);
  proa__socket_close(t->sock);
  t->sock = NULL;
  if (t->proto && t->proto->connection_lost)
    t->proto->connection_lost(t->self, t->error);
  if (t->server)
    proa__server_connection_lost(t->server, t);
  proa_transport_unref(t); /* the loop's reference */
}

/* The loop closed before lost_cb ran: close without telling the protocol. */
static void lost_drop(void *arg) {
  proa_transport *t = arg;
  proa__resource_remove(t->loop, &t->res);
  proa__socket_close(t->sock);
  t->sock = NULL;
  if (t->server)
    proa__server_connection_lost(t->server, t);
  proa_transport_unref(t);
}

/*
 * The loop is closing with the transport still open: shut the socket now.
 * Its operations will never complete and no callback will run; what the
 * loop's reference and a never-settled waiter held is released here.
 */
static void close_now(proa__resource *r) {
  proa_transport *t = (proa_transport *)(void *)r;
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

/* Schedules connection_lost once nothing is in flight or left to send. */
static void maybe_finish(proa_transport *t) {
  if (!t->closing || t->lost_scheduled || !t->made)
    return;
  if (t->read_pending) {
    proa__socket_cancel(t->sock, &t->read_op);
    return;
  }
  if (t->write_pending || (t->whead && !t->aborting))
    return;
  if (proa__call_soon(t->loop, lost_cb, lost_drop, t) == 0)
    t->lost_scheduled = true;
}

void proa_transport_close(proa_transport *t) {
  if (!t || t->closing)
    return;
  t->closing = true;
  maybe_finish(t);
}

static void force_close(proa_transport *t, int error) {
  if (t->lost_scheduled)
    return;
  if (!t->aborting)
    t->error = error;
  t->closing = true;
  t->aborting = true;
  if (t->write_pending) {
    /* The chunks being sent stay until the cancel completes; as far as
     * anyone can tell, the buffer is empty now. */
    t->wsize = 0;
    proa__socket_cancel(t->sock, &t->write_op);
  } else {
    queue_clear(t);
  }
  maybe_finish(t);
}

void proa_transport_abort(proa_transport *t) {
  if (t)
    force_close(t, 0);
}

bool proa_transport_is_closing(const proa_transport *t) { return t->closing; }

/* ---- extra info ---- */

int proa_transport_peername(const proa_transport *t, proa_sockaddr *out) {
  if (!t || !out)
    return PROA_EINVAL;
  return t->sock ? proa__socket_name(t->sock, out, true) : PROA_ECLOSED;
}

int proa_transport_sockname(const proa_transport *t, proa_sockaddr *out) {
  if (!t || !out)
    return PROA_EINVAL;
  return t->sock ? proa__socket_name(t->sock, out, false) : PROA_ECLOSED;
}

intptr_t proa_transport_socket(const proa_transport *t) {
  return t->sock ? proa__socket_fd(t->sock) : -1;
}

void *proa_transport_get_protocol(const proa_transport *t) { return t->self; }

void proa_transport_set_protocol(proa_transport *t,
                                 const proa_protocol *protocol, void *self) {
  t->proto = protocol;
  t->self = self;
}
