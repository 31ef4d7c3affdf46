/* Windows coroutines: an assembly switch (x86-64, with the TIB) or Fibers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "win.h"

#if !defined(PROA_CORO_FIBERS) && !(defined(__x86_64__) && defined(__GNUC__))
#define PROA_CORO_FIBERS 1 /* MSVC, or no hand-written switch for this CPU */
#endif

struct proa__coro {
  void *sp;          /* asm: the coroutine's saved stack pointer */
  void *caller_sp;   /* asm: the resumer's, while the coroutine runs */
  void *fiber;       /* fibers: the coroutine's fiber */
  void *caller;      /* fibers: the resumer's fiber */
  proa__stack stack; /* asm: above its guard page; pooled by stack_pool.c */
  void (*fn)(void *arg);
  void *arg;
  int done;
};

static void coro_main(proa__coro *c) {
  c->fn(c->arg);
  c->done = 1;
  proa__coro_yield(c); /* never resumed again */
  abort();
}

int proa__coro_done(const proa__coro *c) { return c->done; }

#ifndef PROA_CORO_FIBERS
/*
 * The Win64 switch saves what the ABI makes callee-saved (rbx, rbp, rdi,
 * rsi, r12-r15, xmm6-xmm15, MXCSR and the x87 control word) and the TIB's
 * stack fields (StackBase gs:8, StackLimit gs:16, DeallocationStack
 * gs:0x1478), so that stack probes and exception dispatch see the stack
 * that is really in use.
 */
void proa__coro_switch(void **save, void *to);
void proa__coro_boot(void);

__asm__(".text\n"
        ".globl proa__coro_switch\n"
        "proa__coro_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %rdi\n"
        "  pushq %rsi\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %gs:0x08\n"
        "  pushq %gs:0x10\n"
        "  pushq %gs:0x1478\n"
        "  subq $176, %rsp\n"
        "  movaps %xmm6, 0(%rsp)\n"
        "  movaps %xmm7, 16(%rsp)\n"
        "  movaps %xmm8, 32(%rsp)\n"
        "  movaps %xmm9, 48(%rsp)\n"
        "  movaps %xmm10, 64(%rsp)\n"
        "  movaps %xmm11, 80(%rsp)\n"
        "  movaps %xmm12, 96(%rsp)\n"
        "  movaps %xmm13, 112(%rsp)\n"
        "  movaps %xmm14, 128(%rsp)\n"
        "  movaps %xmm15, 144(%rsp)\n"
        "  stmxcsr 160(%rsp)\n"
        "  fnstcw 164(%rsp)\n"
        "  movq %rsp, (%rcx)\n"
        "  movq %rdx, %rsp\n"
        "  movaps 0(%rsp), %xmm6\n"
        "  movaps 16(%rsp), %xmm7\n"
        "  movaps 32(%rsp), %xmm8\n"
        "  movaps 48(%rsp), %xmm9\n"
        "  movaps 64(%rsp), %xmm10\n"
        "  movaps 80(%rsp), %xmm11\n"
        "  movaps 96(%rsp), %xmm12\n"
        "  movaps 112(%rsp), %xmm13\n"
        "  movaps 128(%rsp), %xmm14\n"
        "  movaps 144(%rsp), %xmm15\n"
        "  ldmxcsr 160(%rsp)\n"
        "  fldcw 164(%rsp)\n"
        "  addq $176, %rsp\n"
        "  popq %gs:0x1478\n"
        "  popq %gs:0x10\n"
        "  popq %gs:0x08\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rsi\n"
        "  popq %rdi\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".globl proa__coro_boot\n"
        "proa__coro_boot:\n"
        "  movq %r12, %rcx\n"
        "  subq $32, %rsp\n" /* the callee's shadow space; keeps alignment */
        "  callq *%r13\n"
        "  ud2\n");

/* The frame proa__coro_switch pops, from the top of a new stack down. */
static void context_init(proa__coro *c) {
  char *top = c->stack.base + c->stack.size;
  uint64_t *sp = (uint64_t *)(void *)top;
  uint32_t csr[2];
  __asm__ volatile("stmxcsr %0\n fnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
  /* The return slot sits where a call would leave it (rsp % 16 == 8), so
   * the saved xmm registers below it are 16-byte aligned for movaps. */
  *--sp = (uint64_t)(uintptr_t)proa__coro_boot; /* ret */
  *--sp = 0;                                    /* rbp */
  *--sp = 0;                                    /* rbx */
  *--sp = 0;                                    /* rdi */
  *--sp = 0;                                    /* rsi */
  *--sp = (uint64_t)(uintptr_t)c;               /* r12: the argument */
  *--sp = (uint64_t)(uintptr_t)coro_main;       /* r13: the entry */
  *--sp = 0;                                    /* r14 */
  *--sp = 0;                                    /* r15 */
  *--sp = (uint64_t)(uintptr_t)top;             /* StackBase */
  *--sp = (uint64_t)(uintptr_t)c->stack.base;   /* StackLimit */
  *--sp = (uint64_t)(uintptr_t)(c->stack.base - proa__os_page_size());
  /* ^ DeallocationStack: the start of the mapping, guard page included */
  sp = (uint64_t *)(void *)((char *)sp - 176);
  memset(sp, 0, 176);
  memcpy((char *)sp + 160, csr, sizeof csr);
  c->sp = sp;
}

void proa__coro_resume(proa__coro *c) {
  proa__coro_switch(&c->caller_sp, c->sp);
}
void proa__coro_yield(proa__coro *c) {
  proa__coro_switch(&c->sp, c->caller_sp);
}
const char *proa__coro_kind(void) { return "asm-x86_64-win64"; }

/* The whole stack is committed: the switch does not grow stacks. */
int proa__os_stack_map(size_t size, proa__stack *out) {
  size_t page = proa__os_page_size();
  DWORD old;
  char *map = (char *)VirtualAlloc(NULL, size + page, MEM_RESERVE | MEM_COMMIT,
                                   PAGE_READWRITE);
  if (!map)
    return PROA_ENOMEM;
  if (!VirtualProtect(map, page, PAGE_NOACCESS, &old)) {
    VirtualFree(map, 0, MEM_RELEASE);
    return PROA_ENOMEM;
  }
  out->base = map + page;
  out->size = size;
  return 0;
}

void proa__os_stack_unmap(const proa__stack *stack) {
  VirtualFree(stack->base - proa__os_page_size(), 0, MEM_RELEASE);
}

static int stack_alloc(proa__coro *c, size_t size) {
  return proa__stack_get(size, &c->stack);
}
static void stack_free(proa__coro *c) { proa__stack_put(&c->stack); }

#else /* Fibers */

static void WINAPI fiber_main(void *arg) { coro_main((proa__coro *)arg); }

static void context_init(proa__coro *c) { (void)c; }

void proa__coro_resume(proa__coro *c) {
  /* The loop thread becomes a fiber once, and stays one. */
  if (!IsThreadAFiber())
    ConvertThreadToFiberEx(NULL, FIBER_FLAG_FLOAT_SWITCH);
  c->caller = GetCurrentFiber();
  SwitchToFiber(c->fiber);
}
void proa__coro_yield(proa__coro *c) { SwitchToFiber(c->caller); }
const char *proa__coro_kind(void) { return "fiber"; }

/* Fibers reserve the stack and commit it as it grows, guard page and all. */
/* Fibers reserve the stack and commit it as it grows, guard page and all.
 * A fiber cannot be restarted, so fibers take no stack from the pool. */
static int stack_alloc(proa__coro *c, size_t size) {
  c->fiber =
      CreateFiberEx(64 * 1024, size, FIBER_FLAG_FLOAT_SWITCH, fiber_main, c);
  return c->fiber ? 0 : PROA_ENOMEM;
}
static void stack_free(proa__coro *c) { DeleteFiber(c->fiber); }

/* Nothing maps pool stacks when fibers are in use; still part of the OS
 * interface of coro.h. */
int proa__os_stack_map(size_t size, proa__stack *out) {
  (void)size;
  (void)out;
  return PROA_ENOMEM;
}
void proa__os_stack_unmap(const proa__stack *stack) { (void)stack; }
#endif

/* ---- creation; the pool itself is in stack_pool.c ---- */

static SRWLOCK pool_lock = SRWLOCK_INIT;

void proa__os_stack_lock(void) { AcquireSRWLockExclusive(&pool_lock); }
void proa__os_stack_unlock(void) { ReleaseSRWLockExclusive(&pool_lock); }

size_t proa__os_page_size(void) {
  static size_t page; /* racing first calls store the same value */
  if (!page) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    page = si.dwPageSize;
  }
  return page;
}

int proa__coro_new(size_t stack_size, void (*fn)(void *arg), void *arg,
                   proa__coro **out) {
  proa__coro *c;
  size_t size;
  int err = proa__stack_size(stack_size, &size);
  if (err)
    return err;
  c = (proa__coro *)calloc(1, sizeof *c);
  if (!c)
    return PROA_ENOMEM;
  if (stack_alloc(c, size) != 0) {
    free(c);
    return PROA_ENOMEM;
  }
  c->fn = fn;
  c->arg = arg;
  context_init(c);
  *out = c;
  return 0;
}

void proa__coro_free(proa__coro *c) {
  if (!c)
    return;
  stack_free(c);
  free(c);
}
