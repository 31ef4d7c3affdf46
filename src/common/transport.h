/* The stream transport's private side, for create_connection and servers. */
#ifndef PROA_TRANSPORT_H
#define PROA_TRANSPORT_H

#include "internal.h"

/*
 * Every transport (a stream socket, a pipe, a subprocess pipe, TLS) is a
 * proa_transport: it starts with this table, and the public
 * proa_transport_* calls (transport.c) check their arguments and dispatch
 * through it, so the streams for tasks and every protocol work over any
 * of them unchanged. The functions get valid arguments only.
 */
typedef struct proa__transport_class {
  proa_transport *(*ref)(proa_transport *t);
  void (*unref)(proa_transport *t);
  proa_loop *(*loop)(const proa_transport *t);
  int (*writelines)(proa_transport *t, const proa_buf *bufs, size_t count);
  int (*write_eof)(proa_transport *t);
  bool (*can_write_eof)(const proa_transport *t);
  void (*close)(proa_transport *t);
  void (*abort)(proa_transport *t);
  bool (*is_closing)(const proa_transport *t);
  int (*pause_reading)(proa_transport *t);
  int (*resume_reading)(proa_transport *t);
  bool (*is_reading)(const proa_transport *t);
  int (*set_write_buffer_limits)(proa_transport *t, size_t high, size_t low);
  void (*get_write_buffer_limits)(const proa_transport *t, size_t *low,
                                  size_t *high);
  size_t (*get_write_buffer_size)(const proa_transport *t);
  /* getpeername (peer) or getsockname; PROA_ENOTSUP where there is none. */
  int (*name)(const proa_transport *t, proa_sockaddr *out, bool peer);
  intptr_t (*os_handle)(const proa_transport *t);
  void *(*get_protocol)(const proa_transport *t);
  void (*set_protocol)(proa_transport *t, const proa_protocol *protocol,
                       void *self);
  /*
   * Calls fn(arg) once, from a write completion, when the write buffer has
   * drained to the low-water mark; NULL cancels. Unlike resume_writing it
   * does not depend on pause_writing having been told first.
   */
  void (*when_drained)(proa_transport *t, proa_callback fn, void *arg);
} proa__transport_class;

struct proa_transport {
  const proa__transport_class *cls;
};

/*
 * The stream transport (stream.c), over any handle that reads and writes:
 * a socket, a pipe. Wraps a connected socket (the transport owns it from
 * here on) and returns
 * the transport with one reference, the loop's. `server` (may be NULL) is
 * told when the connection is lost.
 */
int proa__transport_new(proa_loop *loop, proa__ioh *sock,
                        const proa_protocol *protocol, void *self,
                        proa_server *server, proa_transport **out);

/*
 * Schedules connection_made and the first read. If `waiter` is not NULL it
 * is completed with the transport (holding its own reference) right after
 * connection_made ran, or with the error if the transport was lost first.
 */
int proa__transport_start(proa_transport *t, proa_future *waiter);

/* The handle under a stream transport: 0, PROA_ENOTSUP (another class:
 * datagrams, TLS) or PROA_ECLOSED (the connection is lost). */
int proa__transport_ioh(const proa_transport *t, proa__ioh **out);

/*
 * A client's stream transport on the connected handle `h`, started (see
 * proa__transport_start). The transport owns `h` from here on; on failure
 * `h` is closed and the error returned.
 */
int proa__connection_start(proa_loop *loop, proa__ioh *h,
                           const proa_protocol *protocol, void *self,
                           proa_future *waiter);

/* A server's connections form a list (list.h) through a node in each
 * stream transport, so a lost connection leaves it in O(1). */
proa__list_node *proa__transport_server_link(proa_transport *t);
proa_transport *proa__transport_of_server_link(proa__list_node *n);

/* The server side (server.c): a connection of `server` was lost. */
void proa__server_connection_lost(proa_server *server, proa_transport *t);

/*
 * create_server whose factory_arg is released with factory_free (may be
 * NULL) when the server goes. If the call itself fails, the caller keeps it.
 */
int proa__create_server(proa_loop *loop, proa_protocol_factory factory,
                        void *factory_arg, proa_free_fn factory_free,
                        const char *host, int port,
                        const proa_server_options *opts, proa_future **out);

/* See proa__transport_class.when_drained. */
static inline void proa__transport_when_drained(proa_transport *t,
                                                proa_callback fn, void *arg) {
  t->cls->when_drained(t, fn, arg);
}

/*
 * A server listening on `listener`, a handle the caller made (a named
 * pipe's, say), which the server owns from here on, even when this fails.
 * Serves at once if `start_serving`. The server comes with one reference.
 */
int proa__server_new_on(proa_loop *loop, proa_protocol_factory factory,
                        void *factory_arg, proa__ioh *listener,
                        bool start_serving, proa_server **out);

/* Releases a transport stored as a future's result. */
void proa__transport_release(void *t);

#endif /* PROA_TRANSPORT_H */
