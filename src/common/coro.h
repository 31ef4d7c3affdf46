/* Coroutines for tasks: a stack and a context switch, from the backend. */
#ifndef PROA_CORO_H
#define PROA_CORO_H

#include <stddef.h>

typedef struct proa__coro proa__coro;

/*
 * Creates a suspended coroutine that will run fn(arg) on a stack of its own
 * of at least `stack_size` bytes, with a guard page below it so that an
 * overflow faults instead of corrupting memory. Stacks of the default size
 * are pooled. Returns 0, PROA_EINVAL (a size too large to round up) or
 * PROA_ENOMEM.
 */
int proa__coro_new(size_t stack_size, void (*fn)(void *arg), void *arg,
                   proa__coro **out);

/*
 * Runs `c` until it yields or fn returns. Called from outside any
 * coroutine (the loop's own stack); coroutines do not resume each other.
 */
void proa__coro_resume(proa__coro *c);

/* Inside `c`: returns to the proa__coro_resume that ran it. */
void proa__coro_yield(proa__coro *c);

/* Whether fn has returned. */
int proa__coro_done(const proa__coro *c);

/*
 * Releases the coroutine and its stack (back to the pool). A suspended one
 * is dropped without unwinding: whatever its frames held is lost.
 */
void proa__coro_free(proa__coro *c);

/* The switch in use: "asm-x86_64-sysv", "ucontext", "fiber", ... */
const char *proa__coro_kind(void);

/* ---- stacks (stack_pool.c, above the OS's mapping) ---- */

/* A task stack: [base, base + size) is usable, with a guard page below. */
typedef struct proa__stack {
  char *base;
  size_t size;
} proa__stack;

/*
 * The size of the stack for a request of `requested` bytes (0: the
 * default): rounded up to whole pages. PROA_EINVAL when that, plus the
 * guard page, does not fit in a size_t (it would wrap to a tiny stack).
 */
int proa__stack_size(size_t requested, size_t *size);

/* A stack of `size` bytes (from proa__stack_size): a pooled one, or a new
 * mapping. Returns 0 or PROA_ENOMEM. Any thread. */
int proa__stack_get(size_t size, proa__stack *out);

/* Gives a stack back: default-size ones are kept for the next task (up to
 * a limit), the others are unmapped. Any thread. */
void proa__stack_put(const proa__stack *stack);

/* ---- what the OS provides for stacks (src/<os>/coro.c) ---- */

size_t proa__os_page_size(void);
/* Maps a guard page and `size` bytes above it; 0 or PROA_ENOMEM. */
int proa__os_stack_map(size_t size, proa__stack *out);
void proa__os_stack_unmap(const proa__stack *stack);
/* A process-wide lock for the pool (statically initialised). */
void proa__os_stack_lock(void);
void proa__os_stack_unlock(void);

#endif /* PROA_CORO_H */
