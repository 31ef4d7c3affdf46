/* Unix coroutines: an assembly switch (x86-64, aarch64) or ucontext. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(PROA_CORO_UCONTEXT) &&                                            \
    !((defined(__x86_64__) || defined(__aarch64__)) && defined(__GNUC__))
#define PROA_CORO_UCONTEXT 1 /* no hand-written switch for this target */
#endif
#ifdef PROA_CORO_UCONTEXT
#include <ucontext.h>
#endif

#include "coro.h"
#include "engine.h"

#if defined(__SANITIZE_ADDRESS__)
#define PROA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROA_ASAN 1
#endif
#endif
#ifdef PROA_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

size_t proa__os_page_size(void) {
  static size_t page; /* racing first calls store the same value */
  if (!page)
    page = (size_t)sysconf(_SC_PAGESIZE);
  return page;
}

struct proa__coro {
  void *sp;        /* the coroutine's saved stack pointer (asm switch) */
  void *caller_sp; /* the resumer's, while the coroutine runs */
#ifdef PROA_CORO_UCONTEXT
  ucontext_t ctx, caller_ctx;
#endif
  proa__stack stack; /* above its guard page; pooled by stack_pool.c */
  void (*fn)(void *arg);
  void *arg;
  int done;
#ifdef PROA_ASAN
  void *fake_stack;
  const void *caller_bottom;
  size_t caller_size;
#endif
};

/* ---- the switch ---- */

#ifndef PROA_CORO_UCONTEXT
/* Mach-O (macOS) prefixes C symbols with '_' and has no .type/.size. */
#ifdef __APPLE__
#define SYM(name) "_" #name
#define TYPE(name) ""
#define SIZE(name) ""
#else
#define SYM(name) #name
#define TYPE(name) ".type " #name ",%function\n"
#define SIZE(name) ".size " #name ",.-" #name "\n"
#endif

/* Saves the callee-saved registers on the current stack, stores the stack
 * pointer in *save, loads `to` and restores what it saved there. */
void proa__coro_switch(void **save, void *to);
/* A new coroutine's first "return" lands here, with its coro in a
 * callee-saved register. */
void proa__coro_boot(void);
static void coro_main(proa__coro *c);

#if defined(__x86_64__)
/* clang-format off */
__asm__(".text\n"
        ".globl " SYM(proa__coro_switch) "\n" TYPE(proa__coro_switch)
        SYM(proa__coro_switch) ":\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n" SIZE(proa__coro_switch)
        ".globl " SYM(proa__coro_boot) "\n" TYPE(proa__coro_boot)
        SYM(proa__coro_boot) ":\n"
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n" SIZE(proa__coro_boot));
/* clang-format on */

/* The frame proa__coro_switch pops: mxcsr/x87 word, r15..rbp, return. */
static void *initial_sp(proa__coro *c, char *top) {
  uint64_t *sp = (uint64_t *)(void *)top;
  uint32_t csr[2];
  __asm__ volatile("stmxcsr %0\n fnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
  /* After the final ret rsp is `top` (16-byte aligned), so the call in
   * proa__coro_boot enters coro_main with rsp % 16 == 8, as the ABI says. */
  *--sp = (uint64_t)(uintptr_t)proa__coro_boot; /* ret */
  *--sp = 0;                                    /* rbp */
  *--sp = 0;                                    /* rbx */
  *--sp = (uint64_t)(uintptr_t)c;               /* r12: the argument */
  *--sp = (uint64_t)(uintptr_t)coro_main;       /* r13: the entry */
  *--sp = 0;                                    /* r14 */
  *--sp = 0;                                    /* r15 */
  --sp;
  memcpy(sp, csr, sizeof csr);
  return sp;
}
const char *proa__coro_kind(void) { return "asm-x86_64-sysv"; }

#elif defined(__aarch64__)
/* clang-format off */
__asm__(".text\n"
        ".globl " SYM(proa__coro_switch) "\n" TYPE(proa__coro_switch)
        SYM(proa__coro_switch) ":\n"
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  mov x9, sp\n"
        "  str x9, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #176\n"
        "  ret\n" SIZE(proa__coro_switch)
        ".globl " SYM(proa__coro_boot) "\n" TYPE(proa__coro_boot)
        SYM(proa__coro_boot) ":\n"
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n" SIZE(proa__coro_boot));
/* clang-format on */

static void *initial_sp(proa__coro *c, char *top) {
  uint64_t *sp = (uint64_t *)(void *)(top - 176);
  memset(sp, 0, 176);
  sp[0] = (uint64_t)(uintptr_t)c;                /* x19: the argument */
  sp[1] = (uint64_t)(uintptr_t)coro_main;        /* x20: the entry */
  sp[11] = (uint64_t)(uintptr_t)proa__coro_boot; /* x30: return address */
  return sp;
}
const char *proa__coro_kind(void) { return "asm-aarch64"; }
#endif

static void switch_in(proa__coro *c) {
  proa__coro_switch(&c->caller_sp, c->sp);
}
static void switch_out(proa__coro *c) {
  proa__coro_switch(&c->sp, c->caller_sp);
}
static void context_init(proa__coro *c, char *top) {
  c->sp = initial_sp(c, top);
}

#else /* ucontext */

static void coro_main(proa__coro *c);

/* makecontext passes ints only: the pointer travels in two halves. */
static void ucontext_entry(unsigned hi, unsigned lo) {
  coro_main((proa__coro *)(uintptr_t)(((uint64_t)hi << 32) | lo));
}

static void context_init(proa__coro *c, char *top) {
  uint64_t p = (uint64_t)(uintptr_t)c;
  (void)top;
  getcontext(&c->ctx);
  c->ctx.uc_stack.ss_sp = c->stack.base; /* above the guard page */
  c->ctx.uc_stack.ss_size = c->stack.size;
  c->ctx.uc_link = NULL;
  makecontext(&c->ctx, (void (*)(void))ucontext_entry, 2, (unsigned)(p >> 32),
              (unsigned)p);
}
static void switch_in(proa__coro *c) { swapcontext(&c->caller_ctx, &c->ctx); }
static void switch_out(proa__coro *c) { swapcontext(&c->ctx, &c->caller_ctx); }
const char *proa__coro_kind(void) { return "ucontext"; }
#endif

/* ---- AddressSanitizer: tell it which stack is in use ---- */

#ifdef PROA_ASAN
static void asan_enter(proa__coro *c, void **fake, const void *bottom,
                       size_t size) {
  __sanitizer_start_switch_fiber(fake, bottom, size);
  (void)c;
}
static void asan_entered(proa__coro *c, void *fake, const void **bottom,
                         size_t *size) {
  __sanitizer_finish_switch_fiber(fake, bottom, size);
  (void)c;
}
#endif

void proa__coro_resume(proa__coro *c) {
#ifdef PROA_ASAN
  void *fake = NULL;
  asan_enter(c, &fake, c->stack.base, c->stack.size);
  switch_in(c);
  asan_entered(c, fake, NULL, NULL);
#else
  switch_in(c);
#endif
}

void proa__coro_yield(proa__coro *c) {
#ifdef PROA_ASAN
  /* A finished coroutine's fake stack is released (NULL save slot). */
  asan_enter(c, c->done ? NULL : &c->fake_stack, c->caller_bottom,
             c->caller_size);
  switch_out(c);
  asan_entered(c, c->fake_stack, &c->caller_bottom, &c->caller_size);
#else
  switch_out(c);
#endif
}

static void coro_main(proa__coro *c) {
#ifdef PROA_ASAN
  asan_entered(c, NULL, &c->caller_bottom, &c->caller_size);
#endif
  c->fn(c->arg);
  c->done = 1;
  proa__coro_yield(c); /* never resumed again */
  abort();
}

int proa__coro_done(const proa__coro *c) { return c->done; }

/* ---- stacks: the mapping (stack_pool.c keeps the pool) ---- */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

void proa__os_stack_lock(void) { pthread_mutex_lock(&pool_lock); }
void proa__os_stack_unlock(void) { pthread_mutex_unlock(&pool_lock); }

int proa__os_stack_map(size_t size, proa__stack *out) {
  size_t page = proa__os_page_size();
  char *map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANON, -1, 0);
  if (map == MAP_FAILED)
    return PROA_ENOMEM;
  if (mprotect(map, page, PROT_NONE) != 0) {
    munmap(map, size + page);
    return PROA_ENOMEM;
  }
  out->base = map + page;
  out->size = size;
  return 0;
}

void proa__os_stack_unmap(const proa__stack *stack) {
  size_t page = proa__os_page_size();
  munmap(stack->base - page, stack->size + page);
}

int proa__coro_new(size_t stack_size, void (*fn)(void *arg), void *arg,
                   proa__coro **out) {
  proa__coro *c;
  size_t size;
  int err = proa__stack_size(stack_size, &size);
  if (err)
    return err;
  c = calloc(1, sizeof *c);
  if (!c)
    return PROA_ENOMEM;
  err = proa__stack_get(size, &c->stack);
  if (err) {
    free(c);
    return err;
  }
  c->fn = fn;
  c->arg = arg;
  context_init(c, c->stack.base + c->stack.size);
  *out = c;
  return 0;
}

void proa__coro_free(proa__coro *c) {
  if (!c)
    return;
  proa__stack_put(&c->stack);
  free(c);
}
