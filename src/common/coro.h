/* Coroutines for tasks: a stack and a context switch, from the backend. */
#ifndef PROA_CORO_H
#define PROA_CORO_H

#include <stddef.h>

typedef struct proa__coro proa__coro;

/*
 * Creates a suspended coroutine that will run fn(arg) on a stack of its own
 * of at least `stack_size` bytes, with a guard page below it so that an
 * overflow faults instead of corrupting memory. Stacks of the default size
 * are pooled. Returns 0 or PROA_ENOMEM.
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

#endif /* PROA_CORO_H */
