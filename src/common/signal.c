/* Signal handlers as loop callbacks; the backend catches, the loop dispatches.
 */
#include <stdlib.h>

#include "internal.h"

static bool signal_in_range(int signum) {
  return signum >= 1 && signum <= proa__signal_max();
}

/* The table is indexed by signal number and allocated on first use. */
static int ensure_table(proa_loop *loop) {
  int n = proa__signal_max() + 1;
  if (loop->signals)
    return 0;
  loop->signals = calloc((size_t)n, sizeof *loop->signals);
  if (!loop->signals)
    return PROA_ENOMEM;
  loop->nsignals = n;
  return 0;
}

int proa_loop_add_signal_handler(proa_loop *loop, int signum, proa_callback cb,
                                 void *arg) {
  int err;
  if (!loop || !cb || !signal_in_range(signum))
    return PROA_EINVAL;
  err = proa__loop_check(loop, "proa_loop_add_signal_handler");
  if (!err)
    err = ensure_table(loop);
  if (err)
    return err;
  if (!loop->signals[signum].cb) {
    err = loop->be_ops->signal_start(loop->backend, signum);
    if (err)
      return err;
  }
  loop->signals[signum].cb = cb;
  loop->signals[signum].arg = arg;
  return 0;
}

int proa_loop_remove_signal_handler(proa_loop *loop, int signum) {
  int err;
  if (!loop || !signal_in_range(signum))
    return PROA_EINVAL;
  err = proa__loop_check_thread(loop, "proa_loop_remove_signal_handler");
  if (err)
    return err;
  if (!loop->signals || !loop->signals[signum].cb)
    return 0;
  loop->signals[signum].cb = NULL;
  loop->signals[signum].arg = NULL;
  if (loop->backend)
    loop->be_ops->signal_stop(loop->backend, signum);
  return 1;
}

void proa__loop_on_signal(proa_loop *loop, int signum) {
  proa__signal_slot *slot;
  int err;
  if (!loop->signals || signum < 1 || signum >= loop->nsignals)
    return;
  slot = &loop->signals[signum];
  if (!slot->cb)
    return; /* removed after the signal was caught */
  err = proa_call_soon(loop, slot->cb, slot->arg, NULL);
  if (err)
    proa__report(loop, err, "could not schedule the handler of signal %d",
                 signum);
}

void proa__signals_close(proa_loop *loop) {
  int signum;
  for (signum = 1; signum < loop->nsignals; signum++)
    proa_loop_remove_signal_handler(loop, signum);
}
