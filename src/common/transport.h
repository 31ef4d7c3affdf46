/* The stream transport's private side, for create_connection and servers. */
#ifndef PROA_TRANSPORT_H
#define PROA_TRANSPORT_H

#include "internal.h"

/*
 * Wraps a connected socket (the transport owns it from here on) and returns
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

/*
 * A server's connections form a list linked through the transports, so a
 * lost connection leaves it in O(1).
 */
void proa__transport_link(proa_transport **head, proa_transport *t);
void proa__transport_unlink(proa_transport **head, proa_transport *t);
proa_transport *proa__transport_next(const proa_transport *t);

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

/*
 * Calls fn(arg) once, from a write completion, when the write buffer has
 * drained to the low-water mark; NULL cancels. Unlike resume_writing it
 * does not depend on pause_writing having been told first.
 */
void proa__transport_when_drained(proa_transport *t, proa_callback fn,
                                  void *arg);

/* Releases a transport stored as a future's result. */
void proa__transport_release(void *t);

#endif /* PROA_TRANSPORT_H */
