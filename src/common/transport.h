/* The stream transport's private side, for create_connection and servers. */
#ifndef PROA_TRANSPORT_H
#define PROA_TRANSPORT_H

#include "internal.h"

/*
 * Wraps a connected socket (the transport owns it from here on) and returns
 * the transport with one reference, the loop's. `server` (may be NULL) is
 * told when the connection is lost.
 */
int proa__transport_new(proa_loop *loop, proa__socket *sock,
                        const proa_protocol *protocol, void *self,
                        proa_server *server, proa_transport **out);

/*
 * Schedules connection_made and the first read. If `waiter` is not NULL it
 * is completed with the transport (holding its own reference) right after
 * connection_made ran, or with the error if the transport was lost first.
 */
int proa__transport_start(proa_transport *t, proa_future *waiter);

/* The server side (server.c): a connection of `server` was lost. */
void proa__server_connection_lost(proa_server *server, proa_transport *t);

/* Releases a transport stored as a future's result. */
void proa__transport_release(void *t);

#endif /* PROA_TRANSPORT_H */
