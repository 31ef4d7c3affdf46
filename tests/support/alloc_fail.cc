// The --wrap=malloc/calloc/realloc wrappers behind alloc_fail.h.
#include "alloc_fail.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <pthread.h>
#endif

namespace {

// Plain atomics, not thread_local: emulated TLS (mingw) allocates, which
// would recurse into the wrappers.
std::atomic<int> g_countdown{0};
std::atomic<int> g_failures{0};
std::atomic<uintptr_t> g_thread{0};
std::atomic<bool> g_wrapped{false};

uintptr_t Self() {
#ifdef _WIN32
  return static_cast<uintptr_t>(GetCurrentThreadId());
#else
  return reinterpret_cast<uintptr_t>(reinterpret_cast<void *>(pthread_self()));
#endif
}

bool ShouldFail() {
  g_wrapped.store(true, std::memory_order_relaxed);
  if (g_countdown.load(std::memory_order_relaxed) == 0 ||
      g_thread.load() != Self())
    return false;
  if (g_countdown.fetch_sub(1) != 1)
    return false;
  g_failures++;
  return true;
}

} // namespace

#ifdef PROA_TEST_ALLOC_WRAP
extern "C" {
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);

void *__wrap_malloc(size_t size) {
  return ShouldFail() ? nullptr : __real_malloc(size);
}
void *__wrap_calloc(size_t n, size_t size) {
  return ShouldFail() ? nullptr : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t size) {
  return ShouldFail() ? nullptr : __real_realloc(p, size);
}
}
#endif

namespace proa_alloc_fail {

bool Available() {
#ifdef PROA_TEST_ALLOC_WRAP
  return true;
#else
  return false;
#endif
}

void FailNth(int n) {
  g_failures = 0;
  g_thread = Self();
  g_countdown = n;
}

int Failures() { return g_failures.load(); }

} // namespace proa_alloc_fail
