/* The loop core: lifetime, the run cycle, call_soon and its relatives. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Recycled handles kept per loop; beyond this they go back to malloc. */
#define MAX_FREE_HANDLES 1024

/* The loop running on this thread, to refuse nested runs. */
static PROA__THREAD_LOCAL proa_loop *running_loop;

static double now_seconds(void) { return (double)proa__clock_ns() / 1e9; }

double proa_loop_time(const proa_loop *loop) {
  (void)loop;
  return now_seconds();
}

char *proa__strdup(const char *s) {
  size_t len;
  char *copy;
  if (!s)
    return NULL;
  len = strlen(s) + 1;
  copy = malloc(len);
  if (copy)
    memcpy(copy, s, len);
  return copy;
}

/* ---- handles and queues ---- */

void proa__queue_push(proa__queue *q, proa_handle *h) {
  h->next = NULL;
  if (q->tail)
    q->tail->next = h;
  else
    q->head = h;
  q->tail = h;
  q->len++;
}

proa_handle *proa__queue_pop(proa__queue *q) {
  proa_handle *h = q->head;
  if (!h)
    return NULL;
  q->head = h->next;
  if (!q->head)
    q->tail = NULL;
  q->len--;
  return h;
}

/* Appends all of `from` to `to` and empties `from`. */
static void queue_splice(proa__queue *to, proa__queue *from) {
  if (!from->head)
    return;
  if (to->tail)
    to->tail->next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  to->len += from->len;
  memset(from, 0, sizeof *from);
}

static void handle_init(proa_handle *h, proa_loop *loop, proa_callback cb,
                        void *arg) {
  h->refs = 1;
  h->cb = cb;
  h->drop = NULL;
  h->arg = arg;
  h->loop = loop;
  h->when = 0;
  h->heap_index = PROA__NOT_IN_HEAP;
  h->next = NULL;
  h->state = PROA__HANDLE_SCHEDULED;
}

proa_handle *proa__handle_new(proa_loop *loop, proa_callback cb, void *arg) {
  proa_handle *h = loop->free_handles;
  if (h) {
    loop->free_handles = h->next;
    loop->nfree_handles--;
  } else {
    h = malloc(sizeof *h);
    if (!h)
      return NULL;
  }
  handle_init(h, loop, cb, arg);
  return h;
}

void proa__handle_release(proa_handle *h) {
  proa_loop *loop = h->loop;
  if (proa__atomic_add(&h->refs, -1) != 0)
    return;
  if (loop && !loop->closed && loop->nfree_handles < MAX_FREE_HANDLES) {
    h->next = loop->free_handles;
    loop->free_handles = h;
    loop->nfree_handles++;
  } else {
    free(h);
  }
}

void proa__handle_drop(proa_handle *h) {
  if (h->state == PROA__HANDLE_SCHEDULED) {
    h->state = PROA__HANDLE_DONE;
    if (h->drop)
      h->drop(h->arg);
  }
  proa__handle_release(h);
}

/* Gives the caller its own reference when it asked for the handle. */
static void hand_out(proa_handle *h, proa_handle **out) {
  if (!out)
    return;
  proa__atomic_add(&h->refs, 1);
  *out = h;
}

proa_handle *proa_handle_ref(proa_handle *handle) {
  proa__atomic_add(&handle->refs, 1);
  return handle;
}

void proa_handle_unref(proa_handle *handle) {
  /* The loop's own reference is released elsewhere, so this one never
   * needs the loop's free list, which another thread must not touch. */
  if (handle && proa__atomic_add(&handle->refs, -1) == 0)
    free(handle);
}

void proa_handle_cancel(proa_handle *handle) {
  if (!handle || handle->state != PROA__HANDLE_SCHEDULED)
    return;
  handle->state = PROA__HANDLE_CANCELLED;
  /* A timer leaves the heap at once; a queued call is skipped when reached. */
  if (handle->heap_index != PROA__NOT_IN_HEAP) {
    proa__timer_remove(handle->loop, handle);
    proa__handle_release(handle);
  }
}

bool proa_handle_cancelled(const proa_handle *handle) {
  return handle->state == PROA__HANDLE_CANCELLED;
}

double proa_handle_when(const proa_handle *handle) { return handle->when; }

/* ---- checks shared by the entry points ---- */

typedef struct wrong_thread {
  proa_loop *loop;
  const char *what; /* a function name: a static string */
} wrong_thread;

/* Runs on the loop thread, where reports belong. */
static void report_wrong_thread(void *arg) {
  wrong_thread *w = arg;
  proa__report(w->loop, PROA_EWRONGTHREAD,
               "%s() called from a thread other than the one running the "
               "loop; use proa_call_soon_threadsafe()",
               w->what);
  free(w);
}

int proa__loop_check_thread(proa_loop *loop, const char *what) {
  uint64_t owner = loop->thread_id;
  wrong_thread *w;
  if (!loop->debug || owner == 0 || owner == proa__thread_id())
    return 0;
  /* The caller gets the error now; the handler hears of it on the loop
   * thread, so that it never runs concurrently with the loop. */
  w = malloc(sizeof *w);
  if (w) {
    w->loop = loop;
    w->what = what;
    if (proa__call_soon_threadsafe(loop, report_wrong_thread, free, w, NULL) !=
        0)
      free(w);
  }
  return PROA_EWRONGTHREAD;
}

int proa__loop_check(proa_loop *loop, const char *what) {
  if (loop->closed)
    return PROA_ECLOSED;
  return proa__loop_check_thread(loop, what);
}

/* ---- lifetime ---- */

static bool env_flag(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0;
}

int proa_loop_new(proa_loop **out) { return proa_loop_new_ex(out, NULL); }

int proa_loop_new_ex(proa_loop **out, const proa_loop_options *opts) {
  proa_loop_options o = PROA_LOOP_OPTIONS_INIT;
  const char *backend;
  proa_loop *loop;
  int err;
  if (!out)
    return PROA_EINVAL;
  *out = NULL;
  if (proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  backend = o.backend;
  if (!backend) {
    backend = getenv("PROA_BACKEND");
    if (backend && !*backend)
      backend = NULL;
  }
  loop = calloc(1, sizeof *loop);
  if (!loop)
    return PROA_ENOMEM;
  loop->refs = 1;
  loop->slow_callback = 0.1;
  loop->debug = o.debug < 0 ? env_flag("PROA_DEBUG") : o.debug != 0;
  loop->ts_lock = proa__mutex_new();
  if (!loop->ts_lock) {
    free(loop);
    return PROA_ENOMEM;
  }
  err = proa__backend_open(loop, backend, &loop->be_ops, &loop->backend);
  if (err) {
    proa__mutex_free(loop->ts_lock);
    free(loop);
    return err;
  }
  loop->backend_name = loop->be_ops->name;
  *out = loop;
  return 0;
}

const char *proa_loop_backend(const proa_loop *loop) {
  return loop->backend_name;
}

void proa__resource_add(proa_loop *loop, proa__resource *r,
                        void (*close_now)(proa__resource *r)) {
  r->close_now = close_now;
  proa__list_push(&loop->resources, &r->link);
}

void proa__resource_remove(proa_loop *loop, proa__resource *r) {
  if (!r->close_now)
    return; /* not registered, or removed already */
  proa__list_remove(&loop->resources, &r->link);
  r->close_now = NULL;
}

/* Sockets still open at close are shut now; debug mode names them. */
static void close_resources(proa_loop *loop) {
  while (!proa__list_empty(&loop->resources)) {
    proa__resource *r =
        PROA__CONTAINER(loop->resources.head, proa__resource, link);
    void (*close_now)(proa__resource *) = r->close_now;
    if (loop->debug)
      proa_loop_log(loop, PROA_LOG_WARNING,
                    "%p still open when the loop closed; closing it",
                    (void *)r);
    proa__resource_remove(loop, r);
    close_now(r);
  }
}

/*
 * Waits for the completions of what close_resources cancelled, as asyncio's
 * IocpProactor.close does: on Windows the kernel owns an operation's memory
 * (its OVERLAPPED, a send buffer, a pre-created AcceptEx socket) until its
 * completion arrives, so nothing may be freed before. The wait is bounded:
 * a completion that never comes (a broken layered provider) costs a leak,
 * never a use after free.
 */
#define DRAIN_SECONDS 5.0

static void drain_backend(proa_loop *loop) {
  double deadline = now_seconds() + DRAIN_SECONDS;
  while (loop->be_ops->inflight(loop->backend) > 0) {
    if (now_seconds() > deadline) {
      proa_loop_log(loop, PROA_LOG_ERROR,
                    "%lu operations still in flight %.0f s after the loop "
                    "closed; their memory is leaked",
                    (unsigned long)loop->be_ops->inflight(loop->backend),
                    DRAIN_SECONDS);
      loop->be_leaked = true;
      return;
    }
    if (loop->be_ops->poll(loop->backend, 10) != 0) {
      loop->be_leaked = true;
      return;
    }
  }
}

/* Frees a cache of blocks linked through their first field. */
static void free_list(void **head, size_t *count) {
  while (*head) {
    void *block = *head;
    *head = *(void **)block;
    free(block);
  }
  *count = 0;
}

static void drop_queue(proa__queue *q) {
  proa_handle *h;
  while ((h = proa__queue_pop(q)) != NULL)
    proa__handle_drop(h);
}

int proa_loop_close(proa_loop *loop) {
  proa__queue pending;
  if (!loop)
    return PROA_EINVAL;
  if (loop->running)
    return PROA_ERUNNING;
  if (loop->closed)
    return 0;
  proa__signals_close(loop);
  proa__executor_close(loop);
  proa__tasks_close(loop);
  close_resources(loop);
  drain_backend(loop);
  /* From here on call_soon_threadsafe refuses, and never touches the
   * backend again, so the backend can go. */
  proa__mutex_lock(loop->ts_lock);
  loop->ts_closed = true;
  pending = loop->ts_queue;
  memset(&loop->ts_queue, 0, sizeof loop->ts_queue);
  proa__mutex_unlock(loop->ts_lock);
  loop->closed = true;
  drop_queue(&pending);
  drop_queue(&loop->ready);
  proa__futures_drop_stalled(loop);
  proa__timers_clear(loop);
  while (loop->free_handles) {
    proa_handle *h = loop->free_handles;
    loop->free_handles = h->next;
    free(h);
  }
  loop->nfree_handles = 0;
  free_list(&loop->free_chunks, &loop->nfree_chunks);
  free_list(&loop->free_sendbufs, &loop->nfree_sendbufs);
  if (!loop->be_leaked) /* else the kernel may still write into it */
    loop->be_ops->free(loop->backend);
  loop->backend = NULL;
  return 0;
}

proa_loop *proa_loop_ref(proa_loop *loop) {
  proa__atomic_add(&loop->refs, 1);
  return loop;
}

void proa_loop_unref(proa_loop *loop) {
  if (!loop || proa__atomic_add(&loop->refs, -1) > 0)
    return;
  if (!loop->closed && loop->debug)
    proa_loop_log(loop, PROA_LOG_WARNING,
                  "loop %p freed without proa_loop_close(); closing it now",
                  (void *)loop);
  proa_loop_close(loop);
  free(loop->signals);
  free(loop->read_buf);
  proa__mutex_free(loop->ts_lock);
  free(loop);
}

int proa_loop_free(proa_loop *loop) {
  int err;
  if (!loop)
    return 0;
  err = proa_loop_close(loop);
  if (err)
    return err;
  proa_loop_unref(loop);
  return 0;
}

bool proa_loop_is_running(const proa_loop *loop) { return loop->running; }
bool proa_loop_is_closed(const proa_loop *loop) { return loop->closed; }

/* ---- debug settings ---- */

void proa_loop_set_debug(proa_loop *loop, bool enabled) {
  loop->debug = enabled;
}
bool proa_loop_get_debug(const proa_loop *loop) { return loop->debug; }

void proa_loop_set_slow_callback_duration(proa_loop *loop, double seconds) {
  loop->slow_callback = seconds;
}
double proa_loop_get_slow_callback_duration(const proa_loop *loop) {
  return loop->slow_callback;
}

/* ---- scheduling ---- */

/*
 * Moves what other threads handed over to the ready queue. Called before
 * every call_soon too, so that a thread-safe call made before a call_soon
 * runs before it (asyncio's order), from whichever thread it came.
 */
static void take_threadsafe(proa_loop *loop) {
  proa__queue q;
  /* Most iterations have nothing from other threads: skip the lock. */
  if (!proa__atomic_load(&loop->ts_pending))
    return;
  proa__mutex_lock(loop->ts_lock);
  proa__atomic_store(&loop->ts_pending, 0);
  q = loop->ts_queue;
  memset(&loop->ts_queue, 0, sizeof loop->ts_queue);
  loop->ts_woken = false;
  proa__mutex_unlock(loop->ts_lock);
  queue_splice(&loop->ready, &q);
}

int proa_call_soon(proa_loop *loop, proa_callback cb, void *arg,
                   proa_handle **out) {
  proa_handle *h;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !cb)
    return PROA_EINVAL;
  err = proa__loop_check(loop, "proa_call_soon");
  if (err)
    return err;
  h = proa__handle_new(loop, cb, arg);
  if (!h)
    return PROA_ENOMEM;
  take_threadsafe(loop);
  proa__queue_push(&loop->ready, h);
  hand_out(h, out);
  return 0;
}

int proa__call_soon(proa_loop *loop, proa_callback cb, proa_callback drop,
                    void *arg) {
  proa_handle *h;
  if (loop->closed)
    return PROA_ECLOSED;
  h = proa__handle_new(loop, cb, arg);
  if (!h)
    return PROA_ENOMEM;
  h->drop = drop;
  take_threadsafe(loop);
  proa__queue_push(&loop->ready, h);
  return 0;
}

int proa_call_soon_threadsafe(proa_loop *loop, proa_callback cb, void *arg,
                              proa_handle **out) {
  return proa__call_soon_threadsafe(loop, cb, NULL, arg, out);
}

proa_handle *proa__threadsafe_prepare(proa_loop *loop, proa_callback cb,
                                      proa_callback drop, void *arg) {
  /* Another thread must not touch the loop's free list: plain malloc. */
  proa_handle *h = malloc(sizeof *h);
  if (h) {
    handle_init(h, loop, cb, arg);
    h->drop = drop;
  }
  return h;
}

void proa__threadsafe_discard(proa_handle *h) { free(h); }

int proa__threadsafe_post(proa_handle *h) {
  proa_loop *loop = h->loop;
  bool wake;
  proa__mutex_lock(loop->ts_lock);
  if (loop->ts_closed) {
    proa__mutex_unlock(loop->ts_lock);
    free(h);
    return PROA_ECLOSED;
  }
  proa__queue_push(&loop->ts_queue, h);
  proa__atomic_store(&loop->ts_pending, 1);
  wake = !loop->ts_woken;
  loop->ts_woken = true;
  /* Woken under the lock so that close cannot free the backend meanwhile. */
  if (wake)
    loop->be_ops->wakeup(loop->backend);
  proa__mutex_unlock(loop->ts_lock);
  return 0;
}

int proa__call_soon_threadsafe(proa_loop *loop, proa_callback cb,
                               proa_callback drop, void *arg,
                               proa_handle **out) {
  proa_handle *h;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !cb)
    return PROA_EINVAL;
  h = proa__threadsafe_prepare(loop, cb, drop, arg);
  if (!h)
    return PROA_ENOMEM;
  /* The caller's reference first: once posted, the loop may run and
   * release the handle at any moment. */
  if (out)
    proa__atomic_add(&h->refs, 1);
  err = proa__threadsafe_post(h); /* frees h on PROA_ECLOSED */
  if (!err && out)
    *out = h;
  return err;
}

int proa_call_at(proa_loop *loop, double when, proa_callback cb, void *arg,
                 proa_handle **out) {
  proa_handle *h;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !cb || isnan(when))
    return PROA_EINVAL;
  err = proa__loop_check(loop, "proa_call_at");
  if (err)
    return err;
  h = proa__handle_new(loop, cb, arg);
  if (!h)
    return PROA_ENOMEM;
  h->when = when;
  err = proa__timer_push(loop, h);
  if (err) {
    proa__handle_release(h);
    return err;
  }
  hand_out(h, out);
  return 0;
}

int proa_call_later(proa_loop *loop, double delay, proa_callback cb, void *arg,
                    proa_handle **out) {
  if (isnan(delay)) {
    if (out)
      *out = NULL;
    return PROA_EINVAL;
  }
  return proa_call_at(loop, now_seconds() + delay, cb, arg, out);
}

/* ---- the run cycle ---- */

static void run_handle(proa_loop *loop, proa_handle *h) {
  double start, took;
  h->state = PROA__HANDLE_DONE; /* a cancel from inside is now a no-op */
  if (!loop->debug) {
    h->cb(h->arg);
    return;
  }
  start = now_seconds();
  h->cb(h->arg);
  took = now_seconds() - start;
  if (took >= loop->slow_callback)
    proa_loop_log(loop, PROA_LOG_WARNING,
                  "Executing handle %p took %.3f seconds", (void *)h, took);
}

/* One iteration: poll for I/O, collect due timers, run one batch. */
static int run_once(proa_loop *loop) {
  int64_t timeout = 0;
  size_t n;
  int err;
  if (!loop->ready.len && !loop->stopping && !loop->stalled)
    timeout = proa__timers_timeout_ms(loop, now_seconds());
  err = loop->be_ops->poll(loop->backend, timeout);
  if (err)
    return err;
  take_threadsafe(loop);
  proa__timers_run_due(loop, now_seconds());
  proa__futures_run_stalled(loop);
  /* Only this batch: what it schedules waits for the next iteration. */
  for (n = loop->ready.len; n > 0; n--) {
    proa_handle *h = proa__queue_pop(&loop->ready);
    if (h->state == PROA__HANDLE_SCHEDULED)
      run_handle(loop, h);
    proa__handle_release(h);
  }
  return 0;
}

int proa_loop_run_forever(proa_loop *loop) {
  int err;
  if (!loop)
    return PROA_EINVAL;
  if (loop->closed)
    return PROA_ECLOSED;
  if (loop->running || running_loop)
    return PROA_ERUNNING;
  loop->running = true;
  loop->thread_id = proa__thread_id();
  running_loop = loop;
  do
    err = run_once(loop);
  while (!err && !loop->stopping);
  loop->stopping = false;
  loop->running = false;
  loop->thread_id = 0;
  running_loop = NULL;
  return err;
}

int proa_loop_stop(proa_loop *loop) {
  int err;
  if (!loop)
    return PROA_EINVAL;
  err = proa__loop_check_thread(loop, "proa_loop_stop");
  if (err)
    return err;
  loop->stopping = true;
  return 0;
}

static void stop_on_done(proa_future *future, void *arg) {
  (void)future;
  proa_loop_stop(arg);
}

int proa_loop_run_until_complete(proa_loop *loop, proa_future *future,
                                 void **result) {
  int err;
  if (result)
    *result = NULL;
  if (!loop || !future || proa_future_loop(future) != loop)
    return PROA_EINVAL;
  if (loop->closed)
    return PROA_ECLOSED;
  if (loop->running || running_loop)
    return PROA_ERUNNING;
  if (!proa_future_done(future)) {
    err = proa_future_add_done_callback(future, stop_on_done, loop);
    if (err)
      return err;
    err = proa_loop_run_forever(loop);
    proa_future_remove_done_callback(future, stop_on_done, loop);
    if (err)
      return err;
    if (!proa_future_done(future))
      return PROA_ESTOPPED;
  }
  return proa_future_result(future, result);
}
