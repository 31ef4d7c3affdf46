/* Signal handlers that run as ordinary callbacks on the loop thread. */
#ifndef PROA_SIGNAL_H
#define PROA_SIGNAL_H

#include <signal.h>

#include "proa/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Portable names for the signals proa can watch. On Unix they are the native
 * numbers and any catchable signal may be used. On Windows the console
 * control events are mapped: Ctrl-C is PROA_SIGINT, Ctrl-Break is
 * PROA_SIGBREAK and closing the console window is PROA_SIGHUP; other numbers
 * fail with PROA_ENOTSUP. PROA_SIGBREAK exists on Windows only.
 */
#ifdef _WIN32
#define PROA_SIGHUP 1
#define PROA_SIGINT 2
#define PROA_SIGTERM 15
#define PROA_SIGBREAK 21
#else
#define PROA_SIGHUP SIGHUP
#define PROA_SIGINT SIGINT
#define PROA_SIGTERM SIGTERM
#endif

/*
 * Runs cb(arg) on the loop thread, soon after `signum` is delivered; a
 * handler added for a signal that already has one replaces it. Several
 * deliveries between two iterations may run cb once. A signal can be watched
 * by one loop at a time.
 * Errors: PROA_EINVAL (signal out of range, or uncatchable such as SIGKILL and
 * SIGSTOP, or cb NULL), PROA_ENOTSUP (a signal Windows cannot deliver),
 * PROA_EBUSY (another loop watches it), PROA_ECLOSED, PROA_EWRONGTHREAD (debug
 * mode), or the OS error from installing the handler.
 */
PROA_API int proa_loop_add_signal_handler(proa_loop *loop, int signum,
                                          proa_callback cb, void *arg);

/*
 * Removes the handler for `signum` and restores the signal's default
 * disposition. Returns 1 if a handler was removed, 0 if there was none, or
 * PROA_EINVAL for a signal number out of range.
 */
PROA_API int proa_loop_remove_signal_handler(proa_loop *loop, int signum);

#ifdef __cplusplus
}
#endif

#endif /* PROA_SIGNAL_H */
