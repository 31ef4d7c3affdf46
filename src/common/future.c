/* Futures: one outcome set once, observed through scheduled done callbacks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int proa__future_init(proa_future *f, proa_loop *loop,
                      const proa__future_class *cls) {
  int err = proa__loop_check(loop, "proa_future_new");
  if (err)
    return err;
  f->refs = 1;
  f->cls = cls;
  f->loop = proa_loop_ref(loop);
  f->callbacks = f->inline_callbacks;
  f->callbacks_cap = sizeof f->inline_callbacks / sizeof f->inline_callbacks[0];
  return 0;
}

int proa_future_new(proa_loop *loop, proa_future **out) {
  proa_future *f;
  int err;
  if (!out)
    return PROA_EINVAL;
  *out = NULL;
  if (!loop)
    return PROA_EINVAL;
  f = calloc(1, sizeof *f);
  if (!f)
    return PROA_ENOMEM;
  err = proa__future_init(f, loop, NULL);
  if (err) {
    free(f);
    return err;
  }
  *out = f;
  return 0;
}

proa_future *proa_future_ref(proa_future *future) {
  proa__atomic_add(&future->refs, 1);
  return future;
}

static void report_unretrieved(proa_future *f) {
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "Future error was never retrieved";
  ctx.error = f->error;
  ctx.error_message = f->message;
  ctx.future = f;
  proa_loop_call_exception_handler(f->loop, &ctx);
}

void proa_future_unref(proa_future *future) {
  if (!future || proa__atomic_add(&future->refs, -1) > 0)
    return;
  if (future->state == PROA__FUTURE_ERROR && !future->retrieved) {
    future->retrieved = true; /* report once, even if revived and freed */
    proa__atomic_store(&future->refs, 1); /* the handler may ref/unref it */
    report_unretrieved(future);
    if (proa__atomic_add(&future->refs, -1) > 0)
      return;
  }
  if (future->cls && future->cls->destroy)
    future->cls->destroy(future);
  if (future->free_value)
    future->free_value(future->value);
  if (future->callbacks != future->inline_callbacks)
    free(future->callbacks);
  free(future->message);
  proa_loop_unref(future->loop);
  free(future);
}

proa_loop *proa_future_loop(const proa_future *future) { return future->loop; }

bool proa_future_done(const proa_future *future) {
  return future->state != PROA__FUTURE_PENDING;
}

bool proa_future_cancelled(const proa_future *future) {
  return future->state == PROA__FUTURE_CANCELLED;
}

/* Runs the done callbacks registered so far, in order (a loop callback). */
static void run_callbacks(void *arg) {
  proa_future *f = arg;
  proa__done_entry small[2], *list = small;
  size_t i, n = f->ncallbacks;
  if (f->callbacks == f->inline_callbacks) {
    memcpy(small, f->inline_callbacks, n * sizeof *small);
  } else {
    list = f->callbacks; /* take the array; later additions get a new one */
    f->callbacks = f->inline_callbacks;
    f->callbacks_cap = 2;
  }
  f->ncallbacks = 0;
  f->callbacks_scheduled = false;
  for (i = 0; i < n; i++)
    list[i].cb(f, list[i].arg);
  if (list != small)
    free(list);
  proa_future_unref(f);
}

/* The loop closed before run_callbacks ran: only its reference remains. */
static void drop_callbacks(void *arg) {
  proa_future *f = arg;
  size_t i, n = f->ncallbacks;
  f->ncallbacks = 0;
  f->callbacks_scheduled = false;
  for (i = 0; i < n; i++)
    if (f->callbacks[i].drop)
      f->callbacks[i].drop(f, f->callbacks[i].arg);
  proa_future_unref(f);
}

/* Makes the loop run the future's callbacks at its next iteration without
 * a handle, which could not be had. */
static void stall(proa_future *f) {
  proa_loop *loop = f->loop;
  f->stalled_next = NULL;
  if (loop->stalled_tail)
    loop->stalled_tail->stalled_next = f;
  else
    loop->stalled = f;
  loop->stalled_tail = f;
}

/* Takes the list of stalled futures, to run or drop each. */
static proa_future *take_stalled(proa_loop *loop) {
  proa_future *list = loop->stalled;
  loop->stalled = loop->stalled_tail = NULL;
  return list;
}

void proa__futures_run_stalled(proa_loop *loop) {
  proa_future *f = take_stalled(loop);
  while (f) {
    proa_future *next = f->stalled_next;
    run_callbacks(f);
    f = next;
  }
}

void proa__futures_drop_stalled(proa_loop *loop) {
  proa_future *f = take_stalled(loop);
  while (f) {
    proa_future *next = f->stalled_next;
    drop_callbacks(f);
    f = next;
  }
}

/*
 * Makes sure the callbacks waiting are run by the loop. This never fails,
 * so that completing a future never fails after it took the value: without
 * a handle the loop runs them at its next iteration all the same, and on a
 * closed loop, where they can never run, they are dropped now (their drop
 * functions run, as they would have at the close).
 */
static void schedule_callbacks(proa_future *f) {
  int err;
  if (f->callbacks_scheduled || f->ncallbacks == 0)
    return;
  f->callbacks_scheduled = true;
  proa_future_ref(f); /* released by run_callbacks or drop_callbacks */
  err = proa__call_soon(f->loop, run_callbacks, drop_callbacks, f);
  if (err == PROA_ECLOSED)
    drop_callbacks(f);
  else if (err)
    stall(f);
}

int proa_future_set_result(proa_future *future, void *value,
                           proa_free_fn free_value) {
  if (!future)
    return PROA_EINVAL;
  if (future->state != PROA__FUTURE_PENDING)
    return PROA_ESTATE; /* nothing was taken */
  future->state = PROA__FUTURE_RESULT;
  future->value = value;
  future->free_value = free_value;
  schedule_callbacks(future);
  return 0;
}

/* Moves a pending future to an error state (cancellation included). A
 * message that cannot be copied is left out: the outcome matters more. */
static void complete_with_error(proa_future *f, uint8_t state, int error,
                                const char *message) {
  f->message = proa__strdup(message);
  f->state = state;
  f->error = error;
  schedule_callbacks(f);
}

int proa_future_set_error(proa_future *future, int error, const char *message) {
  if (!future || error >= 0)
    return PROA_EINVAL;
  if (future->state != PROA__FUTURE_PENDING)
    return PROA_ESTATE;
  complete_with_error(future, PROA__FUTURE_ERROR, error, message);
  return 0;
}

bool proa_future_cancel(proa_future *future, const char *message) {
  if (!future || future->state != PROA__FUTURE_PENDING)
    return false;
  if (future->cls && future->cls->cancel)
    return future->cls->cancel(future, message);
  return proa__future_cancel(future, message);
}

bool proa__future_cancel(proa_future *future, const char *message) {
  if (future->state != PROA__FUTURE_PENDING)
    return false;
  /* Even if the message cannot be copied or the loop is closed, the
   * future is cancelled: that is what the caller asked for. */
  complete_with_error(future, PROA__FUTURE_CANCELLED, PROA_ECANCELED, message);
  return true;
}

int proa_future_result(proa_future *future, void **value) {
  if (value)
    *value = NULL;
  if (!future)
    return PROA_EINVAL;
  switch (future->state) {
  case PROA__FUTURE_PENDING:
    return PROA_ENOTDONE;
  case PROA__FUTURE_RESULT:
    if (value)
      *value = future->value;
    return 0;
  default:
    future->retrieved = true;
    return future->error;
  }
}

int proa_future_error(proa_future *future) {
  return proa_future_result(future, NULL);
}

const char *proa_future_error_message(const proa_future *future) {
  return future->message;
}

int proa_future_add_done_callback(proa_future *future, proa_done_callback cb,
                                  void *arg) {
  return proa__future_add_done_callback(future, cb, NULL, arg);
}

int proa__future_add_done_callback(proa_future *future, proa_done_callback cb,
                                   proa_done_callback drop, void *arg) {
  if (!future || !cb)
    return PROA_EINVAL;
  if (future->state != PROA__FUTURE_PENDING && future->loop->closed)
    return PROA_ECLOSED;
  if (future->ncallbacks == future->callbacks_cap) {
    size_t cap = future->callbacks_cap * 2;
    proa__done_entry *list =
        future->callbacks == future->inline_callbacks
            ? malloc(cap * sizeof *list)
            : realloc(future->callbacks, cap * sizeof *list);
    if (!list)
      return PROA_ENOMEM;
    if (future->callbacks == future->inline_callbacks)
      memcpy(list, future->inline_callbacks, sizeof future->inline_callbacks);
    future->callbacks = list;
    future->callbacks_cap = cap;
  }
  future->callbacks[future->ncallbacks].cb = cb;
  future->callbacks[future->ncallbacks].drop = drop;
  future->callbacks[future->ncallbacks].arg = arg;
  future->ncallbacks++;
  if (future->state != PROA__FUTURE_PENDING)
    schedule_callbacks(future);
  return 0;
}

int proa_future_remove_done_callback(proa_future *future, proa_done_callback cb,
                                     void *arg) {
  size_t i, kept = 0;
  int removed = 0;
  if (!future)
    return 0;
  for (i = 0; i < future->ncallbacks; i++) {
    proa__done_entry e = future->callbacks[i];
    if (e.cb == cb && e.arg == arg)
      removed++;
    else
      future->callbacks[kept++] = e;
  }
  future->ncallbacks = kept;
  return removed;
}
