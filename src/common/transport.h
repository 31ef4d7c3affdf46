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
  /* Who is on the other end (proa_transport_peer_cred); NULL: PROA_ENOTSUP
   * for every transport of the class. */
  int (*peer_cred)(const proa_transport *t, proa_peer_cred *out);
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

/* Which ways a stream transport goes (proa__pipe_transport_new). */
enum proa__stream_dir {
  PROA__STREAM_DUPLEX = 0,
  PROA__STREAM_READ_ONLY, /* a read pipe */
  PROA__STREAM_WRITE_ONLY /* a write pipe */
};

/*
 * The stream transport over one direction of a pipe handle (pipe.c). A
 * read-only one refuses write, writelines and write_eof (PROA_ENOTSUP;
 * can_write_eof is false) and closes at the end of the data whatever
 * eof_received answers. A write-only one submits no reads: it watches for
 * its reader going away (then connection_lost(PROA_EPIPE), even with
 * nothing to write), refuses pause/resume_reading (PROA_ENOTSUP), and its
 * write_eof closes it once flushed. keep_open: when the transport goes, the
 * handle is detached (the caller's again), not closed. Starts it as
 * proa__transport_start does with `waiter`; on failure `h` is detached.
 */
int proa__pipe_transport_open(proa_loop *loop, proa__ioh *h,
                              const proa_protocol *protocol, void *self,
                              enum proa__stream_dir dir, bool keep_open,
                              proa_future *waiter);

/*
 * Schedules connection_made and the first read. If `waiter` is not NULL it
 * is completed with the transport (holding its own reference) right after
 * connection_made ran, or with the error if the transport was lost first.
 */
int proa__transport_start(proa_transport *t, proa_future *waiter);

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

/* The same for create_unix_server and create_pipe_server (unix.c,
 * pipe_server.c). */
int proa__create_unix_server(proa_loop *loop, proa_protocol_factory factory,
                             void *factory_arg, proa_free_fn factory_free,
                             const char *path,
                             const proa_unix_server_options *opts,
                             proa_future **out);
int proa__create_pipe_server(proa_loop *loop, proa_protocol_factory factory,
                             void *factory_arg, proa_free_fn factory_free,
                             const char *name,
                             const proa_pipe_server_options *opts,
                             proa_future **out);

/*
 * A server over a listening handle that the caller made (a Unix socket, a
 * named pipe), not serving yet, with one reference for the caller. The
 * server owns `sock` from then on; on failure the caller keeps it.
 * factory_arg goes with factory_free, as in proa__create_server.
 */
int proa__server_new(proa_loop *loop, proa_protocol_factory factory,
                     void *factory_arg, proa_free_fn factory_free,
                     proa__ioh *sock, proa_server **out);

/* fn(arg) runs once, when the server's listeners close (proa_server_close
 * or the loop closing); arg_free(arg) runs when the server goes. */
void proa__server_on_close(proa_server *s, proa_callback fn, void *arg,
                           proa_free_fn arg_free);

/*
 * The caller's OS socket for a server: checked (a stream socket, of
 * `family` unless 0), set listening and adopted into *out. A refused socket
 * stays the caller's, open: PROA_EINVAL for the wrong type or family.
 */
int proa__adopt_listener(proa_loop *loop, intptr_t sock, int family,
                         int backlog, proa__ioh **out);

/*
 * create_connection over a socket that the caller opened (an AF_UNIX one),
 * to the one address `addr`: the attempt, its errors and the transport are
 * those of proa_create_connection. The connection owns `sock` from the
 * call on, even when it fails.
 */
int proa__connect_socket(proa_loop *loop, const proa_protocol *protocol,
                         void *self, proa__ioh *sock, const proa_sockaddr *addr,
                         proa_future **out);

/*
 * Wraps the caller's connected OS socket (opts.sock) in a transport that
 * completes `waiter`. It is checked first (a stream socket, of `family`
 * unless 0), so that a refused socket stays the caller's, open.
 */
int proa__wrap_connected(proa_loop *loop, const proa_protocol *protocol,
                         void *self, intptr_t sock, int family,
                         proa_future *waiter);

/* See proa__transport_class.when_drained. */
static inline void proa__transport_when_drained(proa_transport *t,
                                                proa_callback fn, void *arg) {
  t->cls->when_drained(t, fn, arg);
}

/* Releases a transport stored as a future's result. */
void proa__transport_release(void *t);

#endif /* PROA_TRANSPORT_H */
