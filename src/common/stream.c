/* The stream transport, written once over the backend's socket operations. */
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "local.h"
#include "sockets.h"
#include "transport.h"

#define READ_BUF_SIZE 65536 /* what get_buffer is asked for */
#define CHUNK_SIZE 16384    /* the usual write-queue chunk */
#define MAX_FREE_CHUNKS 64  /* chunks a loop keeps for reuse */

/* A piece of the write queue: bytes [start, end) of its data, which
 * follows the header in the same block, are unsent. (No flexible array
 * member: MSVC's /W4 rejects it, C4200.) */
typedef struct wchunk {
  struct wchunk *next;
  size_t start, end, cap;
} wchunk;

static char *chunk_data(wchunk *c) { return (char *)(c + 1); }

/* What a read brought while reading was paused (it completed before its
 * cancel could stop it): delivered on resume, never lost. The bytes follow
 * the header, except with get_buffer: they are in the protocol's buffer. */
typedef struct stash {
  size_t len;
  bool eof;
} stash;

static char *stash_data(stash *p) { return (char *)(p + 1); }

typedef struct stream {
  proa_transport iface; /* first: the class that proa_transport_* calls */
  proa__channel ch;     /* lifetime, ops, flow control, closing; ch.proto.self
                           is the protocol's self */
  const proa_protocol *proto;
  proa_server *server;
  proa__list_node server_link; /* in the server's connections */
  proa_callback drained;       /* internal: told once the buffer is at `low` */
  void *drained_arg;
  proa_buf *send_bufs; /* what write_op sends; held only while queueing */
  wchunk *whead, *wtail;
  size_t wsize;       /* bytes queued and not yet confirmed sent */
  stash *stash;       /* NULL unless a read raced pause_reading */
  bool eof_requested; /* write_eof was called */
  bool eof_sent;
  bool buffer_refused; /* get_buffer gave no memory: the read failed */
  bool resume_scheduled;
  unsigned char dir; /* enum proa__stream_dir */
} stream;

static stream *of(proa__channel *ch) {
  return (stream *)(void *)((char *)ch - offsetof(stream, ch));
}

static stream *S(proa_transport *t) { return (stream *)(void *)t; }
static const stream *CS(const proa_transport *t) {
  return (const stream *)(const void *)t;
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

static void sendbufs_put(stream *t) {
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

static void queue_clear(stream *t) {
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
  return ((const stream *)(const void *)((const char *)ch -
                                         offsetof(stream, ch)))
      ->wsize;
}

/* The chunks being sent stay until the cancel completes; as far as anyone
 * can tell, the buffer is empty now. */
static void drop_queue(proa__channel *ch) {
  stream *t = of(ch);
  if (ch->write_pending)
    t->wsize = 0;
  else
    queue_clear(t);
}

static void made(proa__channel *ch) {
  stream *t = of(ch);
  if (t->proto && t->proto->connection_made)
    t->proto->connection_made(t->ch.proto.self, &t->iface);
}

static void lost(proa__channel *ch) {
  stream *t = of(ch);
  if (t->server)
    proa__server_connection_lost(t->server, &t->iface);
}

static void destroy(proa__channel *ch) {
  queue_clear(of(ch));
  sendbufs_put(of(ch));
  free(of(ch)->stash);
}

static void submit_read(proa__channel *ch);

static const proa__channel_class stream_class = {buffered,
                                                 drop_queue,
                                                 made,
                                                 lost,
                                                 destroy,
                                                 submit_read,
                                                 offsetof(stream, ch),
                                                 proa__transport_release};

/* ---- creation ---- */

static void on_read(proa__op *op);
static void on_write(proa__op *op);
static void on_peer_closed(proa__op *op);

static const proa__transport_class stream_transport;

int proa__transport_new(proa_loop *loop, proa__ioh *sock,
                        const proa_protocol *protocol, void *self,
                        proa_server *server, proa_transport **out) {
  stream *t = calloc(1, sizeof *t);
  if (!t)
    return PROA_ENOMEM;
  t->iface.cls = &stream_transport;
  proa__channel_init(&t->ch, &stream_class, loop, sock, on_read, on_write);
  t->proto = protocol;
  t->ch.proto = PROA__CHANNEL_PROTO(protocol, self);
  t->server = server;
  *out = &t->iface;
  return 0;
}

int proa__pipe_transport_open(proa_loop *loop, proa__ioh *h,
                              const proa_protocol *protocol, void *self,
                              enum proa__stream_dir dir, bool keep_open,
                              proa_future *waiter) {
  proa_transport *tr;
  stream *t;
  int err = proa__transport_new(loop, h, protocol, self, NULL, &tr);
  if (err) {
    proa__ioh_detach(h);
    return err;
  }
  t = S(tr);
  t->dir = (unsigned char)dir;
  if (dir == PROA__STREAM_WRITE_ONLY)
    t->ch.read_op.op.complete = on_peer_closed;
  t->ch.keep_open = true; /* until it started: a failure detaches h */
  err = proa__transport_start(tr, waiter);
  if (err)
    proa_transport_unref(tr);
  else
    t->ch.keep_open = keep_open;
  return err;
}

int proa__transport_start(proa_transport *t, proa_future *waiter) {
  return proa__channel_start(&S(t)->ch, waiter);
}

static proa_transport *st_ref(proa_transport *t) {
  proa__channel_ref(&S(t)->ch);
  return t;
}

static void st_unref(proa_transport *t) { proa__channel_unref(&S(t)->ch); }

static proa_loop *st_loop(const proa_transport *t) { return CS(t)->ch.loop; }

static void st_when_drained(proa_transport *tr, proa_callback fn, void *arg) {
  stream *t = S(tr);
  t->drained = fn;
  t->drained_arg = arg;
}

proa__list_node *proa__transport_server_link(proa_transport *t) {
  return &S(t)->server_link;
}

proa_transport *proa__transport_of_server_link(proa__list_node *n) {
  return &PROA__CONTAINER(n, stream, server_link)->iface;
}

/* ---- reading ---- */

static bool uses_get_buffer(const stream *t) {
  return t->proto && t->proto->get_buffer && t->proto->buffer_updated;
}

static stream *of_read(proa__read_op *op) {
  return of(proa__channel_of_read(&op->op));
}

/* The backend asks for memory only once data is there. */
static void *protocol_buffer(proa__read_op *op, size_t *len) {
  stream *t = of_read(op);
  void *buf = NULL;
  if (uses_get_buffer(t))
    buf = t->proto->get_buffer(t->ch.proto.self, READ_BUF_SIZE, len);
  t->buffer_refused = !buf || !*len;
  return buf;
}

/* Reads into the protocol's buffer (get_buffer) or the backend's; a write
 * pipe reads nothing and watches for its reader going away instead. */
static void submit_read(proa__channel *ch) {
  stream *t = of(ch);
  if (t->dir == PROA__STREAM_WRITE_ONLY) {
    proa__ioh_wait_peer_closed(ch->sock, &ch->read_op.op);
    return;
  }
  ch->read_op.alloc = uses_get_buffer(t) ? protocol_buffer : NULL;
  ch->read_op.buf = NULL;
  proa__ioh_read(ch->sock, &ch->read_op);
}

static void deliver(stream *t, const void *data, size_t n) {
  if (!t->proto)
    return;
  if (uses_get_buffer(t))
    t->proto->buffer_updated(t->ch.proto.self, n);
  else if (t->proto->data_received)
    t->proto->data_received(t->ch.proto.self, data, n);
}

static void on_eof(stream *t) {
  bool keep_open = false;
  t->ch.eof = true;
  if (t->proto && t->proto->eof_received)
    keep_open = t->proto->eof_received(t->ch.proto.self);
  /* A read pipe has nothing left to do: it closes whatever the answer. */
  if (!keep_open || t->dir == PROA__STREAM_READ_ONLY)
    proa__channel_close(&t->ch);
}

/* Keeps what a read brought while paused (n == 0: the end of the stream)
 * until resume_reading. */
static int stash_add(stream *t, const void *data, size_t n) {
  size_t had = t->stash ? t->stash->len : 0;
  stash *p = realloc(t->stash, sizeof *p + had + n);
  if (!p)
    return PROA_ENOMEM;
  if (!t->stash) {
    p->len = 0;
    p->eof = false;
  }
  if (n && !uses_get_buffer(t))
    memcpy(stash_data(p) + had, data, n);
  p->len += n;
  p->eof = p->eof || !n;
  t->stash = p;
  return 0;
}

static void on_read(proa__op *op) {
  stream *t = of(proa__channel_of_read(op));
  intptr_t n = op->result;
  t->ch.read_pending = false;
  if (n == PROA_ENOBUFS && t->buffer_refused)
    proa__channel_abort(&t->ch, PROA_EINVAL); /* get_buffer gave nothing */
  else if (n < 0 && n != PROA_ECANCELED)
    proa__channel_abort(&t->ch, (int)n);
  else if (n >= 0 && t->ch.closing)
    ; /* closing: what arrives now is dropped, as asyncio does */
  else if (n >= 0 && !t->ch.reading) {
    if (stash_add(t, t->ch.read_op.data, (size_t)n) != 0)
      proa__channel_abort(&t->ch, PROA_ENOMEM);
  } else if (n == 0)
    on_eof(t);
  else if (n > 0)
    deliver(t, t->ch.read_op.data, (size_t)n);
  if (!t->stash || !t->stash->eof)
    proa__channel_read_submit(&t->ch);
  proa__channel_maybe_finish(&t->ch);
}

/*
 * A write pipe's watch ended: its reader went away (0), or the OS cannot
 * tell without a write (PROA_ENOTSUP: the next write says PROA_EPIPE), or
 * it was cancelled. Either way it is not submitted again (eof: the read
 * side has nothing more to do).
 */
static void on_peer_closed(proa__op *op) {
  stream *t = of(proa__channel_of_read(op));
  t->ch.read_pending = false;
  t->ch.eof = true;
  if (op->result == 0)
    proa__channel_abort(&t->ch, PROA_EPIPE);
  proa__channel_maybe_finish(&t->ch);
}

static int st_pause_reading(proa_transport *tr) {
  stream *t = S(tr);
  if (t->dir == PROA__STREAM_WRITE_ONLY)
    return PROA_ENOTSUP;
  t->ch.reading = false;
  /* A read in flight would take data nobody asked for; a cancel loses
   * none (if the read won the race, on_read keeps what it brought). */
  if (t->ch.read_pending)
    proa__ioh_cancel(t->ch.sock, &t->ch.read_op.op);
  return 0;
}

/* Hands over what was read while paused, then reads on. */
static void resume_cb(void *arg) {
  stream *t = of(arg); /* proa__channel_schedule passes the channel */
  t->resume_scheduled = false;
  if (t->ch.reading && !t->ch.closing && t->stash) {
    stash *p = t->stash;
    t->stash = NULL; /* a read the protocol resumes now adds a new one */
    if (p->len)
      deliver(t, stash_data(p), p->len);
    if (p->eof && t->ch.reading && !t->ch.closing)
      on_eof(t);
    free(p);
    proa__channel_read_submit(&t->ch);
    proa__channel_maybe_finish(&t->ch);
  }
  proa__channel_unref(&t->ch);
}

static int st_resume_reading(proa_transport *tr) {
  stream *t = S(tr);
  if (t->dir == PROA__STREAM_WRITE_ONLY)
    return PROA_ENOTSUP;
  if (t->ch.closing || t->ch.reading)
    return 0;
  t->ch.reading = true;
  if (!t->stash) {
    proa__channel_read_submit(&t->ch);
    return 0;
  }
  /* data_received must not run inside the caller's resume_reading. */
  if (!t->resume_scheduled && proa__channel_schedule(&t->ch, resume_cb) == 0)
    t->resume_scheduled = true;
  return 0;
}

static bool st_is_reading(const proa_transport *tr) {
  const stream *t = CS(tr);
  return t->ch.reading && !t->ch.closing && t->dir != PROA__STREAM_WRITE_ONLY;
}

/* ---- writing ---- */

static void write_submit(stream *t) {
  wchunk *c;
  size_t n = 0;
  if (t->ch.write_pending || !t->whead || t->ch.aborting)
    return;
  if (!t->send_bufs)
    t->send_bufs = sendbufs_get(t->ch.loop);
  if (!t->send_bufs) {
    proa__channel_abort(&t->ch, PROA_ENOMEM); /* unsendable: say so */
    return;
  }
  for (c = t->whead; c && n < PROA__MAX_SEND_BUFS; c = c->next) {
    t->send_bufs[n].base = chunk_data(c) + c->start;
    t->send_bufs[n].len = c->end - c->start;
    n++;
  }
  t->ch.write_pending = true;
  t->ch.write_op.bufs = t->send_bufs;
  t->ch.write_op.count = n;
  proa__ioh_write(t->ch.sock, &t->ch.write_op);
}

static void shutdown_write(stream *t) {
  int err;
  t->eof_sent = true;
  err = proa__ioh_shutdown_write(t->ch.sock);
  if (err)
    proa__channel_abort(&t->ch, err);
}

/* Drops n sent bytes from the head of the queue. */
static void consume(stream *t, size_t n) {
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

static void tell_drained(stream *t) {
  proa_callback fn = t->drained;
  if (!fn || t->wsize > t->ch.flow.low)
    return;
  t->drained = NULL;
  fn(t->drained_arg);
}

static void on_write(proa__op *op) {
  stream *t = of(proa__channel_of_write(op));
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
static int enqueue(stream *t, const char *p, size_t len) {
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
    memcpy(chunk_data(c) + c->end, p, take);
    c->end += take;
    t->wsize += take;
    p += take;
    len -= take;
  }
  return 0;
}

/* Speculative send straight from the caller's memory: no copy at all when
 * the socket takes everything. Returns the bytes sent, or -1 on failure. */
static intptr_t send_now(stream *t, const proa_buf *bufs, size_t count) {
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

/* Queues what the socket did not take of bufs (it took the first `sent`
 * bytes) and submits it. */
static PROA__NOINLINE int queue_rest(stream *t, const proa_buf *bufs,
                                     size_t count, size_t sent) {
  size_t i;
  int err = 0;
  for (i = 0; i < count && !err; i++) {
    size_t len = bufs[i].len;
    if (sent >= len) {
      sent -= len;
      continue;
    }
    err = enqueue(t, (const char *)bufs[i].base + sent, len - sent);
    sent = 0;
  }
  if (err) {
    proa__channel_abort(&t->ch, err); /* else part of it would vanish */
    return err;
  }
  write_submit(t);
  proa__channel_flow_check(&t->ch);
  return 0;
}

/* When the socket takes everything at once (the common case) the queue,
 * the write op and flow control are left alone, as nothing changed. */
static int st_writelines(proa_transport *tr, const proa_buf *bufs,
                         size_t count) {
  stream *t = S(tr);
  size_t i, total;
  intptr_t sent;
  if (t->dir == PROA__STREAM_READ_ONLY)
    return PROA_ENOTSUP;
  if (t->ch.closing || t->ch.lost_scheduled)
    return PROA_ECLOSED;
  if (t->eof_requested)
    return PROA_EPIPE;
  total = count ? bufs[0].len : 0; /* one buffer: the usual write */
  for (i = 1; i < count; i++)
    total += bufs[i].len;
  if (!total || (sent = send_now(t, bufs, count)) < 0 || (size_t)sent == total)
    return 0;
  return queue_rest(t, bufs, count, (size_t)sent);
}

static int st_write_eof(proa_transport *tr) {
  stream *t = S(tr);
  if (t->dir == PROA__STREAM_READ_ONLY)
    return PROA_ENOTSUP;
  if (t->ch.closing || t->ch.lost_scheduled)
    return PROA_ECLOSED;
  /* A pipe has no half-close: its reader sees the end once it is closed,
   * after the queue is flushed (asyncio's write pipes do the same). */
  if (t->dir == PROA__STREAM_WRITE_ONLY) {
    proa__channel_close(&t->ch);
    return 0;
  }
  if (t->eof_requested)
    return 0;
  t->eof_requested = true;
  if (!t->whead && !t->ch.write_pending)
    shutdown_write(t);
  return 0;
}

static bool st_can_write_eof(const proa_transport *tr) {
  return CS(tr)->dir != PROA__STREAM_READ_ONLY;
}

static int st_set_write_buffer_limits(proa_transport *tr, size_t high,
                                      size_t low) {
  stream *t = S(tr);
  int err = proa__flow_set_limits(&t->ch.flow, high, low);
  if (!err)
    proa__channel_flow_check(&t->ch);
  return err;
}

static void st_get_write_buffer_limits(const proa_transport *tr, size_t *low,
                                       size_t *high) {
  const stream *t = CS(tr);
  if (low)
    *low = t->ch.flow.low;
  if (high)
    *high = t->ch.flow.high;
}

static size_t st_get_write_buffer_size(const proa_transport *tr) {
  const stream *t = CS(tr);
  return t->wsize;
}

/* ---- closing and extra info ---- */

static void st_close(proa_transport *tr) { proa__channel_close(&S(tr)->ch); }

static void st_abort(proa_transport *tr) { proa__channel_abort(&S(tr)->ch, 0); }

static bool st_is_closing(const proa_transport *tr) {
  const stream *t = CS(tr);
  return t->ch.closing;
}

static int st_name(const proa_transport *tr, proa_sockaddr *out, bool peer) {
  return proa__channel_name(&CS(tr)->ch, out, peer);
}

static intptr_t st_os_handle(const proa_transport *tr) {
  return proa__channel_socket(&CS(tr)->ch);
}

/* A named pipe's peer: the process id only. */
static int pipe_peer_cred(proa__ioh *h, proa_peer_cred *out) {
  int64_t pid;
  int err = proa__ioh_peer_pid(h, &pid);
  if (err)
    return err;
  out->pid = pid;
  out->uid = out->gid = -1;
  return 0;
}

/* Only a local socket or pipe has a peer that the OS can name. */
static int st_peer_cred(const proa_transport *tr, proa_peer_cred *out) {
  proa__ioh *sock = CS(tr)->ch.sock;
  int family;
  if (!sock)
    return PROA_ECLOSED;
  if (sock->kind == PROA__IOH_PIPE)
    return pipe_peer_cred(sock, out);
  family = sock->kind == PROA__IOH_SOCKET ? proa__os_socket_family(sock->os)
                                          : PROA_ENOTSUP;
  if (family < 0)
    return family;
  if (family != PROA_AF_UNIX)
    return PROA_ENOTSUP;
  return proa__socket_peer_cred(sock->os, out);
}

static void *st_get_protocol(const proa_transport *tr) {
  return CS(tr)->ch.proto.self;
}

static void st_set_protocol(proa_transport *tr, const proa_protocol *protocol,
                            void *self) {
  stream *t = S(tr);
  t->proto = protocol;
  t->ch.proto = PROA__CHANNEL_PROTO(protocol, self);
}

static const proa__transport_class stream_transport = {
    .ref = st_ref,
    .unref = st_unref,
    .loop = st_loop,
    .writelines = st_writelines,
    .write_eof = st_write_eof,
    .can_write_eof = st_can_write_eof,
    .close = st_close,
    .abort = st_abort,
    .is_closing = st_is_closing,
    .pause_reading = st_pause_reading,
    .resume_reading = st_resume_reading,
    .is_reading = st_is_reading,
    .set_write_buffer_limits = st_set_write_buffer_limits,
    .get_write_buffer_limits = st_get_write_buffer_limits,
    .get_write_buffer_size = st_get_write_buffer_size,
    .name = st_name,
    .os_handle = st_os_handle,
    .peer_cred = st_peer_cred,
    .get_protocol = st_get_protocol,
    .set_protocol = st_set_protocol,
    .when_drained = st_when_drained,
};
