/* The lifetime and closing of a transport, shared by streams and datagrams. */
#include <stdlib.h>

#include "channel.h"
#include "sockets.h"

static void close_now(proa__resource *r);

/* Closes the handle, or gives it back to its owner (keep_open). */
static void release_sock(proa__channel *ch) {
  if (ch->keep_open)
    proa__ioh_detach(ch->sock);
  else
    proa__ioh_close(ch->sock);
  ch->sock = NULL;
}

void proa__channel_init(proa__channel *ch, const proa__channel_class *cls,
                        proa_loop *loop, proa__ioh *sock, proa__op_fn on_read,
                        proa__op_fn on_write) {
  ch->refs = 1; /* the loop's, until connection_lost */
  ch->cls = cls;
  ch->loop = proa_loop_ref(loop);
  ch->sock = sock;
  ch->read_op.op.complete = on_read;
  ch->write_op.op.complete = on_write;
  ch->reading = true;
  proa__flow_init(&ch->flow);
  proa__resource_add(loop, &ch->res, close_now);
}

void proa__channel_ref(proa__channel *ch) { proa__atomic_add(&ch->refs, 1); }

void proa__channel_unref(proa__channel *ch) {
  proa_loop *loop;
  if (!ch || proa__atomic_add(&ch->refs, -1) != 0)
    return;
  loop = ch->loop;
  ch->cls->destroy(ch);
  proa__resource_remove(loop, &ch->res);
  if (ch->sock) /* never started: nothing can be in flight */
    release_sock(ch);
  free(proa__channel_obj(ch)); /* the public object is the allocation */
  proa_loop_unref(loop);
}

static void drop_ref(void *arg) { proa__channel_unref(arg); }

int proa__channel_schedule(proa__channel *ch, proa_callback cb) {
  int err;
  proa__channel_ref(ch);
  err = proa__call_soon(ch->loop, cb, drop_ref, ch);
  if (err)
    proa__channel_unref(ch);
  return err;
}

/* ---- connection_made ---- */

void proa__channel_read_submit(proa__channel *ch) {
  if (ch->read_pending || !ch->reading || ch->closing || ch->eof || !ch->made)
    return;
  ch->read_pending = true;
  ch->cls->submit_read(ch);
}

static void made_cb(void *arg) {
  proa__channel *ch = arg;
  proa_future *waiter = ch->waiter;
  ch->made = true;
  ch->cls->made(ch);
  if (waiter) {
    ch->waiter = NULL;
    if (proa_future_done(waiter)) {
      proa__channel_abort(ch, 0); /* the caller cancelled: nobody uses it */
    } else {
      /* The future owns this reference from here on: setting the result
       * of a pending future cannot fail (future.h). */
      proa__channel_ref(ch);
      proa_future_set_result(waiter, proa__channel_obj(ch), ch->cls->release);
    }
    proa_future_unref(waiter);
  }
  proa__channel_read_submit(ch);
  proa__channel_maybe_finish(ch);
  proa__channel_unref(ch);
}

int proa__channel_start(proa__channel *ch, proa_future *waiter) {
  int err;
  ch->waiter = waiter ? proa_future_ref(waiter) : NULL;
  err = proa__channel_schedule(ch, made_cb);
  if (err && ch->waiter) {
    proa_future_unref(ch->waiter);
    ch->waiter = NULL;
  }
  return err;
}

/* ---- flow control ---- */

static void flow_cb(void *arg) {
  proa__channel *ch = arg;
  int step = proa__flow_step(&ch->flow, ch->cls->buffered(ch));
  if (step > 0 && !ch->lost_scheduled && ch->proto.pause_writing)
    ch->proto.pause_writing(ch->proto.self);
  else if (step < 0 && !ch->lost_scheduled && ch->proto.resume_writing)
    ch->proto.resume_writing(ch->proto.self);
  proa__channel_unref(ch);
}

void proa__channel_flow_check(proa__channel *ch) {
  if (proa__flow_due(&ch->flow, ch->cls->buffered(ch)) && !ch->flow.scheduled &&
      !ch->lost_scheduled && proa__channel_schedule(ch, flow_cb) == 0)
    ch->flow.scheduled = true;
}

/* ---- closing ---- */

static void lost(proa__channel *ch, bool notify) {
  proa__resource_remove(ch->loop, &ch->res);
  release_sock(ch);
  if (notify && ch->proto.connection_lost)
    ch->proto.connection_lost(ch->proto.self, ch->error);
  if (ch->cls->lost)
    ch->cls->lost(ch);
  proa__channel_unref(ch); /* the loop's reference */
}

static void lost_cb(void *arg) { lost(arg, true); }

/* The loop closed before lost_cb ran: close without telling the protocol. */
static void lost_drop(void *arg) { lost(arg, false); }

/*
 * The loop is closing with the transport still open: abort it without
 * telling the protocol. Operations in flight are cancelled; the loop waits
 * for their completions (on Windows the kernel may use their memory until
 * then), after which maybe_finish queues lost_cb, which the closing loop
 * runs as lost_drop. What a never-settled waiter held is released here.
 */
static void close_now(proa__resource *r) {
  proa__channel *ch = (proa__channel *)(void *)r;
  if (ch->lost_scheduled)
    return; /* lost_drop, already queued, finishes it */
  if (ch->waiter) {
    proa_future_cancel(ch->waiter, "the event loop was closed");
    proa_future_unref(ch->waiter);
    ch->waiter = NULL;
  }
  ch->made = true; /* connection_made will never run now */
  proa__channel_abort(ch, 0);
}

void proa__channel_maybe_finish(proa__channel *ch) {
  if (!ch->closing || ch->lost_scheduled || !ch->made)
    return;
  if (ch->read_pending) {
    proa__ioh_cancel(ch->sock, &ch->read_op.op);
    return;
  }
  if (ch->write_pending || (ch->cls->buffered(ch) && !ch->aborting))
    return;
  if (proa__call_soon(ch->loop, lost_cb, lost_drop, ch) == 0)
    ch->lost_scheduled = true;
}

void proa__channel_close(proa__channel *ch) {
  if (!ch || ch->closing)
    return;
  ch->closing = true;
  proa__channel_maybe_finish(ch);
}

void proa__channel_abort(proa__channel *ch, int error) {
  if (!ch || ch->lost_scheduled)
    return;
  if (!ch->aborting)
    ch->error = error;
  ch->closing = ch->aborting = true;
  ch->cls->drop_queue(ch);
  if (ch->write_pending)
    proa__ioh_cancel(ch->sock, &ch->write_op.op);
  proa__channel_maybe_finish(ch);
}

/* ---- extra info ---- */

int proa__channel_name(const proa__channel *ch, proa_sockaddr *out, bool peer) {
  if (!ch || !out)
    return PROA_EINVAL;
  return ch->sock ? proa__socket_name(ch->sock, out, peer) : PROA_ECLOSED;
}

intptr_t proa__channel_socket(const proa__channel *ch) {
  return ch->sock ? proa__ioh_os(ch->sock) : -1;
}
