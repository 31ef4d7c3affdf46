/* Any pipe handle as a transport (connect_read_pipe / connect_write_pipe),
 * and proa_pipe. */
#include "proa/pipe.h"
#include "transport.h"

#define PIPE_FLAGS (PROA_PIPE_NONBLOCK | PROA_PIPE_INHERIT)

int proa_pipe(intptr_t fds[2], unsigned read_flags, unsigned write_flags) {
  if (!fds || (read_flags & ~PIPE_FLAGS) || (write_flags & ~PIPE_FLAGS))
    return PROA_EINVAL;
  return proa__os_pipe(fds, read_flags, write_flags);
}

int proa_pipe_close(intptr_t handle) { return proa__os_pipe_close(handle); }

/*
 * Adopts `handle` and makes a transport of it going `dir`. A regular file
 * is refused (asyncio's rule: it is never "ready", nothing to wait for) and
 * detached again, so that it stays the caller's, open.
 */
static int wrap(proa_loop *loop, const proa_protocol *protocol, void *self,
                intptr_t handle, enum proa__stream_dir dir,
                const proa_pipe_options *o, proa_future *waiter) {
  proa__ioh *h;
  int err = proa__ioh_adopt(loop, handle, &h);
  if (err)
    return err;
  if (h->kind == PROA__IOH_FILE) {
    proa__ioh_detach(h);
    return PROA_EINVAL;
  }
  return proa__pipe_transport_open(loop, h, protocol, self, dir, o->keep_open,
                                   waiter);
}

static int connect_pipe(proa_loop *loop, const proa_protocol *protocol,
                        void *self, intptr_t handle, enum proa__stream_dir dir,
                        const proa_pipe_options *opts, proa_future **out) {
  proa_pipe_options o = PROA_PIPE_OPTIONS_INIT;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || proa__options_read(&o, sizeof o, opts))
    return PROA_EINVAL;
  err = proa__loop_check(loop, dir == PROA__STREAM_READ_ONLY
                                   ? "proa_connect_read_pipe"
                                   : "proa_connect_write_pipe");
  if (!err)
    err = proa_future_new(loop, out);
  if (err)
    return err;
  err = wrap(loop, protocol, self, handle, dir, &o, *out);
  if (err) {
    proa_future_unref(*out);
    *out = NULL;
  }
  return err;
}

int proa_connect_read_pipe(proa_loop *loop, const proa_protocol *protocol,
                           void *self, intptr_t handle,
                           const proa_pipe_options *opts, proa_future **out) {
  return connect_pipe(loop, protocol, self, handle, PROA__STREAM_READ_ONLY,
                      opts, out);
}

int proa_connect_write_pipe(proa_loop *loop, const proa_protocol *protocol,
                            void *self, intptr_t handle,
                            const proa_pipe_options *opts, proa_future **out) {
  return connect_pipe(loop, protocol, self, handle, PROA__STREAM_WRITE_ONLY,
                      opts, out);
}
