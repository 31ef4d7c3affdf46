/* Mutexes, condition variables and detached threads, over pthreads. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine.h"

struct proa__mutex {
  pthread_mutex_t m;
};

proa__mutex *proa__mutex_new(void) {
  proa__mutex *m = malloc(sizeof *m);
  if (m && pthread_mutex_init(&m->m, NULL) != 0) {
    free(m);
    m = NULL;
  }
  return m;
}

void proa__mutex_free(proa__mutex *m) {
  if (!m)
    return;
  pthread_mutex_destroy(&m->m);
  free(m);
}

void proa__mutex_lock(proa__mutex *m) { pthread_mutex_lock(&m->m); }
void proa__mutex_unlock(proa__mutex *m) { pthread_mutex_unlock(&m->m); }

struct proa__cond {
  pthread_cond_t c;
};

proa__cond *proa__cond_new(void) {
  proa__cond *c = malloc(sizeof *c);
  if (c && pthread_cond_init(&c->c, NULL) != 0) {
    free(c);
    c = NULL;
  }
  return c;
}

void proa__cond_free(proa__cond *c) {
  if (!c)
    return;
  pthread_cond_destroy(&c->c);
  free(c);
}

void proa__cond_wait(proa__cond *c, proa__mutex *m) {
  pthread_cond_wait(&c->c, &m->m);
}
void proa__cond_signal(proa__cond *c) { pthread_cond_signal(&c->c); }
void proa__cond_broadcast(proa__cond *c) { pthread_cond_broadcast(&c->c); }

typedef struct thread_start {
  void (*fn)(void *arg);
  void *arg;
} thread_start;

static void *thread_main(void *p) {
  thread_start st = *(thread_start *)p;
  free(p);
  st.fn(st.arg);
  return NULL;
}

int proa__thread_start(void (*fn)(void *arg), void *arg) {
  pthread_attr_t attr;
  pthread_t tid;
  int rc;
  thread_start *st = malloc(sizeof *st);
  if (!st)
    return PROA_ENOMEM;
  st->fn = fn;
  st->arg = arg;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&tid, &attr, thread_main, st);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(st);
    return proa__translate_errno(rc);
  }
  return 0;
}

unsigned proa__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}
