/* Tasks (stackful coroutines as futures), await, sleep, gather, wait_for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "internal.h"

typedef struct task {
  proa_future future; /* first: a task is a future */
  proa_task_fn fn;
  void *arg;
  proa_free_fn free_result;
  char *name;
  char *cancel_message; /* given to the latest proa_future_cancel, or NULL */
  proa__coro *coro;
  proa_future *awaiting; /* what the suspended task waits for */
  bool started;
  bool cancel_pending; /* a cancel not yet delivered to an await */
  bool cancel_requested;
  bool cancel_wake_scheduled;
  proa__list_node link; /* in the loop's unfinished tasks */
} task;

static PROA__THREAD_LOCAL task *current;

static task *as_task(proa_future *f) { return (task *)(void *)f; }

proa_future *proa_current_task(void) {
  return current ? &current->future : NULL;
}

/* ---- the loop's list of unfinished tasks ---- */

static void link_task(task *t) {
  proa__list_push(&t->future.loop->tasks, &t->link);
}

static void unlink_task(task *t) {
  proa__list_remove(&t->future.loop->tasks, &t->link);
}

/* ---- running ---- */

/* The task's end: its stack goes back to the pool, its self-reference. */
static void task_finished(task *t) {
  proa__coro_free(t->coro);
  t->coro = NULL;
  unlink_task(t);
  proa_future_unref(&t->future);
}

/* Runs the task until its next await (or its end), from the loop's stack. */
static void resume(task *t) {
  task *outer = current;
  current = t;
  proa__coro_resume(t->coro);
  current = outer;
  if (proa__coro_done(t->coro))
    task_finished(t);
}

/* On the task's stack: run the body, then settle the future. */
static void task_body(void *arg) {
  task *t = arg;
  void *result = NULL;
  int rc = t->fn(t->arg, &result);
  if (t->cancel_requested || rc == PROA_ECANCELED) {
    /* A cancelled task ends cancelled, whatever it returned; so does one
     * that passes on the PROA_ECANCELED of what it awaited (asyncio's
     * CancelledError leaving the coroutine): that is no error to report. */
    if (result && t->free_result)
      t->free_result(result);
    proa__future_cancel(&t->future, t->cancel_message);
  } else if (rc) {
    if (result && t->free_result)
      t->free_result(result);
    proa_future_set_error(&t->future, rc < 0 ? rc : PROA_EUNKNOWN, NULL);
  } else if (proa_future_set_result(&t->future, result, t->free_result) &&
             result && t->free_result) {
    t->free_result(result); /* someone completed the task's future */
  }
}

static void start_cb(void *arg) {
  task *t = arg;
  t->started = true;
  if (t->cancel_requested) {
    /* Cancelled before it ran: like asyncio, the body never runs. */
    proa__future_cancel(&t->future, t->cancel_message);
    task_finished(t);
    return;
  }
  resume(t);
}

/* The loop closed before the task started: only the reference remains. */
static void start_drop(void *arg) { (void)arg; }

/* ---- await ---- */

static void wake(proa_future *f, void *arg) {
  task *t = arg;
  if (t->awaiting == f && t->coro)
    resume(t);
}

static void cancel_wake(void *arg) {
  task *t = arg;
  t->cancel_wake_scheduled = false;
  if (t->awaiting && t->cancel_pending && t->coro)
    resume(t);
  proa_future_unref(&t->future);
}

static void cancel_wake_drop(void *arg) {
  task *t = arg;
  proa_future_unref(&t->future);
}

int proa_await(proa_future *future, void **result) {
  task *t = current;
  int err;
  if (result)
    *result = NULL;
  if (!future)
    return PROA_EINVAL;
  if (!t)
    return PROA_ENOTINTASK;
  if (future == &t->future)
    return PROA_EINVAL; /* it would wait for itself forever */
  if (future->loop != t->future.loop)
    return PROA_EINVAL; /* its callbacks would run on another thread */
  if (!t->cancel_pending && !proa_future_done(future)) {
    err = proa_future_add_done_callback(future, wake, t);
    if (err)
      return err;
    t->awaiting = proa_future_ref(future);
    proa__coro_yield(t->coro);
    t->awaiting = NULL;
    proa_future_remove_done_callback(future, wake, t);
    proa_future_unref(future);
  }
  if (t->cancel_pending) {
    t->cancel_pending = false;
    return PROA_ECANCELED;
  }
  return proa_future_result(future, result);
}

/* ---- cancel and destroy ---- */

/*
 * asyncio's Task.cancel: the future the task awaits is cancelled (its
 * wake-up then resumes the task), and the await returns PROA_ECANCELED
 * once. When that future cannot be cancelled (it is done, its wake-up on
 * its way), or the task awaits nothing, the cancellation waits for the
 * task's next await, or is delivered by a scheduled wake-up.
 */
static bool task_cancel(proa_future *f, const char *message) {
  task *t = as_task(f);
  char *copy = proa__strdup(message);
  /* The latest message wins (a retried cancel replaces it); without
   * memory for it the task is cancelled all the same, without one. */
  free(t->cancel_message);
  t->cancel_message = copy;
  if (!t->cancel_requested) {
    t->cancel_requested = true;
    t->cancel_pending = true;
  }
  if (t->awaiting && proa_future_cancel(t->awaiting, t->cancel_message))
    return true;
  /* Never resumed from inside the caller: the wake-up is scheduled. */
  if (t->awaiting && !t->cancel_wake_scheduled) {
    proa_future_ref(f);
    if (proa__call_soon(f->loop, cancel_wake, cancel_wake_drop, f) == 0)
      t->cancel_wake_scheduled = true;
    else
      proa_future_unref(f);
  }
  return true;
}

static void task_destroy(proa_future *f) {
  task *t = as_task(f);
  free(t->name);
  free(t->cancel_message);
}

static const proa__future_class task_class = {task_cancel, task_destroy};

bool proa_future_is_task(const proa_future *future) {
  return future && future->cls == &task_class;
}

/* asyncio's report of a task garbage-collected while pending, in every
 * mode: its frames are lost, which the application must hear of. */
static void report_destroyed_pending(task *t) {
  proa_context ctx = PROA_CONTEXT_INIT;
  char detail[128];
  ctx.message = "Task was destroyed but it is pending";
  if (t->name) {
    snprintf(detail, sizeof detail, "task '%s'", t->name);
    ctx.error_message = detail;
  }
  ctx.future = &t->future;
  proa_loop_call_exception_handler(t->future.loop, &ctx);
}

/*
 * At close: tasks that never finished are dropped. Their stacks are freed
 * without unwinding, so what their frames held is lost; the exception
 * handler hears of each. (A pending task holds a reference to itself, so
 * the close is the only way one is destroyed.)
 */
void proa__tasks_close(proa_loop *loop) {
  while (!proa__list_empty(&loop->tasks)) {
    task *t = PROA__CONTAINER(loop->tasks.head, task, link);
    report_destroyed_pending(t);
    if (t->awaiting) {
      proa_future_remove_done_callback(t->awaiting, wake, t);
      proa_future_unref(t->awaiting);
      t->awaiting = NULL;
    }
    task_finished(t);
  }
}

/* ---- creation ---- */

int proa_task_new(proa_loop *loop, proa_task_fn fn, void *arg,
                  const proa_task_options *opts, proa_future **out) {
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  task *t;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !fn || !out)
    return PROA_EINVAL;
  if (proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  t = calloc(1, sizeof *t);
  if (!t)
    return PROA_ENOMEM;
  err = proa__future_init(&t->future, loop, &task_class);
  if (err) {
    free(t);
    return err;
  }
  t->fn = fn;
  t->arg = arg;
  t->free_result = o.free_result;
  t->name = proa__strdup(o.name); /* a name is a nicety: NULL is fine */
  err = proa__coro_new(o.stack_size, task_body, t, &t->coro);
  /* The task holds a reference to itself until it finishes. */
  if (!err)
    err = proa__call_soon(loop, start_cb, start_drop, t);
  if (err) {
    proa__coro_free(t->coro);
    t->coro = NULL;
    proa_future_unref(&t->future);
    return err;
  }
  link_task(t);
  *out = proa_future_ref(&t->future);
  return 0;
}

int proa_create_task(proa_loop *loop, proa_task_fn fn, void *arg,
                     const proa_task_options *opts, proa_future **out) {
  if (loop && loop->task_factory)
    return loop->task_factory(loop, fn, arg, opts, loop->task_factory_arg, out);
  return proa_task_new(loop, fn, arg, opts, out);
}

int proa_loop_set_task_factory(proa_loop *loop, proa_task_factory factory,
                               void *factory_arg) {
  int err = proa__loop_check_thread(loop, "proa_loop_set_task_factory");
  if (err)
    return err;
  loop->task_factory = factory;
  loop->task_factory_arg = factory ? factory_arg : NULL;
  return 0;
}

proa_task_factory proa_loop_get_task_factory(const proa_loop *loop,
                                             void **arg) {
  if (arg)
    *arg = loop->task_factory_arg;
  return loop->task_factory;
}

/* ---- sleep ---- */

typedef struct sleeper {
  proa_future future;
  proa_handle *timer;
} sleeper;

static void sleep_done(void *arg) {
  sleeper *s = arg;
  proa_future_set_result(&s->future, NULL, NULL);
}

static bool sleep_cancel(proa_future *f, const char *message) {
  proa_handle_cancel(((sleeper *)(void *)f)->timer);
  return proa__future_cancel(f, message);
}

/* The timer holds no reference: a sleep nobody holds stops its timer. */
static void sleep_destroy(proa_future *f) {
  sleeper *s = (sleeper *)(void *)f;
  proa_handle_cancel(s->timer);
  proa_handle_unref(s->timer);
}

static const proa__future_class sleep_class = {sleep_cancel, sleep_destroy};

int proa_sleep(proa_loop *loop, double seconds, proa_future **out) {
  sleeper *s;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || seconds != seconds)
    return PROA_EINVAL;
  s = calloc(1, sizeof *s);
  if (!s)
    return PROA_ENOMEM;
  err = proa__future_init(&s->future, loop, &sleep_class);
  if (!err)
    err = proa_call_later(loop, seconds, sleep_done, s, &s->timer);
  if (err) {
    if (s->future.loop)
      proa_future_unref(&s->future);
    else
      free(s);
    return err;
  }
  *out = &s->future;
  return 0;
}

/* ---- gather ---- */

typedef struct gatherer {
  proa_future future;
  proa_future **children;
  size_t count, remaining;
} gatherer;

static void gather_child_done(proa_future *child, void *arg) {
  gatherer *g = arg;
  int err = proa_future_error(child);
  if (err && !proa_future_done(&g->future))
    proa_future_set_error(&g->future, err, proa_future_error_message(child));
  if (--g->remaining == 0 && !proa_future_done(&g->future))
    proa_future_set_result(&g->future, NULL, NULL);
  proa_future_unref(&g->future); /* the child's callback held one */
}

static bool gather_cancel(proa_future *f, const char *message) {
  gatherer *g = (gatherer *)(void *)f;
  size_t i;
  bool done = proa__future_cancel(f, message);
  for (i = 0; i < g->count; i++)
    proa_future_cancel(g->children[i], message);
  return done;
}

static void gather_destroy(proa_future *f) {
  gatherer *g = (gatherer *)(void *)f;
  size_t i;
  for (i = 0; i < g->count; i++)
    proa_future_unref(g->children[i]);
  free(g->children);
}

static const proa__future_class gather_class = {gather_cancel, gather_destroy};

int proa_gather(proa_loop *loop, proa_future *const *futures, size_t count,
                proa_future **out) {
  gatherer *g;
  size_t i;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || (count && !futures))
    return PROA_EINVAL;
  for (i = 0; i < count; i++)
    if (!futures[i] || proa_future_loop(futures[i]) != loop)
      return PROA_EINVAL;
  g = calloc(1, sizeof *g);
  if (g)
    g->children = malloc((count ? count : 1) * sizeof *futures);
  if (!g || !g->children) {
    free(g);
    return PROA_ENOMEM;
  }
  err = proa__future_init(&g->future, loop, &gather_class);
  if (err) {
    free(g->children);
    free(g);
    return err;
  }
  for (i = 0; i < count; i++)
    g->children[g->count++] = proa_future_ref(futures[i]);
  g->remaining = count;
  for (i = 0; i < count && !err; i++) {
    proa_future_ref(&g->future);
    err = proa_future_add_done_callback(futures[i], gather_child_done, g);
    if (err) {
      proa_future_unref(&g->future);
      g->remaining -= count - i; /* those will never report */
    }
  }
  if (err)
    proa_future_set_error(&g->future, err, NULL);
  else if (count == 0)
    proa_future_set_result(&g->future, NULL, NULL);
  *out = &g->future;
  return 0;
}

/* ---- wait_for ---- */

typedef struct waiter {
  proa_future future;
  proa_future *inner;
  proa_handle *timer;
} waiter;

static void wait_inner_done(proa_future *inner, void *arg) {
  waiter *w = arg;
  void *value;
  int err = proa_future_result(inner, &value);
  proa_handle_cancel(w->timer);
  if (!proa_future_done(&w->future)) {
    if (err)
      proa_future_set_error(&w->future, err, proa_future_error_message(inner));
    else /* the value stays owned by `inner`, which w keeps alive */
      proa_future_set_result(&w->future, value, NULL);
  }
  proa_future_unref(&w->future);
}

static void wait_timeout(void *arg) {
  waiter *w = arg;
  if (!proa_future_done(&w->future))
    proa_future_set_error(&w->future, PROA_ETIMEDOUT, NULL);
  proa_future_cancel(w->inner, "timed out");
}

static bool wait_cancel(proa_future *f, const char *message) {
  waiter *w = (waiter *)(void *)f;
  proa_handle_cancel(w->timer);
  proa_future_cancel(w->inner, message);
  return proa__future_cancel(f, message);
}

static void wait_destroy(proa_future *f) {
  waiter *w = (waiter *)(void *)f;
  proa_handle_cancel(w->timer);
  proa_handle_unref(w->timer);
  proa_future_unref(w->inner);
}

static const proa__future_class wait_class = {wait_cancel, wait_destroy};

int proa_wait_for(proa_loop *loop, proa_future *future, double timeout,
                  proa_future **out) {
  waiter *w;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !future || !out || timeout != timeout ||
      proa_future_loop(future) != loop)
    return PROA_EINVAL;
  w = calloc(1, sizeof *w);
  if (!w)
    return PROA_ENOMEM;
  err = proa__future_init(&w->future, loop, &wait_class);
  if (err) {
    free(w);
    return err;
  }
  w->inner = proa_future_ref(future);
  err = proa_call_later(loop, timeout, wait_timeout, w, &w->timer);
  if (!err) {
    proa_future_ref(&w->future); /* for the inner future's callback */
    err = proa_future_add_done_callback(future, wait_inner_done, w);
    if (err)
      proa_future_unref(&w->future);
  }
  if (err) {
    proa_future_unref(&w->future); /* destroy cancels the timer */
    return err;
  }
  *out = &w->future;
  return 0;
}
