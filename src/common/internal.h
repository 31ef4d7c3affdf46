/* The loop's private state, shared by the files of src/common. */
#ifndef PROA_INTERNAL_H
#define PROA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proa.h"
#include "atomic.h"
#include "backend.h"
#include "list.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define PROA__THREAD_LOCAL __declspec(thread)
#else
#define PROA__THREAD_LOCAL _Thread_local
#endif

enum proa__handle_state {
  PROA__HANDLE_SCHEDULED, /* queued or in the timer heap */
  PROA__HANDLE_CANCELLED,
  PROA__HANDLE_DONE /* ran, or the loop dropped it at close */
};

struct proa_handle {
  proa__atomic_int refs; /* the loop's while scheduled, plus the user's */
  proa_callback cb;
  proa_callback drop; /* internal: runs instead of cb if the loop drops it */
  void *arg;
  proa_loop *loop;
  double when;       /* deadline of a timer, 0 otherwise */
  uint64_t seq;      /* a timer's scheduling order, to break ties on `when` */
  size_t heap_index; /* position in the timer heap, or PROA__NOT_IN_HEAP */
  proa_handle *next; /* link in the ready or the threadsafe queue */
  uint8_t state;     /* enum proa__handle_state */
};

#define PROA__NOT_IN_HEAP SIZE_MAX

/* A FIFO of handles linked through `next`. */
typedef struct proa__queue {
  proa_handle *head, *tail;
  size_t len;
} proa__queue;

typedef struct proa__exec_call proa__exec_call;

/*
 * Something that owns OS sockets (a transport, an endpoint, a server, a
 * connection attempt). If the loop is closed while it is still open,
 * close_now shuts its sockets at once, without callbacks, so that nothing
 * outlives the backend.
 */
typedef struct proa__resource {
  void (*close_now)(struct proa__resource *r);
  proa__list_node link; /* in loop->resources */
} proa__resource;

typedef struct proa__signal_slot {
  proa_callback cb;
  void *arg;
} proa__signal_slot;

struct proa_loop {
  proa__atomic_int refs;  /* atomic: futures may be released off-thread */
  proa__backend *backend; /* NULL once the loop is closed */
  const proa__backend_ops *be_ops; /* the backend's table */
  bool be_leaked; /* closing gave up waiting for the backend's ops */
  const char *backend_name;
  bool closed;
  bool running;
  bool stopping;
  bool debug;
  uint64_t thread_id; /* the thread running the loop, 0 when not running */
  double slow_callback;

  proa__queue ready;
  proa_handle **timers; /* binary min-heap on (`when`, `seq`) */
  size_t ntimers, timers_cap;
  uint64_t timer_seq; /* the next timer's seq */

  /* call_soon_threadsafe hands over handles through this queue. */
  proa__mutex *ts_lock;
  proa__queue ts_queue;
  proa__atomic_int ts_pending; /* ts_queue is not empty: worth the lock */
  bool ts_closed;
  bool ts_woken; /* a wake-up is on its way; do not send another */

  proa_exception_handler exc_handler;
  void *exc_arg;
  proa_log_sink log_sink;
  void *log_arg;

  proa__signal_slot *signals; /* indexed by signal number, lazily allocated */
  int nsignals;

  proa_executor *executor; /* the default executor, NULL until needed */
  bool owns_executor;      /* it is the built-in pool, freed at close */
  proa__list exec_calls;   /* run_in_executor calls still in flight */
  proa__list resources;    /* open socket owners (see proa__resource) */

  /* Futures whose callbacks could not be queued for want of a handle;
   * the next iteration runs them (future.c). Linked through stalled_next,
   * each holding a reference. */
  proa_future *stalled, *stalled_tail;

  proa_handle *free_handles; /* recycled handles, linked through `next` */
  size_t nfree_handles;

  /* Shared by every datagram endpoint: datagrams land here and are handed
   * to datagram_received at once, so idle endpoints own no buffer. */
  char *read_buf;
  size_t read_buf_size;
  /* Tasks not finished yet (task.c), and the task factory. */
  proa__list tasks;
  proa_task_factory task_factory;
  void *task_factory_arg;
  /* Recycled write-queue chunks of the standard size, and the buffer lists
   * that a transport holds only while a queued send is in flight. Both are
   * linked through their first field. */
  void *free_chunks;
  size_t nfree_chunks;
  void *free_sendbufs;
  size_t nfree_sendbufs;
};

enum proa__future_state {
  PROA__FUTURE_PENDING,
  PROA__FUTURE_RESULT,
  PROA__FUTURE_ERROR,
  PROA__FUTURE_CANCELLED
};

typedef struct proa__done_entry {
  proa_done_callback cb;
  proa_done_callback drop; /* internal: runs instead if the loop closes */
  void *arg;
} proa__done_entry;

/*
 * What makes a future special (a task, a sleep, a gather): a cancel that
 * does more than complete it, and a destructor for what it holds.
 */
typedef struct proa__future_class {
  /* Replaces proa_future_cancel for a pending future. */
  bool (*cancel)(proa_future *f, const char *message);
  /* Releases the extra state before the memory goes. */
  void (*destroy)(proa_future *f);
} proa__future_class;

struct proa_future {
  proa__atomic_int refs; /* atomic: a worker thread may drop its reference */
  const proa__future_class *cls; /* NULL for a plain future */
  proa_loop *loop;               /* holds a reference */
  uint8_t state;                 /* enum proa__future_state */
  bool retrieved;                /* the error was looked at: do not report it */
  bool callbacks_scheduled;
  int error;
  char *message;
  void *value;
  proa_free_fn free_value;
  proa__done_entry *callbacks; /* `inline_callbacks` or a heap array */
  size_t ncallbacks, callbacks_cap;
  proa__done_entry inline_callbacks[2];
  /* In loop->stalled: its callbacks wait for a handle (out of memory). */
  proa_future *stalled_next;
};

/* ---- futures (future.c) ---- */
/* Initialises a future embedded first in a larger, calloc'ed struct. */
int proa__future_init(proa_future *f, proa_loop *loop,
                      const proa__future_class *cls);
/* add_done_callback whose `drop` (may be NULL) runs instead of cb when the
 * loop closes before the callbacks ran, to release what arg holds. */
int proa__future_add_done_callback(proa_future *f, proa_done_callback cb,
                                   proa_done_callback drop, void *arg);
/* The plain cancel, for classes whose cancel hook ends with it. */
bool proa__future_cancel(proa_future *f, const char *message);
/* The loop's run cycle: runs the callbacks of the stalled futures. */
void proa__futures_run_stalled(proa_loop *loop);
/* At close: drops them instead. */
void proa__futures_drop_stalled(proa_loop *loop);

/* Reads the caller's options struct `src` (NULL: none) over the defaults
 * in `dst`, a struct of `known` bytes that starts with its size (see
 * options.c). Returns 0 or PROA_EINVAL for a size this library cannot
 * take. */
int proa__options_read(void *dst, size_t known, const void *src);

/* A copy of `s` (NULL for NULL, or when out of memory). */
char *proa__strdup(const char *s);

/* ---- handles and queues (loop.c) ---- */
proa_handle *proa__handle_new(proa_loop *loop, proa_callback cb, void *arg);
/* At close: marks a scheduled handle done (running its drop function) and
 * releases the loop's reference. */
void proa__handle_drop(proa_handle *h);
/* Drops the loop's reference, recycling the handle when it was the last. */
void proa__handle_release(proa_handle *h);
void proa__queue_push(proa__queue *q, proa_handle *h);
/* call_soon for the library's own callbacks: `drop` (may be NULL) runs
 * instead of `cb` when the loop closes first, to release what arg holds. */
int proa__call_soon(proa_loop *loop, proa_callback cb, proa_callback drop,
                    void *arg);
/* The same for call_soon_threadsafe. */
int proa__call_soon_threadsafe(proa_loop *loop, proa_callback cb,
                               proa_callback drop, void *arg,
                               proa_handle **out);
/*
 * call_soon_threadsafe in two steps, for a caller that must not fail
 * later: the handle is allocated now (any thread; NULL when out of
 * memory), and posting it cannot fail but with PROA_ECLOSED, when the loop
 * is closed (the handle is then freed; neither cb nor drop runs). A
 * prepared handle that is never posted goes with proa__threadsafe_discard.
 */
proa_handle *proa__threadsafe_prepare(proa_loop *loop, proa_callback cb,
                                      proa_callback drop, void *arg);
int proa__threadsafe_post(proa_handle *h);
void proa__threadsafe_discard(proa_handle *h);
proa_handle *proa__queue_pop(proa__queue *q);

/*
 * Checks what every non-thread-safe entry point checks: the loop is open and,
 * in debug mode, the caller is the loop's thread (reported to the exception
 * handler when it is not). Returns 0 or the error.
 */
int proa__loop_check(proa_loop *loop, const char *what);
/* As proa__loop_check() without the closed check. */
int proa__loop_check_thread(proa_loop *loop, const char *what);

/* Creating handles on the loop's backend (see backend.h). */
static inline int proa__socket_open(proa_loop *loop, int family, int type,
                                    int protocol, proa__ioh **out) {
  return loop->be_ops->socket_open(loop->backend, family, type, protocol, out);
}
static inline int proa__ioh_adopt(proa_loop *loop, intptr_t os,
                                  proa__ioh **out) {
  return loop->be_ops->adopt(loop->backend, os, out);
}

/* Registers / forgets a socket owner (loop thread). */
void proa__resource_add(proa_loop *loop, proa__resource *r,
                        void (*close_now)(proa__resource *r));
void proa__resource_remove(proa_loop *loop, proa__resource *r);

/* ---- executor (executor.c) ---- */
/* run_in_executor with `free_arg`, called on arg if fn never runs (the
 * executor dropped the job); on an immediate error the caller keeps arg. */
int proa__run_in_executor(proa_loop *loop, proa_executor *executor,
                          proa_work_fn fn, void *arg, proa_free_fn free_arg,
                          proa_free_fn free_result, proa_future **out);
/* At close: shuts the default executor down and lets go of calls in flight. */
void proa__executor_close(proa_loop *loop);

/* ---- timers (timer.c) ---- */
int proa__timer_push(proa_loop *loop, proa_handle *h);
void proa__timer_remove(proa_loop *loop, proa_handle *h);
/* Moves the timers due at `now` to the ready queue. */
void proa__timers_run_due(proa_loop *loop, double now);
/* How long poll may sleep: -1 without timers, else ms until the first. */
int64_t proa__timers_timeout_ms(proa_loop *loop, double now);
void proa__timers_clear(proa_loop *loop);

/* Keeps a rarely taken path out of line, so that its caller, a hot path,
 * saves no registers for it. */
#if defined(__GNUC__)
#define PROA__NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define PROA__NOINLINE __declspec(noinline)
#else
#define PROA__NOINLINE
#endif

/* ---- tasks (task.c) ---- */
/* At close: drops the tasks that never finished. */
void proa__tasks_close(proa_loop *loop);

/* ---- signals (signal.c) ---- */
void proa__signals_close(proa_loop *loop);

/* ---- reports (exception.c) ---- */
/* Reports `ctx` with a formatted message through the exception handler. */
void proa__report(proa_loop *loop, int error, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* PROA_INTERNAL_H */
