/* Mutexes, condition variables and detached threads, over Win32. */
#include <process.h>
#include <stdlib.h>

#include "backend.h"
#include "proa/error.h"

/* An SRWLOCK needs no destruction and is cheaper than a CRITICAL_SECTION. */
struct proa__mutex {
  SRWLOCK lock;
};

proa__mutex *proa__mutex_new(void) {
  proa__mutex *m = (proa__mutex *)malloc(sizeof *m);
  if (m != NULL)
    InitializeSRWLock(&m->lock);
  return m;
}

void proa__mutex_free(proa__mutex *m) { free(m); }
void proa__mutex_lock(proa__mutex *m) { AcquireSRWLockExclusive(&m->lock); }
void proa__mutex_unlock(proa__mutex *m) { ReleaseSRWLockExclusive(&m->lock); }

struct proa__cond {
  CONDITION_VARIABLE cv;
};

proa__cond *proa__cond_new(void) {
  proa__cond *c = (proa__cond *)malloc(sizeof *c);
  if (c != NULL)
    InitializeConditionVariable(&c->cv);
  return c;
}

void proa__cond_free(proa__cond *c) { free(c); }

void proa__cond_wait(proa__cond *c, proa__mutex *m) {
  SleepConditionVariableSRW(&c->cv, &m->lock, INFINITE, 0);
}
void proa__cond_signal(proa__cond *c) { WakeConditionVariable(&c->cv); }
void proa__cond_broadcast(proa__cond *c) { WakeAllConditionVariable(&c->cv); }

typedef struct thread_start {
  void (*fn)(void *arg);
  void *arg;
} thread_start;

static unsigned __stdcall thread_main(void *p) {
  thread_start st = *(thread_start *)p;
  free(p);
  st.fn(st.arg);
  return 0;
}

int proa__thread_start(void (*fn)(void *arg), void *arg) {
  uintptr_t h;
  thread_start *st = (thread_start *)malloc(sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  st->fn = fn;
  st->arg = arg;
  /* _beginthreadex, not CreateThread, so the CRT is set up for the thread. */
  h = _beginthreadex(NULL, 0, thread_main, st, 0, NULL);
  if (h == 0) {
    free(st);
    return PROA_ENOMEM;
  }
  CloseHandle((HANDLE)h);
  return 0;
}

unsigned proa__cpu_count(void) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return si.dwNumberOfProcessors > 0 ? (unsigned)si.dwNumberOfProcessors : 1u;
}
