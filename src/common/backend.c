/* Choosing a backend at run time, and the report of a broken contract rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void proa__assert_fail(const char *rule, const char *cond, const char *file,
                       int line) {
  fprintf(stderr, "proa: backend contract broken: %s (%s) at %s:%d\n", rule,
          cond, file, line);
  fflush(stderr);
  abort();
}

static const proa__backend_ops *find(const char *name) {
  size_t i;
  for (i = 0; proa__backends[i]; i++)
    if (strcmp(proa__backends[i]->name, name) == 0)
      return proa__backends[i];
  return NULL;
}

static proa__atomic_int handles_alive;

void proa__handles_count(int delta) { proa__atomic_add(&handles_alive, delta); }

long proa__handles_alive(void) { return proa__atomic_load(&handles_alive); }

int proa__backend_start(proa_loop *loop, const proa__backend_ops *ops,
                        const proa__backend_ops **used, proa__backend **out) {
  int err;
  do {
    err = ops->init(loop, out);
    if (!err) {
      *used = ops;
      return 0;
    }
    ops = ops->fallback;
  } while (ops);
  return err;
}

int proa__backend_open(proa_loop *loop, const char *name,
                       const proa__backend_ops **ops, proa__backend **out) {
  const proa__backend_ops *want;
  size_t i;
  int err = PROA_EINVAL;
  *out = NULL;
  if (name) {
    want = find(name);
    return want ? proa__backend_start(loop, want, ops, out) : PROA_EINVAL;
  }
  for (i = 0; proa__backends[i]; i++) {
    err = proa__backend_start(loop, proa__backends[i], ops, out);
    if (!err)
      return 0;
  }
  return err;
}
