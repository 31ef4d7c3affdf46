/* The loop's exception handler and log sink: where errors nobody awaits go. */
#ifndef PROA_EXCEPTION_H
#define PROA_EXCEPTION_H

#include "proa/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What went wrong, passed to the exception handler. Every pointer may be
 * NULL; the objects are borrowed for the duration of the call (take a
 * reference to keep one).
 */
typedef struct proa_context {
  const char *message;       /* what happened, in a sentence */
  int error;                 /* a PROA_E* code, or 0 */
  const char *error_message; /* detail (of the error, if any), or NULL */
  proa_future *future;       /* the future involved */
  proa_handle *handle;       /* the callback handle involved */
  void *transport;           /* the transport involved */
  intptr_t socket;           /* the socket or fd involved, or -1 */
} proa_context;

#define PROA_CONTEXT_INIT                                                      \
  { NULL, 0, NULL, NULL, NULL, NULL, -1 }

/*
 * An exception handler. It returns 0 when it handled the context; a non-zero
 * return means the handler itself failed, and the loop then reports both the
 * original context and that failure through the default handler.
 */
typedef int (*proa_exception_handler)(proa_loop *loop, const proa_context *ctx,
                                      void *arg);

/*
 * Installs `handler` (NULL restores the default). Loop thread only; returns 0
 * or PROA_EWRONGTHREAD (debug mode).
 */
PROA_API int proa_loop_set_exception_handler(proa_loop *loop,
                                             proa_exception_handler handler,
                                             void *arg);

/* The custom handler, or NULL when the default is in use; *arg may be NULL. */
PROA_API proa_exception_handler
proa_loop_get_exception_handler(const proa_loop *loop, void **arg);

/* The default handler: formats the context and logs it at PROA_LOG_ERROR. */
PROA_API void proa_loop_default_exception_handler(proa_loop *loop,
                                                  const proa_context *ctx);

/* Calls the current handler with `ctx` (falling back as described above). */
PROA_API void proa_loop_call_exception_handler(proa_loop *loop,
                                               const proa_context *ctx);

typedef enum proa_log_level {
  PROA_LOG_DEBUG = 10,
  PROA_LOG_INFO = 20,
  PROA_LOG_WARNING = 30,
  PROA_LOG_ERROR = 40
} proa_log_level;

/* Receives one formatted message (no trailing newline). */
typedef void (*proa_log_sink)(void *arg, proa_log_level level,
                              const char *message);

/*
 * Sends the loop's log messages (default exception handler, debug-mode
 * reports) to `sink`; NULL restores the default, which writes them to stderr.
 * Messages are logged from the loop thread, or from the thread that frees an
 * object, never concurrently for one loop unless the user frees objects from
 * several threads.
 */
PROA_API void proa_loop_set_log_sink(proa_loop *loop, proa_log_sink sink,
                                     void *arg);

/* Logs through the loop's sink; printf-style. */
PROA_API void proa_loop_log(proa_loop *loop, proa_log_level level,
                            const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* PROA_EXCEPTION_H */
