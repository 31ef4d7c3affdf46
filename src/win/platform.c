/* Windows services for the OS-independent core: clock, thread id, signals. */
#include "backend.h"

/*
 * QueryPerformanceFrequency is fixed at boot, so it is read once. InitOnce
 * makes the read race-free without a lock on the hot path.
 */
static INIT_ONCE qpc_once = INIT_ONCE_STATIC_INIT;
static uint64_t qpc_freq;

static BOOL CALLBACK qpc_init(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  LARGE_INTEGER f;
  (void)once;
  (void)param;
  (void)ctx;
  /* It cannot fail on XP and later; guard against 0 all the same. */
  if (!QueryPerformanceFrequency(&f) || f.QuadPart <= 0)
    f.QuadPart = 1000;
  qpc_freq = (uint64_t)f.QuadPart;
  return TRUE;
}

uint64_t proa__clock_ns(void) {
  LARGE_INTEGER c;
  uint64_t ticks, freq;
  InitOnceExecuteOnce(&qpc_once, qpc_init, NULL, NULL);
  QueryPerformanceCounter(&c);
  ticks = (uint64_t)c.QuadPart;
  freq = qpc_freq;
  /*
   * ticks * 1e9 would overflow after about 30 minutes at 10 MHz, so whole
   * seconds and the remainder are converted separately. The remainder is
   * below freq, and freq * 1e9 fits in 64 bits for any freq under 18 GHz.
   */
  return (ticks / freq) * 1000000000u + (ticks % freq) * 1000000000u / freq;
}

uint64_t proa__thread_id(void) {
  DWORD id = GetCurrentThreadId();
  /* Windows never hands out id 0 to a thread, but the contract demands it. */
  return id != 0 ? (uint64_t)id : (uint64_t)1 << 32;
}

/* Console control events are mapped up to SIGBREAK (21), as the CRT does. */
int proa__signal_max(void) { return 21; }
