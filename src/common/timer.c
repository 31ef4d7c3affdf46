/* The timer heap: call_later/call_at handles ordered by deadline. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* Whether `a` is due before `b`. Equal deadlines run in the order they
 * were scheduled (as libuv guarantees): a heap alone is not stable. */
static bool earlier(const proa_handle *a, const proa_handle *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(proa_loop *loop, size_t i, proa_handle *h) {
  loop->timers[i] = h;
  h->heap_index = i;
}

static void sift_up(proa_loop *loop, size_t i) {
  proa_handle *h = loop->timers[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(h, loop->timers[parent]))
      break;
    heap_set(loop, i, loop->timers[parent]);
    i = parent;
  }
  heap_set(loop, i, h);
}

static void sift_down(proa_loop *loop, size_t i) {
  proa_handle *h = loop->timers[i];
  size_t n = loop->ntimers;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n)
      break;
    if (child + 1 < n && earlier(loop->timers[child + 1], loop->timers[child]))
      child++;
    if (!earlier(loop->timers[child], h))
      break;
    heap_set(loop, i, loop->timers[child]);
    i = child;
  }
  heap_set(loop, i, h);
}

int proa__timer_push(proa_loop *loop, proa_handle *h) {
  if (loop->ntimers == loop->timers_cap) {
    size_t cap = loop->timers_cap ? loop->timers_cap * 2 : 64;
    proa_handle **t = realloc(loop->timers, cap * sizeof *t);
    if (!t)
      return PROA_ENOMEM;
    loop->timers = t;
    loop->timers_cap = cap;
  }
  h->seq = loop->timer_seq++;
  heap_set(loop, loop->ntimers++, h);
  sift_up(loop, h->heap_index);
  return 0;
}

void proa__timer_remove(proa_loop *loop, proa_handle *h) {
  size_t i = h->heap_index;
  proa_handle *last = loop->timers[--loop->ntimers];
  h->heap_index = PROA__NOT_IN_HEAP;
  if (last == h)
    return;
  heap_set(loop, i, last);
  /* The moved element may belong above or below its new place. */
  if (i > 0 && earlier(last, loop->timers[(i - 1) / 2]))
    sift_up(loop, i);
  else
    sift_down(loop, i);
}

void proa__timers_run_due(proa_loop *loop, double now) {
  while (loop->ntimers && loop->timers[0]->when <= now) {
    proa_handle *h = loop->timers[0];
    proa__timer_remove(loop, h);
    /* The loop's reference moves from the heap to the ready queue. */
    proa__queue_push(&loop->ready, h);
  }
}

int64_t proa__timers_timeout_ms(proa_loop *loop, double now) {
  double ms;
  if (!loop->ntimers)
    return -1;
  ms = ceil((loop->timers[0]->when - now) * 1000.0);
  if (ms <= 0)
    return 0;
  /* Far deadlines (or +inf) are waited for in slices of about a day. */
  if (ms > 86400000.0)
    return 86400000;
  return (int64_t)ms;
}

void proa__timers_clear(proa_loop *loop) {
  while (loop->ntimers) {
    proa_handle *h = loop->timers[--loop->ntimers];
    h->heap_index = PROA__NOT_IN_HEAP;
    proa__handle_drop(h);
  }
  free(loop->timers);
  loop->timers = NULL;
  loop->timers_cap = 0;
}
