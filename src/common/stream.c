/* The stream transport, written once over the backend's socket operations. */
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "sockets.h"
#include "transport.h"

#define READ_BUF_SIZE 65536 /* what get_buffer is asked for */
#define CHUNK_SIZE 16384    /* the usual write-queue chunk */
#define MAX_FREE_CHUNKS 64  /* chunks a loop keeps for reuse */

/* A piece of the write queue: bytes [start, end) of data are unsent. */
typedef struct wchunk {
  struct wchunk *next;
  size_t start, end, cap;
  char data[];
} wchunk;

struct proa_transport {
  proa__channel ch; /* first: lifetime, ops, flow control, closing */
  const proa_protocol *proto;
  void *self;
  proa_server *server;
  proa_transport *server_prev, *server_next; /* the server's connections */
  proa_callback drained; /* internal: told once the buffer is at `low` */
  void *drained_arg;
  proa_buf *send_bufs; /* what write_op sends; held only while queueing */
  wchunk *whead, *wtail;
  size_t wsize;       /* bytes queued and not yet confirmed sent */
  bool eof_requested; /* write_eof was called */
  bool eof_sent;
  bool buffer_refused; /* get_buffer gave no memory: the read failed */
  /* Read while reading was paused (a read in flight completed before its
   * cancel): delivered on resume, never lost. */
  char *stash;
  size_t stash_len;
  bool stash_eof;
  bool resume_scheduled;
};

static proa_transport *of(proa__channel *ch) {
  return (proa_transport *)(void *)ch;
}

/* ---- the write queue's memory, recycled through the loop ---- */

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
  proa_loop *loop = t->ch.loop;
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
    chunk_free(t->ch.loop, c);
  }
  t->wtail = NULL;
  t->wsize = 0;
}

/* ---- the channel class ---- */

static size_t buffered(const proa__channel *ch) {
  return ((const proa_transport *)(const void *)ch)->wsize;
}

/* The chunks being sent stay until the cancel completes; as far as anyone
 * can tell, the buffer is empty now. */
static void drop_queue(proa__channel *ch) {
  proa_transport *t = of(ch);
  if (ch->write_pending)
    t->wsize = 0;
  else
    queue_clear(t);
}

static void made(proa__channel *ch) {
  proa_transport *t = of(ch);
  if (t->proto && t->proto->connection_made)
    t->proto->connection_made(t->self, t);
}

static void flow(proa__channel *ch, int step) {
  proa_transport *t = of(ch);
  if (!t->proto)
    return;
  if (step > 0 && t->proto->pause_writing)
    t->proto->pause_writing(t->self);
  else if (step < 0 && t->proto->resume_writing)
    t->proto->resume_writing(t->self);
}

static void lost(proa__channel *ch, bool notify) {
  proa_transport *t = of(ch);
  if (notify && t->proto && t->proto->connection_lost)
    t->proto->connection_lost(t->self, ch->error);
  if (t->server)
    proa__server_connection_lost(t->server, t);
}

static void destroy(proa__channel *ch) {
  queue_clear(of(ch));
  sendbufs_put(of(ch));
  free(of(ch)->stash);
}

static void submit_read(proa__channel *ch);

static const proa__channel_class stream_class = {
    buffered, drop_queue, made, flow, lost, destroy, submit_read};

/* ---- creation ---- */

static void on_read(proa__op *op);
static void on_write(proa__op *op);

int proa__transport_new(proa_loop *loop, proa__ioh *sock,
                        const proa_protocol *protocol, void *self,
                        proa_server *server, proa_transport **out) {
  proa_transport *t = calloc(1, sizeof *t);
  if (!t)
    return PROA_ENOMEM;
  proa__channel_init(&t->ch, &stream_class, loop, sock, on_read, on_write);
  t->proto = protocol;
  t->self = self;
  t->server = server;
  *out = t;
  return 0;
}

int proa__transport_start(proa_transport *t, proa_future *waiter) {
  return proa__channel_start(&t->ch, waiter);
}

proa_transport *proa_transport_ref(proa_transport *t) {
  proa__channel_ref(&t->ch);
  return t;
}

void proa_transport_unref(proa_transport *t) {
  if (t)
    proa__channel_unref(&t->ch);
}

void proa__transport_release(void *t) { proa_transport_unref(t); }

proa_loop *proa_transport_loop(const proa_transport *t) { return t->ch.loop; }

void proa__transport_when_drained(proa_transport *t, proa_callback fn,
                                  void *arg) {
  t->drained = fn;
  t->drained_arg = arg;
}

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

/* ---- reading ---- */

static bool uses_get_buffer(const proa_transport *t) {
  return t->proto && t->proto->get_buffer && t->proto->buffer_updated;
}

static proa_transport *of_read(proa__read_op *op) {
  return of(proa__channel_of_read(&op->op));
}

/* The backend asks for memory only once data is there. */
static void *protocol_buffer(proa__read_op *op, size_t *len) {
  proa_transport *t = of_read(op);
  void *buf = NULL;
  if (uses_get_buffer(t))
    buf = t->proto->get_buffer(t->self, READ_BUF_SIZE, len);
  t->buffer_refused = !buf || !*len;
  return buf;
}

/* Reads into the protocol's buffer (get_buffer) or the backend's. */
static void submit_read(proa__channel *ch) {
  proa_transport *t = of(ch);
  ch->read_op.alloc = uses_get_buffer(t) ? protocol_buffer : NULL;
  ch->read_op.buf = NULL;
  proa__ioh_read(ch->sock, &ch->read_op);
}

static void deliver(proa_transport *t, const void *data, size_t n) {
  if (!t->proto)
    return;
  if (uses_get_buffer(t))
    t->proto->buffer_updated(t->self, n);
  else if (t->proto->data_received)
    t->proto->data_received(t->self, data, n);
}

static void on_eof(proa_transport *t) {
  bool keep_open = false;
  t->ch.eof = true;
  if (t->proto && t->proto->eof_received)
    keep_open = t->proto->eof_received(t->self);
  if (!keep_open)
    proa_transport_close(t);
}

/* Keeps what a read brought while paused (see resume_reading). In the
 * protocol's own buffer the bytes are where they belong already. */
static int stash_add(proa_transport *t, const void *data, size_t n) {
  char *p;
  if (uses_get_buffer(t)) {
    t->stash_len += n;
    return 0;
  }
  p = realloc(t->stash, t->stash_len + n);
  if (!p)
    return PROA_ENOMEM;
  memcpy(p + t->stash_len, data, n);
  t->stash = p;
  t->stash_len += n;
  return 0;
}

static void on_read(proa__op *op) {
  proa_transport *t = of(proa__channel_of_read(op));
  intptr_t n = op->result;
  t->ch.read_pending = false;
  if (n == PROA_ENOBUFS && t->buffer_refused)
    proa__channel_abort(&t->ch, PROA_EINVAL); /* get_buffer gave nothing */
  else if (n < 0 && n != PROA_ECANCELED)
    proa__channel_abort(&t->ch, (int)n);
  else if (n >= 0 && t->ch.closing)
    ; /* closing: what arrives now is dropped, as asyncio does */
  else if (n >= 0 && !t->ch.reading) {
    if (n == 0)
      t->stash_eof = true;
    else if (stash_add(t, t->ch.read_op.data, (size_t)n) != 0)
      proa__channel_abort(&t->ch, PROA_ENOMEM);
  } else if (n == 0)
    on_eof(t);
  else if (n > 0)
    deliver(t, t->ch.read_op.data, (size_t)n);
  if (!t->stash_eof)
    proa__channel_read_submit(&t->ch);
  proa__channel_maybe_finish(&t->ch);
}

int proa_transport_pause_reading(proa_transport *t) {
  t->ch.reading = false;
  /* A read in flight would take data nobody asked for; a cancel loses
   * none (if the read won the race, on_read keeps what it brought). */
  if (t->ch.read_pending)
    proa__ioh_cancel(t->ch.sock, &t->ch.read_op.op);
  return 0;
}

/* Hands over what was read while paused, then reads on. */
static void resume_cb(void *arg) {
  proa_transport *t = arg;
  t->resume_scheduled = false;
  if (t->ch.reading && !t->ch.closing) {
    if (t->stash_len) {
      size_t n = t->stash_len;
      t->stash_len = 0;
      deliver(t, t->stash, n);
      free(t->stash);
      t->stash = NULL;
    }
    if (t->stash_eof && t->ch.reading && !t->ch.closing)
      on_eof(t);
    proa__channel_read_submit(&t->ch);
    proa__channel_maybe_finish(&t->ch);
  }
  proa__channel_unref(&t->ch);
}

int proa_transport_resume_reading(proa_transport *t) {
  if (t->ch.closing || t->ch.reading)
    return 0;
  t->ch.reading = true;
  if (!t->stash_len && !t->stash_eof) {
    proa__channel_read_submit(&t->ch);
    return 0;
  }
  /* data_received must not run inside the caller's resume_reading. */
  if (!t->resume_scheduled && proa__channel_schedule(&t->ch, resume_cb) == 0)
    t->resume_scheduled = true;
  return 0;
}

bool proa_transport_is_reading(const proa_transport *t) {
  return t->ch.reading && !t->ch.closing;
}

/* ---- writing ---- */

static void write_submit(proa_transport *t) {
  wchunk *c;
  size_t n = 0;
  if (t->ch.write_pending || !t->whead || t->ch.aborting)
    return;
  if (!t->send_bufs && !(t->send_bufs = sendbufs_get(t->ch.loop))) {
    proa__channel_abort(&t->ch, PROA_ENOMEM); /* unsendable: say so */
    return;
  }
  for (c = t->whead; c && n < PROA__MAX_SEND_BUFS; c = c->next) {
    t->send_bufs[n].base = c->data + c->start;
    t->send_bufs[n].len = c->end - c->start;
    n++;
  }
  t->ch.write_pending = true;
  t->ch.write_op.bufs = t->send_bufs;
  t->ch.write_op.count = n;
  proa__ioh_write(t->ch.sock, &t->ch.write_op);
}

static void shutdown_write(proa_transport *t) {
  int err;
  t->eof_sent = true;
  err = proa__socket_shutdown_write(t->ch.sock);
  if (err)
    proa__channel_abort(&t->ch, err);
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
      chunk_free(t->ch.loop, c);
    }
  }
}

static void tell_drained(proa_transport *t) {
  proa_callback fn = t->drained;
  if (!fn || t->wsize > t->ch.flow.low)
    return;
  t->drained = NULL;
  fn(t->drained_arg);
}

static void on_write(proa__op *op) {
  proa_transport *t = of(proa__channel_of_write(op));
  t->ch.write_pending = false;
  if (op->result < 0 && !t->ch.aborting)
    proa__channel_abort(&t->ch, (int)op->result);
  else if (op->result >= 0 && !t->ch.aborting)
    consume(t, (size_t)op->result);
  if (t->ch.aborting)
    queue_clear(t);
  else if (t->whead)
    write_submit(t);
  else if (t->eof_requested && !t->eof_sent)
    shutdown_write(t);
  if (!t->ch.write_pending)
    sendbufs_put(t);
  tell_drained(t);
  proa__channel_flow_check(&t->ch);
  proa__channel_maybe_finish(&t->ch);
}

/* Copies bytes into the queue, filling the last chunk first. */
static int enqueue(proa_transport *t, const char *p, size_t len) {
  while (len) {
    wchunk *c = t->wtail;
    size_t room = c ? c->cap - c->end : 0, take;
    if (!room) {
      c = chunk_new(t->ch.loop, len);
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

/* Speculative send straight from the caller's memory: no copy at all when
 * the socket takes everything. Returns the bytes sent, or -1 on failure. */
static intptr_t send_now(proa_transport *t, const proa_buf *bufs,
                         size_t count) {
  intptr_t n;
  if (t->whead || t->ch.write_pending)
    return 0;
  n = proa__ioh_try_write(t->ch.sock, bufs, count);
  if (n == PROA_EAGAIN)
    return 0;
  if (n < 0)
    proa__channel_abort(&t->ch, (int)n); /* said by connection_lost */
  return n < 0 ? -1 : n;
}

int proa_transport_writelines(proa_transport *t, const proa_buf *bufs,
                              size_t count) {
  size_t i, total = 0, skip;
  intptr_t sent;
  int err = 0;
  if (!t || (!bufs && count))
    return PROA_EINVAL;
  if (t->ch.closing || t->ch.lost_scheduled)
    return PROA_ECLOSED;
  if (t->eof_requested)
    return PROA_EPIPE;
  for (i = 0; i < count; i++)
    total += bufs[i].len;
  if (!total || (sent = send_now(t, bufs, count)) < 0)
    return 0;
  for (skip = (size_t)sent, i = 0; i < count && !err; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    err = enqueue(t, (const char *)bufs[i].base + skip, len - skip);
    skip = 0;
  }
  if (err) {
    proa__channel_abort(&t->ch, err); /* else part of it would vanish */
    return err;
  }
  write_submit(t);
  proa__channel_flow_check(&t->ch);
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
  if (t->ch.closing || t->ch.lost_scheduled)
    return PROA_ECLOSED;
  if (t->eof_requested)
    return 0;
  t->eof_requested = true;
  if (!t->whead && !t->ch.write_pending)
    shutdown_write(t);
  return 0;
}

bool proa_transport_can_write_eof(const proa_transport *t) {
  (void)t;
  return true;
}

int proa_transport_set_write_buffer_limits(proa_transport *t, size_t high,
                                           size_t low) {
  int err = proa__flow_set_limits(&t->ch.flow, high, low);
  if (!err)
    proa__channel_flow_check(&t->ch);
  return err;
}

void proa_transport_get_write_buffer_limits(const proa_transport *t,
                                            size_t *low, size_t *high) {
  if (low)
    *low = t->ch.flow.low;
  if (high)
    *high = t->ch.flow.high;
}

size_t proa_transport_get_write_buffer_size(const proa_transport *t) {
  return t->wsize;
}

/* ---- closing and extra info ---- */

void proa_transport_close(proa_transport *t) {
  if (t)
    proa__channel_close(&t->ch);
}

void proa_transport_abort(proa_transport *t) {
  if (t)
    proa__channel_abort(&t->ch, 0);
}

bool proa_transport_is_closing(const proa_transport *t) {
  return t->ch.closing;
}

int proa_transport_peername(const proa_transport *t, proa_sockaddr *out) {
  return proa__channel_name(t ? &t->ch : NULL, out, true);
}

int proa_transport_sockname(const proa_transport *t, proa_sockaddr *out) {
  return proa__channel_name(t ? &t->ch : NULL, out, false);
}

intptr_t proa_transport_socket(const proa_transport *t) {
  return proa__channel_socket(&t->ch);
}

void *proa_transport_get_protocol(const proa_transport *t) { return t->self; }

void proa_transport_set_protocol(proa_transport *t,
                                 const proa_protocol *protocol, void *self) {
  t->proto = protocol;
  t->self = self;
}
