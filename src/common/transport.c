/* The public transport calls: checked once here, dispatched by class. */
#include "transport.h"

proa_transport *proa_transport_ref(proa_transport *t) {
  return t ? t->cls->ref(t) : NULL;
}

void proa_transport_unref(proa_transport *t) {
  if (t)
    t->cls->unref(t);
}

void proa__transport_release(void *t) { proa_transport_unref(t); }

proa_loop *proa_transport_loop(const proa_transport *t) {
  return t ? t->cls->loop(t) : NULL;
}

int proa_transport_write(proa_transport *t, const void *data, size_t len) {
  proa_buf buf;
  if (!t || (!data && len))
    return PROA_EINVAL;
  buf.base = data;
  buf.len = len;
  return t->cls->writelines(t, &buf, 1);
}

int proa_transport_writelines(proa_transport *t, const proa_buf *bufs,
                              size_t count) {
  size_t i;
  if (!t || (!bufs && count))
    return PROA_EINVAL;
  for (i = 0; i < count; i++)
    if (!bufs[i].base && bufs[i].len)
      return PROA_EINVAL;
  return t->cls->writelines(t, bufs, count);
}

int proa_transport_write_eof(proa_transport *t) {
  return t ? t->cls->write_eof(t) : PROA_EINVAL;
}

bool proa_transport_can_write_eof(const proa_transport *t) {
  return t && t->cls->can_write_eof(t);
}

void proa_transport_close(proa_transport *t) {
  if (t)
    t->cls->close(t);
}

void proa_transport_abort(proa_transport *t) {
  if (t)
    t->cls->abort(t);
}

bool proa_transport_is_closing(const proa_transport *t) {
  return !t || t->cls->is_closing(t);
}

int proa_transport_pause_reading(proa_transport *t) {
  return t ? t->cls->pause_reading(t) : PROA_EINVAL;
}

int proa_transport_resume_reading(proa_transport *t) {
  return t ? t->cls->resume_reading(t) : PROA_EINVAL;
}

bool proa_transport_is_reading(const proa_transport *t) {
  return t && t->cls->is_reading(t);
}

int proa_transport_set_write_buffer_limits(proa_transport *t, size_t high,
                                           size_t low) {
  return t ? t->cls->set_write_buffer_limits(t, high, low) : PROA_EINVAL;
}

void proa_transport_get_write_buffer_limits(const proa_transport *t,
                                            size_t *low, size_t *high) {
  if (t) {
    t->cls->get_write_buffer_limits(t, low, high);
    return;
  }
  if (low)
    *low = 0;
  if (high)
    *high = 0;
}

size_t proa_transport_get_write_buffer_size(const proa_transport *t) {
  return t ? t->cls->get_write_buffer_size(t) : 0;
}

int proa_transport_peername(const proa_transport *t, proa_sockaddr *out) {
  return t && out ? t->cls->name(t, out, true) : PROA_EINVAL;
}

int proa_transport_sockname(const proa_transport *t, proa_sockaddr *out) {
  return t && out ? t->cls->name(t, out, false) : PROA_EINVAL;
}

intptr_t proa_transport_socket(const proa_transport *t) {
  return t ? t->cls->os_handle(t) : -1;
}

int proa_transport_peer_cred(const proa_transport *t, proa_peer_cred *out) {
  if (!t || !out)
    return PROA_EINVAL;
  return t->cls->peer_cred ? t->cls->peer_cred(t, out) : PROA_ENOTSUP;
}

void *proa_transport_get_protocol(const proa_transport *t) {
  return t ? t->cls->get_protocol(t) : NULL;
}

void proa_transport_set_protocol(proa_transport *t,
                                 const proa_protocol *protocol, void *self) {
  if (t)
    t->cls->set_protocol(t, protocol, self);
}
