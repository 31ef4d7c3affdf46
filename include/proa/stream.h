/* Stream transports and protocols: TCP connections and servers. */
#ifndef PROA_STREAM_H
#define PROA_STREAM_H

#include "proa/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct proa_transport proa_transport;
typedef struct proa_server proa_server;

/* A buffer to write: `len` bytes at `base`. */
typedef struct proa_buf {
  const void *base;
  size_t len;
} proa_buf;

/*
 * A stream protocol: the callbacks a transport makes, each with the `self`
 * pointer given with the table. Any callback may be NULL. They run on the
 * loop thread, never from inside the API call that caused them.
 *
 * Order: connection_made, then any number of data_received (or
 * get_buffer/buffer_updated), at most one eof_received, then exactly one
 * connection_lost, after which the transport never calls the protocol again
 * (the place to free `self`). pause_writing/resume_writing come in pairs in
 * between.
 */
typedef struct proa_protocol {
  /* The connection is up; `transport` is borrowed (ref it to keep it). */
  void (*connection_made)(void *self, proa_transport *transport);
  /* Bytes arrived; `data` is valid during the call only. */
  void (*data_received)(void *self, const void *data, size_t len);
  /*
   * The peer shut down its sending side. Return true to keep the
   * connection half-open (and go on writing); false to close it.
   */
  bool (*eof_received)(void *self);
  /* The connection is gone: `error` is 0 for a clean close, EOF or abort,
   * else the PROA_E* code that ended it (PROA_ECONNRESET, ...). */
  void (*connection_lost)(void *self, int error);
  /* The write buffer went over the high-water mark / back to the low. */
  void (*pause_writing)(void *self);
  void (*resume_writing)(void *self);
  /*
   * Zero-copy reading (asyncio's BufferedProtocol): when both are set they
   * replace data_received. get_buffer returns a buffer of *size bytes (at
   * least 1) for the transport to read into; buffer_updated says how many
   * bytes arrived in it.
   */
  void *(*get_buffer)(void *self, size_t size_hint, size_t *size);
  void (*buffer_updated)(void *self, size_t nbytes);
} proa_protocol;

/*
 * Makes the protocol for a server's new connection: stores the table in
 * *protocol and its self pointer in *self and returns 0, or returns a
 * negative error to refuse the connection (it is closed, and the error
 * reported to the exception handler).
 */
typedef int (*proa_protocol_factory)(void *arg, const proa_protocol **protocol,
                                     void **self);

/* ---- transport ---- */

PROA_API proa_transport *proa_transport_ref(proa_transport *t);
/* The loop keeps its own reference until connection_lost has run. */
PROA_API void proa_transport_unref(proa_transport *t);
PROA_API proa_loop *proa_transport_loop(const proa_transport *t);

/*
 * Queues a copy of the bytes for sending (nothing is written from inside
 * the call when the socket cannot take them at once) and returns 0; may call
 * pause_writing (scheduled) when the buffer goes over its high-water mark.
 * Errors: PROA_EINVAL, PROA_ENOMEM, PROA_EPIPE (after write_eof), PROA_ECLOSED
 * (the transport is closing or lost).
 */
PROA_API int proa_transport_write(proa_transport *t, const void *data,
                                  size_t len);
/* As write, for several buffers at once (sent vectored where possible). */
PROA_API int proa_transport_writelines(proa_transport *t, const proa_buf *bufs,
                                       size_t count);
/*
 * Shuts down the sending side once the buffer is flushed; reading goes on.
 * Errors: PROA_ECLOSED.
 */
PROA_API int proa_transport_write_eof(proa_transport *t);
PROA_API bool proa_transport_can_write_eof(const proa_transport *t);

/*
 * Closes the transport: no more data is read, the buffered data is sent,
 * then the socket closes and connection_lost(0) is called (scheduled).
 * Idempotent.
 */
PROA_API void proa_transport_close(proa_transport *t);
/* Closes at once, dropping buffered data; connection_lost(0) follows. */
PROA_API void proa_transport_abort(proa_transport *t);
PROA_API bool proa_transport_is_closing(const proa_transport *t);

/*
 * Stops / restarts delivering data. Idempotent; a read already in flight is
 * kept and delivered after resume. Returns 0 or PROA_ECLOSED.
 */
PROA_API int proa_transport_pause_reading(proa_transport *t);
PROA_API int proa_transport_resume_reading(proa_transport *t);
PROA_API bool proa_transport_is_reading(const proa_transport *t);

/*
 * Flow control: pause_writing is called when the buffered bytes go above
 * `high`, resume_writing when they drop to `low` or below. Defaults: 64 KiB
 * and 16 KiB. SIZE_MAX for `low` means high / 4. Errors: PROA_EINVAL when low
 * > high.
 */
PROA_API int proa_transport_set_write_buffer_limits(proa_transport *t,
                                                    size_t high, size_t low);
PROA_API void proa_transport_get_write_buffer_limits(const proa_transport *t,
                                                     size_t *low, size_t *high);
/* Bytes accepted by write and not yet handed to the OS. */
PROA_API size_t proa_transport_get_write_buffer_size(const proa_transport *t);

/* get_extra_info: the addresses and the socket (an fd or a SOCKET). */
PROA_API int proa_transport_peername(const proa_transport *t,
                                     proa_sockaddr *out);
PROA_API int proa_transport_sockname(const proa_transport *t,
                                     proa_sockaddr *out);
PROA_API intptr_t proa_transport_socket(const proa_transport *t);

/* The protocol's self pointer; and a switch to another protocol. */
PROA_API void *proa_transport_get_protocol(const proa_transport *t);
PROA_API void proa_transport_set_protocol(proa_transport *t,
                                          const proa_protocol *protocol,
                                          void *self);

/* ---- create_connection ---- */

/* Options for proa_create_connection; start from the _INIT macro. */
typedef struct proa_connect_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  int family;  /* PROA_AF_*, 0 for any */
  int flags;   /* PROA_AI_* passed to getaddrinfo */
  int proto;   /* protocol for getaddrinfo, 0 for any */
  const char *local_host; /* bind here first (local_addr), or NULL */
  int local_port;
  intptr_t sock; /* an already connected socket to wrap, or -1 */
  /* > 0: Happy Eyeballs (RFC 8305): start the next attempt after this many
   * seconds without waiting for the previous one to fail (0.25 is usual). */
  double happy_eyeballs_delay;
  /* Reorder addresses by family, this many of the first family first (0:
   * 1 when happy_eyeballs_delay is set, else no reordering). */
  int interleave;
  void *ssl;                   /* reserved for TLS; must be NULL */
  const char *server_hostname; /* reserved for TLS; must be NULL */
} proa_connect_options;

#define PROA_CONNECT_OPTIONS_INIT                                              \
  { sizeof(proa_connect_options), 0, 0, 0, NULL, 0, -1, 0.0, 0, NULL, NULL }

/*
 * Connects to host:port (or wraps opts->sock) and stores in *out a future
 * whose result is the proa_transport (owned by the future: ref it to keep
 * it). The protocol's connection_made runs before the future completes. Each
 * resolved address is tried in turn; if none connects, the future's error
 * is the common error (else the last one) and its message lists every
 * attempt; a bind to a local address that fails moves on to the next local
 * address of the family, and is named in the message. Loop thread only.
 * Immediate errors: PROA_EINVAL (bad arguments, sock together with host,
 * port, local_host, local_port, family, proto or flags, sock not a stream
 * socket; a refused sock stays the caller's, open), PROA_ENOMEM,
 * PROA_ECLOSED, PROA_ENOTSUP (ssl).
 */
PROA_API int proa_create_connection(proa_loop *loop,
                                    const proa_protocol *protocol, void *self,
                                    const char *host, int port,
                                    const proa_connect_options *opts,
                                    proa_future **out);

/* ---- create_server ---- */

/* Options for proa_create_server; start from the _INIT macro. */
typedef struct proa_server_options {
  size_t size; /* sizeof the struct: set by the _INIT macro (common.h) */
  int family;  /* PROA_AF_*, 0 for any */
  int flags;   /* PROA_AI_* for getaddrinfo (PROA_AI_PASSIVE is implied) */
  /* Several hosts to listen on (overrides the host argument); NULL-ended. */
  const char *const *hosts;
  intptr_t sock;     /* an already bound socket to listen on, or -1 */
  int backlog;       /* listen() backlog, 100 by default */
  int reuse_address; /* SO_REUSEADDR: -1 default (on except on Windows) */
  int reuse_port;    /* SO_REUSEPORT (Unix only): 1 to set */
  bool start_serving;
  void *ssl; /* reserved for TLS; must be NULL */
} proa_server_options;

#define PROA_SERVER_OPTIONS_INIT                                               \
  { sizeof(proa_server_options), 0, 0, NULL, -1, 100, -1, 0, true, NULL }

/*
 * Listens on host:port (NULL or "" host: every interface; port 0: a free
 * port)
 * and stores in *out a future whose result is the proa_server (owned by the
 * future: ref it to keep it). Each accepted connection gets a protocol from
 * factory(factory_arg). Accept errors such as PROA_EMFILE go to the
 * exception handler and accepting resumes after a short back-off. Immediate
 * errors as proa_create_connection (sock together with host, hosts, port,
 * family, flags or reuse_port is PROA_EINVAL); bind errors (PROA_EADDRINUSE,
 * ...) come through the future, as does a sock that is not a stream socket
 * (it stays the caller's, open).
 */
PROA_API int proa_create_server(proa_loop *loop, proa_protocol_factory factory,
                                void *factory_arg, const char *host, int port,
                                const proa_server_options *opts,
                                proa_future **out);

PROA_API proa_server *proa_server_ref(proa_server *server);
PROA_API void proa_server_unref(proa_server *server);

/* Starts accepting (when created with start_serving false). Idempotent. */
PROA_API int proa_server_start_serving(proa_server *server);
PROA_API bool proa_server_is_serving(const proa_server *server);

/*
 * Stops listening and closes the listening sockets at once (a connect made
 * right after it is refused); connections already accepted stay open. May
 * be called from anywhere on the loop thread, the protocol factory and the
 * exception handler included. Idempotent.
 */
PROA_API void proa_server_close(proa_server *server);

/* Closes (flushing) or aborts every connection the server accepted. */
PROA_API void proa_server_close_clients(proa_server *server);
PROA_API void proa_server_abort_clients(proa_server *server);

/*
 * A future (the caller owns a reference) that completes once the server is
 * closed and every connection it accepted is lost.
 */
PROA_API int proa_server_wait_closed(proa_server *server, proa_future **out);

/* The listening sockets: how many, and the address of the i-th. */
PROA_API size_t proa_server_socket_count(const proa_server *server);
PROA_API int proa_server_sockname(const proa_server *server, size_t i,
                                  proa_sockaddr *out);
PROA_API intptr_t proa_server_socket(const proa_server *server, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* PROA_STREAM_H */
