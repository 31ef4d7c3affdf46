/* What stream and datagram transports share: lifetime, ops in flight, closing.
 */
#ifndef PROA_CHANNEL_H
#define PROA_CHANNEL_H

#include "flow.h"
#include "internal.h"

typedef struct proa__channel proa__channel;

/*
 * The callbacks every protocol has with the same shape, copied from the
 * protocol's table when the transport is made and by set_protocol, so that
 * flow control and connection_lost are told once, here, for every class.
 */
typedef struct proa__channel_proto {
  void *self;
  void (*connection_lost)(void *self, int error);
  void (*pause_writing)(void *self);
  void (*resume_writing)(void *self);
} proa__channel_proto;

/* Fills a proa__channel_proto from any protocol table `p` (NULL: none). */
#define PROA__CHANNEL_PROTO(p, self_)                                          \
  proa__channel_proto_of((p) ? (p)->connection_lost : NULL,                    \
                         (p) ? (p)->pause_writing : NULL,                      \
                         (p) ? (p)->resume_writing : NULL, (self_))

static inline proa__channel_proto
proa__channel_proto_of(void (*lost)(void *, int), void (*pause)(void *),
                       void (*resume)(void *), void *self) {
  proa__channel_proto cp;
  cp.self = self;
  cp.connection_lost = lost;
  cp.pause_writing = pause;
  cp.resume_writing = resume;
  return cp;
}

/* What differs between a stream transport and a datagram endpoint. */
typedef struct proa__channel_class {
  /* Bytes accepted and not yet handed to the OS. */
  size_t (*buffered)(const proa__channel *ch);
  /* Forgets the queue, except what the write op is sending right now. */
  void (*drop_queue)(proa__channel *ch);
  /* Tells the protocol connection_made (its argument's type differs). */
  void (*made)(proa__channel *ch);
  /* The socket is closed and connection_lost told (or not, when the loop
   * is closing instead): tell anyone else. May be NULL. */
  void (*lost)(proa__channel *ch);
  /* Releases the class's own state; the memory itself goes after. */
  void (*destroy)(proa__channel *ch);
  /* Submits ch->read_op: a read, or a wait for readability. */
  void (*submit_read)(proa__channel *ch);
  /* The public object is the allocation, with the channel `offset` bytes
   * in; `release` lets go of a reference to it (a future's result). */
  size_t offset;
  proa_free_fn release;
} proa__channel_class;

/*
 * The shared half, first in every transport. The loop holds one reference
 * from creation until connection_lost ran; scheduled callbacks hold their
 * own. `closing` stops new reads and writes; `aborting` drops the queue
 * instead of flushing it; `lost_scheduled` means connection_lost is queued.
 */
struct proa__channel {
  proa__resource res; /* first: the loop closes it if the user did not */
  proa__atomic_int refs;
  int error; /* what connection_lost will say */
  const proa__channel_class *cls;
  proa_loop *loop;
  proa__ioh *sock;       /* NULL once lost */
  proa_future *waiter;   /* completed with the transport after made */
  proa__read_op read_op; /* streams read; datagrams wait with .op */
  union {
    proa__write_op write_op;   /* streams */
    proa__sendto_op sendto_op; /* datagrams */
  };
  proa__flow flow;
  proa__channel_proto proto; /* the protocol's callbacks that all share */
  bool made, reading, eof, read_pending, write_pending;
  bool closing, aborting, lost_scheduled;
  bool keep_open; /* the handle is detached, not closed, at the end */
};

/* Sets up `ch` (in a calloc'ed transport) and registers it with the loop. */
void proa__channel_init(proa__channel *ch, const proa__channel_class *cls,
                        proa_loop *loop, proa__ioh *sock, proa__op_fn on_read,
                        proa__op_fn on_write);
void proa__channel_ref(proa__channel *ch);
void proa__channel_unref(proa__channel *ch);
/* The public object that `ch` is part of. */
static inline void *proa__channel_obj(proa__channel *ch) {
  return (char *)ch - ch->cls->offset;
}

/* Schedules cb(ch) holding a reference that cb must drop with unref. */
int proa__channel_schedule(proa__channel *ch, proa_callback cb);

/*
 * Schedules connection_made, then completes `waiter` (may be NULL) with the
 * transport and starts reading.
 */
int proa__channel_start(proa__channel *ch, proa_future *waiter);

/* The channel whose read_op or write_op (sendto_op) `op` is. */
static inline proa__channel *proa__channel_of_read(proa__op *op) {
  return PROA__CONTAINER(op, proa__channel, read_op.op);
}
static inline proa__channel *proa__channel_of_write(proa__op *op) {
  return PROA__CONTAINER(op, proa__channel, write_op.op);
}

/* Submits the class's read, if reading is wanted now. */
void proa__channel_read_submit(proa__channel *ch);

/* Schedules pause/resume_writing when the buffer crossed a mark. */
void proa__channel_flow_check(proa__channel *ch);

/* Schedules connection_lost once nothing is in flight or left to send. */
void proa__channel_maybe_finish(proa__channel *ch);

/* Flushes, then closes. Idempotent. */
void proa__channel_close(proa__channel *ch);

/* Closes at once, dropping the queue; connection_lost(error) follows. */
void proa__channel_abort(proa__channel *ch, int error);

/* get_extra_info. */
int proa__channel_name(const proa__channel *ch, proa_sockaddr *out, bool peer);
intptr_t proa__channel_socket(const proa__channel *ch);

#endif /* PROA_CHANNEL_H */
