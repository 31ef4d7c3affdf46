/* Datagram (UDP) endpoints: asyncio's create_datagram_endpoint. */
#ifndef PROA_DATAGRAM_H
#define PROA_DATAGRAM_H

#include "proa/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct proa_datagram proa_datagram;

/*
 * A datagram protocol: callbacks with the `self` given beside the table.
 * Any may be NULL; all run on the loop thread, never from inside the API
 * call that caused them. connection_made comes first and connection_lost
 * last, exactly once each.
 */
typedef struct proa_datagram_protocol {
  void (*connection_made)(void *self, proa_datagram *transport);
  /* One whole datagram; `data` and `addr` are valid during the call. */
  void (*datagram_received)(void *self, const void *data, size_t len,
                            const proa_sockaddr *addr);
  /*
   * An error that does not end the endpoint: an ICMP report such as
   * PROA_ECONNREFUSED (port unreachable) on a connected socket,
   * PROA_EMSGSIZE for a datagram that arrived truncated (it is dropped), or
   * the error of a queued send.
   */
  void (*error_received)(void *self, int error);
  void (*connection_lost)(void *self, int error);
  void (*pause_writing)(void *self);
  void (*resume_writing)(void *self);
} proa_datagram_protocol;

/* Options for proa_create_datagram_endpoint; start from the _INIT macro. */
typedef struct proa_datagram_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  const char *local_host; /* bind here (local_addr), or NULL */
  int local_port;
  const char *remote_host; /* connect here (remote_addr), or NULL */
  int remote_port;
  int family; /* PROA_AF_*: needed when neither address is given */
  int proto;
  int flags;         /* PROA_AI_* for getaddrinfo */
  int reuse_address; /* SO_REUSEADDR: 1 to set */
  int reuse_port;    /* SO_REUSEPORT (Unix only): 1 to set */
  bool allow_broadcast;
  intptr_t sock; /* an existing datagram socket to use, or -1 */
} proa_datagram_options;

#define PROA_DATAGRAM_OPTIONS_INIT                                             \
  { sizeof(proa_datagram_options), NULL, 0, NULL, 0, 0, 0, 0, 0, 0, false, -1 }

/*
 * Creates a UDP endpoint and stores in *out a future whose result is the
 * proa_datagram (owned by the future: ref it to keep it); connection_made
 * runs before the future completes. With a remote address the socket is
 * connected: sendto without an address goes there and datagrams from
 * elsewhere are not delivered. With allow_broadcast as well it is not
 * connected (as in asyncio): sendto without an address still goes to the
 * remote address, sendto to any other address is PROA_EINVAL, datagrams
 * from anywhere are delivered and peername is PROA_ENOTCONN. Immediate
 * errors: PROA_EINVAL (no address and no family, a port out of range, sock
 * together with addresses, family, proto, flags, reuse_port or
 * allow_broadcast; a refused sock stays the caller's, open),
 * PROA_ENOMEM, PROA_ECLOSED; errors of resolving and binding
 * (PROA_EADDRINUSE, ...) come through the future.
 */
PROA_API int proa_create_datagram_endpoint(
    proa_loop *loop, const proa_datagram_protocol *protocol, void *self,
    const proa_datagram_options *opts, proa_future **out);

PROA_API proa_datagram *proa_datagram_ref(proa_datagram *t);
/* The loop keeps its own reference until connection_lost has run. */
PROA_API void proa_datagram_unref(proa_datagram *t);

/*
 * Sends one datagram to `addr` (NULL: the connected peer). The data is sent
 * at once when the socket takes it, else copied and queued in order.
 * Returns 0, or an error about this datagram, which is then not sent:
 * PROA_EINVAL (addr missing on an unconnected endpoint, or not the peer of a
 * connected one), PROA_EMSGSIZE (too large for one datagram), PROA_EACCES
 * (broadcast without allow_broadcast), PROA_ECLOSED, PROA_ENOMEM, or another
 * error of the send. Errors of a queued send reach error_received.
 */
PROA_API int proa_datagram_sendto(proa_datagram *t, const void *data,
                                  size_t len, const proa_sockaddr *addr);

/* Sends what is queued, then closes; connection_lost(0) follows. */
PROA_API void proa_datagram_close(proa_datagram *t);
/* Closes at once, dropping the queue; connection_lost(0) follows. */
PROA_API void proa_datagram_abort(proa_datagram *t);
PROA_API bool proa_datagram_is_closing(const proa_datagram *t);

/* Flow control on the send queue, as for streams (64 KiB / 16 KiB). */
PROA_API int proa_datagram_set_write_buffer_limits(proa_datagram *t,
                                                   size_t high, size_t low);
PROA_API size_t proa_datagram_get_write_buffer_size(const proa_datagram *t);

/* get_extra_info: peername fails with PROA_ENOTCONN when not connected. */
PROA_API int proa_datagram_peername(const proa_datagram *t, proa_sockaddr *out);
PROA_API int proa_datagram_sockname(const proa_datagram *t, proa_sockaddr *out);
PROA_API intptr_t proa_datagram_socket(const proa_datagram *t);
PROA_API proa_loop *proa_datagram_loop(const proa_datagram *t);

/*
 * Multicast: joins / leaves `group` (a numeric IPv4 or IPv6 multicast
 * address) on the interface with numeric address `iface` (IPv4) or index
 * (IPv6, as a decimal string), or the default interface when NULL.
 * Errors: PROA_EINVAL (not a multicast address), or the OS's.
 */
PROA_API int proa_datagram_join_group(proa_datagram *t, const char *group,
                                      const char *iface);
PROA_API int proa_datagram_leave_group(proa_datagram *t, const char *group,
                                       const char *iface);

#ifdef __cplusplus
}
#endif

#endif /* PROA_DATAGRAM_H */
