/* The BSD socket headers of the OS, for the socket code shared by all OSes. */
#ifndef PROA_SOCKETS_H
#define PROA_SOCKETS_H

/*
 * Winsock and POSIX sockets agree on bind, listen, getsockname, setsockopt,
 * getaddrinfo and the sockaddr structures; this header hides where they
 * differ (headers, the error variable, a few names) so that the code using
 * them is written once, in src/common/socket.c.
 */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h> /* sockaddr_un: Windows 10 1803 and later have AF_UNIX */
#ifndef AF_UNIX
#define AF_UNIX 1
#endif
typedef SOCKET proa__os_socket;
typedef int proa__socklen;
#define proa__socket_errno() WSAGetLastError()
#else
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
typedef int proa__os_socket;
typedef socklen_t proa__socklen;
#define proa__socket_errno() errno
#endif

#include "internal.h"

/* Linux alone has abstract AF_UNIX names (unix(7)): a sun_path that starts
 * with a NUL names no file. */
#ifdef __linux__
#define PROA__ABSTRACT_NAMES 1
#else
#define PROA__ABSTRACT_NAMES 0
#endif

/* The OS's AF_* for a PROA_AF_* value (AF_UNSPEC for unknown ones). */
int proa__os_family(int proa_family);
/* The OS's SOCK_* for a PROA_SOCK_* value (0 for unknown ones). */
int proa__os_socktype(int proa_type);
/* The PROA_AF_* value of an OS address family. */
int proa__proa_family(int os_family);

/* Synchronous socket calls; each returns 0 or a PROA_E* code. */
int proa__socket_bind(proa__ioh *s, const proa_sockaddr *addr);
int proa__socket_listen(proa__ioh *s, int backlog);
int proa__socket_name(proa__ioh *s, proa_sockaddr *out, bool peer);
int proa__socket_shutdown_write(proa__ioh *s);
/* SO_REUSEADDR, TCP_NODELAY, ...: level and name are the OS's. */
int proa__socket_setopt(proa__ioh *s, int level, int name, int value);
/* A connect that completes at once (datagram sockets). */
int proa__socket_connect_now(proa__ioh *s, const proa_sockaddr *addr);
/* Joins (or leaves) a multicast group; see proa_datagram_join_group. */
int proa__socket_multicast(proa__ioh *s, const char *group, const char *iface,
                           bool join);
/* PROA_SOCK_STREAM or PROA_SOCK_DGRAM (SO_TYPE), 0 for others, or an
 * error. */
int proa__socket_type(proa__ioh *s);
/*
 * The same for an OS socket that proa does not own yet (opts.sock), so that
 * a socket of the wrong type is refused before it is adopted and stays the
 * caller's.
 */
int proa__os_socket_type(intptr_t fd);
/* The PROA_AF_* family of an OS socket not adopted yet, or an error. */
int proa__os_socket_family(intptr_t fd);
/* listen() on an OS socket not adopted yet. */
int proa__os_listen(intptr_t fd, int backlog);
/* The pending error of a socket (SO_ERROR), translated. */
int proa__socket_pending_error(proa__ioh *s);

#endif /* PROA_SOCKETS_H */
