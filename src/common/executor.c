/* run_in_executor and the built-in thread pool behind it. */
#include <stdlib.h>

#include "internal.h"

/* ---- the thread pool ---- */

typedef struct pool_job {
  proa_executor_job job;
  void *ctx;
  struct pool_job *next;
} pool_job;

typedef struct thread_pool {
  proa_executor base;
  proa__mutex *lock;
  proa__cond *wake;
  pool_job *head, *tail;
  unsigned queued, idle, nthreads, max_threads;
  unsigned refs; /* the owner's plus one per worker; under `lock` */
  bool shut;
} thread_pool;

static void pool_destroy(thread_pool *p) {
  proa__cond_free(p->wake);
  proa__mutex_free(p->lock);
  free(p);
}

/* Drops one reference; the caller holds the lock, which this releases. */
static void pool_release_locked(thread_pool *p) {
  bool last = --p->refs == 0;
  proa__mutex_unlock(p->lock);
  if (last)
    pool_destroy(p);
}

static void worker_main(void *arg) {
  thread_pool *p = arg;
  proa__mutex_lock(p->lock);
  for (;;) {
    pool_job *j;
    while (!p->head && !p->shut) {
      p->idle++;
      proa__cond_wait(p->wake, p->lock);
      p->idle--;
    }
    if (p->shut)
      break; /* shutdown took the queue */
    j = p->head;
    p->head = j->next;
    if (!p->head)
      p->tail = NULL;
    p->queued--;
    proa__mutex_unlock(p->lock);
    j->job(j->ctx, 0);
    free(j);
    proa__mutex_lock(p->lock);
  }
  p->nthreads--;
  pool_release_locked(p);
}

/* Starts a worker when the queue outgrows the idle ones; lock held. */
static int pool_grow_locked(thread_pool *p) {
  int err;
  if (p->queued <= p->idle || p->nthreads >= p->max_threads)
    return 0;
  p->nthreads++;
  p->refs++;
  err = proa__thread_start(worker_main, p);
  if (err) {
    p->nthreads--;
    p->refs--;
  }
  return err;
}

static int pool_submit(proa_executor *self, proa_executor_job job, void *ctx) {
  thread_pool *p = (thread_pool *)self;
  pool_job *j = malloc(sizeof *j);
  int err;
  if (!j)
    return PROA_ENOMEM;
  j->job = job;
  j->ctx = ctx;
  j->next = NULL;
  proa__mutex_lock(p->lock);
  if (p->shut) {
    proa__mutex_unlock(p->lock);
    free(j);
    return PROA_ECLOSED;
  }
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  p->queued++;
  err = pool_grow_locked(p);
  /* Without any worker a failed start means nobody would ever run it. */
  if (err && p->nthreads == 0) {
    p->head = p->tail = NULL;
    p->queued = 0;
    proa__mutex_unlock(p->lock);
    free(j);
    return err;
  }
  proa__cond_signal(p->wake);
  proa__mutex_unlock(p->lock);
  return 0;
}

static void pool_shutdown(proa_executor *self) {
  thread_pool *p = (thread_pool *)self;
  pool_job *j;
  proa__mutex_lock(p->lock);
  if (p->shut) {
    proa__mutex_unlock(p->lock);
    return;
  }
  p->shut = true;
  j = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  proa__cond_broadcast(p->wake);
  proa__mutex_unlock(p->lock);
  while (j) {
    pool_job *next = j->next;
    j->job(j->ctx, PROA_ECANCELED);
    free(j);
    j = next;
  }
}

int proa_thread_pool_new(unsigned max_threads, proa_executor **out) {
  thread_pool *p;
  if (!out)
    return PROA_EINVAL;
  *out = NULL;
  p = calloc(1, sizeof *p);
  if (!p)
    return PROA_ENOMEM;
  p->lock = proa__mutex_new();
  p->wake = proa__cond_new();
  if (!p->lock || !p->wake) {
    pool_destroy(p);
    return PROA_ENOMEM;
  }
  if (max_threads == 0) {
    max_threads = proa__cpu_count() + 4;
    if (max_threads > 32)
      max_threads = 32;
  }
  p->max_threads = max_threads;
  p->refs = 1;
  p->base.submit = pool_submit;
  p->base.shutdown = pool_shutdown;
  *out = &p->base;
  return 0;
}

void proa_thread_pool_free(proa_executor *pool) {
  thread_pool *p = (thread_pool *)pool;
  if (!p)
    return;
  pool_shutdown(pool);
  proa__mutex_lock(p->lock);
  pool_release_locked(p);
}

/* ---- run_in_executor ---- */

/*
 * One call, shared by the worker and the loop, each holding a reference.
 * The worker's side owns the loop reference it needs to post the outcome;
 * the loop's side owns the future and sits in the loop's list until the
 * outcome arrives or the loop closes.
 */
struct proa__exec_call {
  proa__atomic_int refs;
  proa_loop *loop;
  proa_future *future;
  proa_work_fn fn;
  void *arg;
  proa_free_fn free_arg; /* for an arg whose fn never ran, or NULL */
  proa_free_fn free_result;
  void *result;
  int error;
  bool dropped;         /* the executor never ran fn */
  proa_handle *post;    /* call_done's, allocated up front */
  proa__list_node link; /* in loop->exec_calls */
};

static void call_release(proa__exec_call *c) {
  if (proa__atomic_add(&c->refs, -1) != 0)
    return;
  if (c->result && c->free_result)
    c->free_result(c->result);
  free(c);
}

static void call_unlink(proa__exec_call *c) {
  proa__list_remove(&proa_future_loop(c->future)->exec_calls, &c->link);
}

/* The loop's side: completes the future with what the worker found. */
static void call_done(void *arg) {
  proa__exec_call *c = arg;
  proa_future *f = c->future;
  call_unlink(c);
  if (proa_future_done(f)) {
    /* cancelled meanwhile: the result is released with the call */
  } else if (c->dropped) {
    proa_future_cancel(f, "the executor dropped the job");
  } else if (c->error) {
    proa_future_set_error(f, c->error, NULL);
  } else {
    proa_future_set_result(f, c->result, c->free_result);
    c->result = NULL;
  }
  proa_future_unref(f);
  call_release(c);
}

/* The worker's side. */
static void call_job(void *ctx, int status) {
  proa__exec_call *c = ctx;
  proa_loop *loop = c->loop;
  if (status == 0) {
    c->error = c->fn(c->arg, &c->result);
  } else {
    c->dropped = true;
    if (c->free_arg)
      c->free_arg(c->arg);
  }
  /* The handle was allocated on the loop thread, so posting it cannot fail
   * for want of memory and leave the future pending for good. It fails
   * only with PROA_ECLOSED: the loop let go of its side at close (and
   * cancelled the future) already. */
  proa__threadsafe_post(c->post);
  call_release(c);
  proa_loop_unref(loop);
}

static int default_executor(proa_loop *loop, proa_executor **out) {
  if (!loop->executor) {
    int err = proa_thread_pool_new(0, &loop->executor);
    if (err)
      return err;
    loop->owns_executor = true;
  }
  *out = loop->executor;
  return 0;
}

static proa__exec_call *call_new(proa_loop *loop, proa_work_fn fn, void *arg,
                                 proa_free_fn free_result) {
  proa__exec_call *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->post = proa__threadsafe_prepare(loop, call_done, NULL, c);
  if (!c->post || proa_future_new(loop, &c->future) != 0) {
    if (c->post)
      proa__threadsafe_discard(c->post);
    free(c);
    return NULL;
  }
  c->refs = 2;
  c->loop = proa_loop_ref(loop);
  c->fn = fn;
  c->arg = arg;
  c->free_result = free_result;
  proa__list_push(&loop->exec_calls, &c->link);
  return c;
}

int proa_run_in_executor(proa_loop *loop, proa_executor *executor,
                         proa_work_fn fn, void *arg, proa_free_fn free_result,
                         proa_future **out) {
  return proa__run_in_executor(loop, executor, fn, arg, NULL, free_result, out);
}

int proa__run_in_executor(proa_loop *loop, proa_executor *executor,
                          proa_work_fn fn, void *arg, proa_free_fn free_arg,
                          proa_free_fn free_result, proa_future **out) {
  proa__exec_call *c;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !fn || !out)
    return PROA_EINVAL;
  err = proa__loop_check(loop, "proa_run_in_executor");
  if (!err && !executor)
    err = default_executor(loop, &executor);
  if (err)
    return err;
  c = call_new(loop, fn, arg, free_result);
  if (!c)
    return PROA_ENOMEM;
  c->free_arg = free_arg;
  *out = proa_future_ref(c->future);
  err = executor->submit(executor, call_job, c);
  if (err) {
    /* Never submitted: undo both sides here. */
    call_unlink(c);
    proa__threadsafe_discard(c->post);
    proa_future_unref(c->future);
    proa_loop_unref(c->loop);
    free(c);
    proa_future_unref(*out);
    *out = NULL;
  }
  return err;
}

int proa_loop_set_default_executor(proa_loop *loop, proa_executor *executor) {
  int err = proa__loop_check(loop, "proa_loop_set_default_executor");
  if (err)
    return err;
  if (loop->owns_executor)
    proa_thread_pool_free(loop->executor);
  loop->executor = executor;
  loop->owns_executor = false;
  return 0;
}

void proa__executor_close(proa_loop *loop) {
  /* Let go of the loop's side of every call still out there; a worker
   * that finishes later finds the loop closed and cleans up alone. */
  while (!proa__list_empty(&loop->exec_calls)) {
    proa__exec_call *c =
        PROA__CONTAINER(loop->exec_calls.head, proa__exec_call, link);
    proa__list_remove(&loop->exec_calls, &c->link);
    proa_future_cancel(c->future, "the event loop was closed");
    proa_future_unref(c->future);
    call_release(c);
  }
  if (loop->executor) {
    if (loop->owns_executor)
      proa_thread_pool_free(loop->executor);
    else
      loop->executor->shutdown(loop->executor);
  }
  loop->executor = NULL;
  loop->owns_executor = false;
}
