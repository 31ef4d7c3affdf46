/*
 * The reference's signal example: handlers for SIGINT and SIGTERM print the
 * signal and stop the loop. On Windows, Ctrl-C (SIGINT) and Ctrl-Break
 * (SIGBREAK) play those roles.
 */
#include <stdio.h>

#include <proa.h>

#ifdef _WIN32
#include <process.h>
#define getpid _getpid
#define SECOND_SIGNAL PROA_SIGBREAK
#define SECOND_NAME "SIGBREAK"
#else
#include <unistd.h>
#define SECOND_SIGNAL PROA_SIGTERM
#define SECOND_NAME "SIGTERM"
#endif

typedef struct watched {
  proa_loop *loop;
  const char *name;
} watched;

static void ask_exit(void *arg) {
  watched *w = arg;
  printf("got signal %s: exit\n", w->name);
  fflush(stdout);
  proa_loop_stop(w->loop);
}

int main(void) {
  proa_loop *loop;
  watched sigint, second;
  int err = proa_loop_new(&loop);
  if (err) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    return 1;
  }
  sigint.loop = second.loop = loop;
  sigint.name = "SIGINT";
  second.name = SECOND_NAME;
  err = proa_loop_add_signal_handler(loop, PROA_SIGINT, ask_exit, &sigint);
  if (!err)
    err = proa_loop_add_signal_handler(loop, SECOND_SIGNAL, ask_exit, &second);
  if (err) {
    fprintf(stderr, "add_signal_handler: %s\n", proa_strerror(err));
    proa_loop_free(loop);
    return 1;
  }
  printf("Event loop running forever, press Ctrl+C to interrupt.\n");
  printf("pid %d: send SIGINT or %s to exit.\n", (int)getpid(), SECOND_NAME);
  fflush(stdout);
  err = proa_loop_run_forever(loop);
  proa_loop_free(loop);
  if (err) {
    fprintf(stderr, "run_forever: %s\n", proa_strerror(err));
    return 1;
  }
  return 0;
}
