/* The reference's second example: print the date every second for 5 s. */
#include <stdio.h>
#include <time.h>

#include <proa.h>

typedef struct clock_state {
  proa_loop *loop;
  double end_time;
} clock_state;

static void display_date(void *arg) {
  clock_state *st = arg;
  time_t now = time(NULL);
  char text[64];
  strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", localtime(&now));
  printf("%s\n", text);
  fflush(stdout);
  /* Reschedule while there is time left, then stop the loop. */
  if (proa_loop_time(st->loop) + 1.0 < st->end_time)
    proa_call_later(st->loop, 1.0, display_date, st, NULL);
  else
    proa_loop_stop(st->loop);
}

int main(void) {
  clock_state st;
  int err = proa_loop_new(&st.loop);
  if (err) {
    fprintf(stderr, "proa_loop_new: %s\n", proa_strerror(err));
    return 1;
  }
  st.end_time = proa_loop_time(st.loop) + 5.0;
  err = proa_call_soon(st.loop, display_date, &st, NULL);
  if (!err)
    err = proa_loop_run_forever(st.loop);
  proa_loop_free(st.loop);
  if (err) {
    fprintf(stderr, "display_date: %s\n", proa_strerror(err));
    return 1;
  }
  return 0;
}
