/* Task stacks: sizes, and the pool of default-size stacks, for every OS. */
#include <stdint.h>

#include "coro.h"
#include "internal.h"

#define DEFAULT_STACK (256 * 1024)
/*
 * Finished default-size stacks kept for reuse: mapping, guarding and
 * unmapping a stack per task costs ~9 us in the kernel, against ~0.2 us for
 * a pooled one. The pool holds address space (256 KiB each) but only the
 * pages a task touched stay resident: a few MiB for a full pool.
 */
#define POOL_MAX 1024

/* A LIFO of stacks. The records stay out of the stacks themselves: what a
 * finished task left there (AddressSanitizer's poisoned frames among it)
 * is not the pool's to write over. */
static proa__stack pool[POOL_MAX];
static size_t pool_len;

int proa__stack_size(size_t requested, size_t *size) {
  size_t page = proa__os_page_size();
  if (requested == 0)
    requested = DEFAULT_STACK;
  /* Rounding up, and the guard page, must not wrap around. */
  if (requested > SIZE_MAX - 2 * page)
    return PROA_EINVAL;
  *size = (requested + page - 1) / page * page;
  return 0;
}

int proa__stack_get(size_t size, proa__stack *out) {
  bool found = false;
  if (size == DEFAULT_STACK) {
    proa__os_stack_lock();
    if (pool_len > 0) {
      *out = pool[--pool_len];
      found = true;
    }
    proa__os_stack_unlock();
  }
  return found ? 0 : proa__os_stack_map(size, out);
}

void proa__stack_put(const proa__stack *stack) {
  bool kept = false;
  if (stack->size == DEFAULT_STACK) {
    proa__os_stack_lock();
    if (pool_len < POOL_MAX) {
      pool[pool_len++] = *stack;
      kept = true;
    }
    proa__os_stack_unlock();
  }
  if (!kept)
    proa__os_stack_unmap(stack);
}
