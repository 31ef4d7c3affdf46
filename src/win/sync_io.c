/* Helper threads that serve handles not opened for overlapped I/O. */
#include <stdlib.h>

#include "win.h"

/* Interrupting a call: first yields, then 1 ms sleeps (about 0.1 s in all)
 * while CancelSynchronousIo finds no call yet. */
#define CANCEL_YIELDS 100
#define CANCEL_SLEEPS 100
#define STACK_SIZE (64 * 1024)

/*
 * One direction of one handle. The loop hands over one op at a time; the
 * thread makes the blocking ReadFile or WriteFile and posts the op to the
 * port, so that its completion travels the path of every other one. Two
 * references, the loop's and the thread's: whoever lets go last frees it,
 * so that neither touches the lock after the other freed it.
 */
struct proa__sync_io {
  SRWLOCK lock;
  CONDITION_VARIABLE wake;
  HANDLE port, os, thread;
  LONG refs;
  volatile LONG in_call; /* the thread is in (or entering) the call */
  bool write, quit;
  bool cancel;  /* the op in hand is cancelled: do not start the call */
  proa__op *op; /* handed over and not yet posted, or NULL */
  void *buf;
  DWORD len;
};

static void sync_unref(proa__sync_io *w) {
  if (InterlockedDecrement(&w->refs) != 0)
    return;
  CloseHandle(w->thread);
  free(w);
}

static intptr_t perform(proa__sync_io *w) {
  DWORD n = 0;
  BOOL ok = w->write ? WriteFile(w->os, w->buf, w->len, &n, NULL)
                     : ReadFile(w->os, w->buf, w->len, &n, NULL);
  return ok ? (intptr_t)n : proa__translate_win32(GetLastError());
}

/* The port refuses a post only when the kernel is out of memory; the loop
 * waits for this completion, so try again until it goes. */
static void post_done(proa__sync_io *w, proa__op *op) {
  while (!PostQueuedCompletionStatus(w->port, 0, PROA__KEY_POSTED,
                                     &op->overlapped))
    Sleep(1);
}

static DWORD WINAPI worker(void *arg) {
  proa__sync_io *w = (proa__sync_io *)arg;
  AcquireSRWLockExclusive(&w->lock);
  for (;;) {
    proa__op *op;
    intptr_t result = PROA_ECANCELED;
    while (w->op == NULL && !w->quit)
      SleepConditionVariableSRW(&w->wake, &w->lock, INFINITE, 0);
    if (w->op == NULL)
      break;
    op = w->op;
    if (!w->cancel)
      InterlockedExchange(&w->in_call, 1);
    ReleaseSRWLockExclusive(&w->lock);
    if (w->in_call)
      result = perform(w);
    InterlockedExchange(&w->in_call, 0);
    AcquireSRWLockExclusive(&w->lock);
    w->op = NULL;
    op->result = result;
    post_done(w, op);
  }
  ReleaseSRWLockExclusive(&w->lock);
  sync_unref(w);
  return 0;
}

int proa__sync_io_start(HANDLE port, HANDLE os, bool write,
                        proa__sync_io **out) {
  proa__sync_io *w = (proa__sync_io *)calloc(1, sizeof *w);
  if (w == NULL)
    return PROA_ENOMEM;
  InitializeSRWLock(&w->lock);
  InitializeConditionVariable(&w->wake);
  w->port = port;
  w->os = os;
  w->write = write;
  w->refs = 2;
  w->thread = CreateThread(NULL, STACK_SIZE, worker, w,
                           STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (w->thread == NULL) {
    int err = proa__translate_win32(GetLastError());
    free(w);
    return err;
  }
  *out = w;
  return 0;
}

void proa__sync_io_submit(proa__sync_io *w, proa__op *op, void *buf,
                          DWORD len) {
  AcquireSRWLockExclusive(&w->lock);
  PROA_ASSERT(w->op == NULL, "one operation per direction per handle");
  w->op = op;
  w->buf = buf;
  w->len = len;
  w->cancel = false;
  WakeConditionVariable(&w->wake);
  ReleaseSRWLockExclusive(&w->lock);
}

/*
 * Between handing over and the system call, CancelSynchronousIo finds
 * nothing to cancel (ERROR_NOT_FOUND), so it is tried until it interrupts
 * the call or the call ends (in_call is cleared without the lock, so the
 * loop sees it). A call that no cancel reaches (a driver that does not
 * support it) completes when it ends; the op stays in flight until then.
 */
void proa__sync_io_cancel(proa__sync_io *w, proa__op *op) {
  int i;
  AcquireSRWLockExclusive(&w->lock);
  if (w->op == op) {
    w->cancel = true;
    for (i = 0; w->in_call && i < CANCEL_YIELDS + CANCEL_SLEEPS; i++) {
      if (CancelSynchronousIo(w->thread) || GetLastError() != ERROR_NOT_FOUND)
        break;
      if (i < CANCEL_YIELDS)
        SwitchToThread();
      else
        Sleep(1);
    }
  }
  ReleaseSRWLockExclusive(&w->lock);
}

void proa__sync_io_stop(proa__sync_io *w) {
  AcquireSRWLockExclusive(&w->lock);
  PROA_ASSERT(w->op == NULL, "a helper thread stops with nothing in flight");
  w->quit = true;
  WakeConditionVariable(&w->wake);
  ReleaseSRWLockExclusive(&w->lock);
  sync_unref(w);
}
