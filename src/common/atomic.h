/* The one place that maps atomics onto the compiler: Interlocked or __atomic.
 */
#ifndef PROA_ATOMIC_H
#define PROA_ATOMIC_H

#include <stdint.h>

/*
 * The plain operations are acquire (load), release (store) and acq_rel
 * (read-modify-write): enough to publish data and to count references.
 * The _sc ones are sequentially consistent, for the handshakes where each
 * side stores one flag and then loads the other's (Dekker's pattern):
 * release/acquire lets each load see the old value of the other flag, as
 * if it ran before the store that precedes it.
 */

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
typedef volatile long proa__atomic_int;
static inline long proa__atomic_load(proa__atomic_int *p) {
  return _InterlockedCompareExchange(p, 0, 0);
}
static inline void proa__atomic_store(proa__atomic_int *p, long v) {
  _InterlockedExchange(p, v);
}
/* Returns the new value. */
static inline long proa__atomic_add(proa__atomic_int *p, long v) {
  return _InterlockedExchangeAdd(p, v) + v;
}
static inline long proa__atomic_exchange(proa__atomic_int *p, long v) {
  return _InterlockedExchange(p, v);
}
/* Interlocked operations are full barriers: sequentially consistent. */
static inline long proa__atomic_load_sc(proa__atomic_int *p) {
  return _InterlockedCompareExchange(p, 0, 0);
}
static inline void proa__atomic_store_sc(proa__atomic_int *p, long v) {
  _InterlockedExchange(p, v);
}
static inline long proa__atomic_add_sc(proa__atomic_int *p, long v) {
  return _InterlockedExchangeAdd(p, v) + v;
}
#else
typedef long proa__atomic_int;
static inline long proa__atomic_load(proa__atomic_int *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void proa__atomic_store(proa__atomic_int *p, long v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline long proa__atomic_add(proa__atomic_int *p, long v) {
  return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL);
}
static inline long proa__atomic_exchange(proa__atomic_int *p, long v) {
  return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}
static inline long proa__atomic_load_sc(proa__atomic_int *p) {
  return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static inline void proa__atomic_store_sc(proa__atomic_int *p, long v) {
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
static inline long proa__atomic_add_sc(proa__atomic_int *p, long v) {
  return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
#endif

#endif /* PROA_ATOMIC_H */
