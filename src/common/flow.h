/* Write-buffer flow control shared by the stream and datagram transports. */
#ifndef PROA_FLOW_H
#define PROA_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proa/error.h"

#define PROA__FLOW_DEFAULT_HIGH 65536

/*
 * pause_writing is due when the buffer grows above `high` and resume_writing
 * when it drains to `low`; the protocol hears of each change later, from a
 * scheduled callback (`scheduled` says one is queued), never from inside
 * the write that caused it.
 */
typedef struct proa__flow {
  size_t high, low;
  bool paused; /* the protocol was told to pause and not yet to resume */
  bool scheduled;
} proa__flow;

static inline void proa__flow_init(proa__flow *f) {
  f->high = PROA__FLOW_DEFAULT_HIGH;
  f->low = PROA__FLOW_DEFAULT_HIGH / 4;
  f->paused = f->scheduled = false;
}

/* SIZE_MAX for `low` means high / 4. */
static inline int proa__flow_set_limits(proa__flow *f, size_t high,
                                        size_t low) {
  if (low == SIZE_MAX)
    low = high / 4;
  if (low > high)
    return PROA_EINVAL;
  f->high = high;
  f->low = low;
  return 0;
}

/* Whether a notification is due for a buffer of `size` bytes. */
static inline bool proa__flow_due(const proa__flow *f, size_t size) {
  return f->paused ? size <= f->low : size > f->high;
}

/* Takes the step that is due: +1 pause, -1 resume, 0 nothing (any more). */
static inline int proa__flow_step(proa__flow *f, size_t size) {
  f->scheduled = false;
  if (!proa__flow_due(f, size))
    return 0;
  f->paused = !f->paused;
  return f->paused ? 1 : -1;
}

#endif /* PROA_FLOW_H */
