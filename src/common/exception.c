/* The exception handler chain and the log sink every report goes through. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char *level_name(proa_log_level level) {
  switch (level) {
  case PROA_LOG_DEBUG:
    return "debug";
  case PROA_LOG_INFO:
    return "info";
  case PROA_LOG_WARNING:
    return "warning";
  default:
    return "error";
  }
}

static void default_sink(void *arg, proa_log_level level, const char *msg) {
  (void)arg;
  fprintf(stderr, "proa: %s: %s\n", level_name(level), msg);
  fflush(stderr);
}

void proa_loop_set_log_sink(proa_loop *loop, proa_log_sink sink, void *arg) {
  loop->log_sink = sink;
  loop->log_arg = sink ? arg : NULL;
}

/* Formats into a stack buffer, or the heap when the message is longer. */
static void vlog(proa_loop *loop, proa_log_level level, const char *fmt,
                 va_list ap) {
  char small[512];
  char *big = NULL;
  const char *msg = small;
  va_list copy;
  int n;
  va_copy(copy, ap);
  n = vsnprintf(small, sizeof small, fmt, ap);
  if (n >= (int)sizeof small) {
    big = malloc((size_t)n + 1);
    /* Out of memory: the truncated text in `small` is all we have. */
    if (big) {
      vsnprintf(big, (size_t)n + 1, fmt, copy);
      msg = big;
    }
  }
  va_end(copy);
  if (n < 0)
    msg = "(unformattable log message)";
  if (loop->log_sink)
    loop->log_sink(loop->log_arg, level, msg);
  else
    default_sink(NULL, level, msg);
  free(big);
}

void proa_loop_log(proa_loop *loop, proa_log_level level, const char *format,
                   ...) {
  va_list ap;
  va_start(ap, format);
  vlog(loop, level, format, ap);
  va_end(ap);
}

int proa_loop_set_exception_handler(proa_loop *loop,
                                    proa_exception_handler handler, void *arg) {
  int err = proa__loop_check_thread(loop, "proa_loop_set_exception_handler");
  if (err)
    return err;
  loop->exc_handler = handler;
  loop->exc_arg = handler ? arg : NULL;
  return 0;
}

proa_exception_handler proa_loop_get_exception_handler(const proa_loop *loop,
                                                       void **arg) {
  if (arg)
    *arg = loop->exc_arg;
  return loop->exc_handler;
}

void proa_loop_default_exception_handler(proa_loop *loop,
                                         const proa_context *ctx) {
  char where[160] = "";
  size_t len = 0;
  const char *msg =
      ctx->message ? ctx->message : "Unhandled error in event loop";
  if (ctx->future)
    len += (size_t)snprintf(where + len, sizeof where - len, " future=%p",
                            (void *)ctx->future);
  if (ctx->handle && len < sizeof where)
    len += (size_t)snprintf(where + len, sizeof where - len, " handle=%p",
                            (void *)ctx->handle);
  if (ctx->transport && len < sizeof where)
    len += (size_t)snprintf(where + len, sizeof where - len, " transport=%p",
                            ctx->transport);
  if (ctx->socket != -1 && len < sizeof where)
    snprintf(where + len, sizeof where - len, " socket=%lld",
             (long long)ctx->socket);
  if (ctx->error)
    proa_loop_log(loop, PROA_LOG_ERROR, "%s: %s (%s)%s%s%s", msg,
                  proa_err_name(ctx->error), proa_strerror(ctx->error),
                  ctx->error_message ? ": " : "",
                  ctx->error_message ? ctx->error_message : "", where);
  else if (ctx->error_message)
    proa_loop_log(loop, PROA_LOG_ERROR, "%s: %s%s", msg, ctx->error_message,
                  where);
  else
    proa_loop_log(loop, PROA_LOG_ERROR, "%s%s", msg, where);
}

void proa_loop_call_exception_handler(proa_loop *loop,
                                      const proa_context *ctx) {
  proa_context failure = PROA_CONTEXT_INIT;
  int rc;
  if (!loop->exc_handler) {
    proa_loop_default_exception_handler(loop, ctx);
    return;
  }
  rc = loop->exc_handler(loop, ctx, loop->exc_arg);
  if (rc == 0)
    return;
  /* The handler failed: say so, and make sure the original is not lost. */
  failure.message = "Unhandled error in exception handler";
  failure.error = rc < 0 ? rc : PROA_EHANDLER;
  proa_loop_default_exception_handler(loop, &failure);
  proa_loop_default_exception_handler(loop, ctx);
}

void proa__report(proa_loop *loop, int error, const char *fmt, ...) {
  char msg[512];
  proa_context ctx = PROA_CONTEXT_INIT;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ctx.message = msg;
  ctx.error = error;
  proa_loop_call_exception_handler(loop, &ctx);
}
