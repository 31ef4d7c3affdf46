/* The reference's first example: call_soon prints "Hello World" and stops. */
#include <stdio.h>

#include <proa.h>

static void hello_world(void *arg) {
  proa_loop *loop = arg;
  printf("Hello World\n");
  proa_loop_stop(loop);
}

int main(void) {
  proa_loop *loop;
  int err = proa_loop_new(&loop);
  if (err) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    return 1;
  }
  /* Schedule a call to hello_world(), then block until it stops the loop. */
  err = proa_call_soon(loop, hello_world, loop, NULL);
  if (!err)
    err = proa_loop_run_forever(loop);
  proa_loop_free(loop);
  if (err) {
    fprintf(stderr, "hello_world: %s\n", proa_strerror(err));
    return 1;
  }
  return 0;
}
