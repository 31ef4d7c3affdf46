/* Runs one callback through an installed proa and checks it ran. */
#include <stdio.h>

#include <proa.h>

static void ran(void *arg) {
  int *count = arg;
  ++*count;
}

int main(void) {
  proa_loop *loop;
  int count = 0;
  if (proa_loop_new(&loop) != 0)
    return 1;
  if (proa_call_soon(loop, ran, &count, NULL) != 0 || proa_loop_stop(loop) ||
      proa_loop_run_forever(loop) != 0)
    return 2;
  proa_loop_free(loop);
  printf("consumer ran %d callback(s) on %s\n", count, "proa");
  return count == 1 ? 0 : 3;
}
