/* Socket calls that are the same on every OS: addresses, bind, options. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockets.h"

int proa__os_family(int proa_family) {
  switch (proa_family) {
  case PROA_AF_INET:
    return AF_INET;
  case PROA_AF_INET6:
    return AF_INET6;
  case PROA_AF_UNIX:
    return AF_UNIX;
  default:
    return AF_UNSPEC;
  }
}

int proa__os_socktype(int proa_type) {
  return proa_type == PROA_SOCK_STREAM  ? SOCK_STREAM
         : proa_type == PROA_SOCK_DGRAM ? SOCK_DGRAM
                                        : 0;
}

int proa__proa_family(int os_family) {
  switch (os_family) {
  case AF_INET:
    return PROA_AF_INET;
  case AF_INET6:
    return PROA_AF_INET6;
  case AF_UNIX:
    return PROA_AF_UNIX;
  default:
    return PROA_AF_UNSPEC;
  }
}

static const struct sockaddr *sa(const proa_sockaddr *a) {
  return (const struct sockaddr *)(const void *)a->storage;
}

/* Copies, not casts: storage is int64_t[], and C's aliasing rules hold. */
static struct sockaddr_in in4_of(const proa_sockaddr *a) {
  struct sockaddr_in s;
  memcpy(&s, a->storage, sizeof s);
  return s;
}

static struct sockaddr_in6 in6_of(const proa_sockaddr *a) {
  struct sockaddr_in6 s;
  memcpy(&s, a->storage, sizeof s);
  return s;
}

int proa_sockaddr_from_ip(proa_sockaddr *out, const char *ip, int port) {
  struct addrinfo hints, *res = NULL;
  char service[8];
  if (!out || !ip || port < 0 || port > 65535)
    return PROA_EINVAL;
  memset(out, 0, sizeof *out);
  /* Some resolvers (Wine's) take "[::1]" or stray spaces; proa does not. */
  if (strpbrk(ip, "[] \t\r\n") != NULL)
    return PROA_EINVAL;
  /* getaddrinfo with NUMERICHOST parses both families and IPv6 scopes. */
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof service, "%d", port);
  if (getaddrinfo(ip, service, &hints, &res) != 0 || !res)
    return PROA_EINVAL;
  if ((size_t)res->ai_addrlen > sizeof out->storage) {
    freeaddrinfo(res);
    return PROA_EINVAL;
  }
  memcpy(out->storage, res->ai_addr, res->ai_addrlen);
  out->len = (int)res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

int proa_sockaddr_family(const proa_sockaddr *addr) {
  struct sockaddr s;
  /* The OS may give no more than the family: an unnamed AF_UNIX peer has
   * a length of sizeof(sa_family_t) on Linux (unix(7)). */
  size_t need = offsetof(struct sockaddr, sa_family) + sizeof s.sa_family;
  if (!addr || addr->len < (int)need || addr->len > (int)sizeof addr->storage)
    return PROA_AF_UNSPEC;
  memset(&s, 0, sizeof s);
  memcpy(&s, addr->storage, need);
  return proa__proa_family(s.sa_family);
}

/* ---- AF_UNIX addresses ---- */

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

int proa_sockaddr_from_path(proa_sockaddr *out, const char *path) {
  struct sockaddr_un un;
  size_t n = path ? strlen(path) : 0;
  bool abstract = n > 0 && path[0] == '@';
  if (!out)
    return PROA_EINVAL;
  memset(out, 0, sizeof *out);
  if (n == 0 || (abstract && !PROA__ABSTRACT_NAMES))
    return PROA_EINVAL;
  /* A path keeps room for its NUL; an abstract name has none (unix(7)). */
  if (n > sizeof un.sun_path - (abstract ? 0 : 1))
    return PROA_ENAMETOOLONG;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path, path, n);
  if (abstract)
    un.sun_path[0] = '\0';
  memcpy(out->storage, &un, sizeof un);
  out->len = (int)(SUN_PATH_OFFSET + n + (abstract ? 0 : 1));
  return 0;
}

int proa_sockaddr_path(const proa_sockaddr *addr, char *buf, size_t size) {
  struct sockaddr_un un;
  const char *nul;
  size_t n;
  bool abstract;
  if (!buf || proa_sockaddr_family(addr) != PROA_AF_UNIX)
    return PROA_EINVAL;
  memset(&un, 0, sizeof un);
  n = (size_t)addr->len < sizeof un ? (size_t)addr->len : sizeof un;
  memcpy(&un, addr->storage, n);
  /* An unnamed socket's address is its family alone, or an empty path. */
  n = n > SUN_PATH_OFFSET ? n - SUN_PATH_OFFSET : 0;
  abstract = PROA__ABSTRACT_NAMES && n > 0 && un.sun_path[0] == '\0';
  if (!abstract && (nul = memchr(un.sun_path, '\0', n)) != NULL)
    n = (size_t)(nul - un.sun_path);
  if (n >= size)
    return PROA_ENOSPC;
  memcpy(buf, un.sun_path, n);
  if (abstract)
    buf[0] = '@';
  buf[n] = '\0';
  return (int)n;
}

int proa_sockaddr_port(const proa_sockaddr *addr) {
  switch (proa_sockaddr_family(addr)) {
  case PROA_AF_INET:
    return ntohs(in4_of(addr).sin_port);
  case PROA_AF_INET6:
    return ntohs(in6_of(addr).sin6_port);
  default:
    return PROA_EINVAL;
  }
}

int proa_sockaddr_ip(const proa_sockaddr *addr, char *buf, size_t size) {
  char host[NI_MAXHOST];
  size_t len;
  int family = proa_sockaddr_family(addr);
  if (!buf || family == PROA_AF_UNSPEC)
    return PROA_EINVAL;
  if (getnameinfo(sa(addr), (proa__socklen)addr->len, host, sizeof host, NULL,
                  0, NI_NUMERICHOST) != 0)
    return PROA_EINVAL;
  len = strlen(host);
  if (len >= size)
    return PROA_ENOSPC;
  memcpy(buf, host, len + 1);
  return (int)len;
}

int proa_sockaddr_format(const proa_sockaddr *addr, char *buf, size_t size) {
  char host[NI_MAXHOST];
  int n, port;
  if (proa_sockaddr_family(addr) == PROA_AF_UNIX)
    return proa_sockaddr_path(addr, buf, size);
  port = proa_sockaddr_port(addr);
  if (port < 0 || !buf)
    return PROA_EINVAL;
  n = proa_sockaddr_ip(addr, host, sizeof host);
  if (n < 0)
    return n;
  if (proa_sockaddr_family(addr) == PROA_AF_INET6)
    n = snprintf(buf, size, "[%s]:%d", host, port);
  else
    n = snprintf(buf, size, "%s:%d", host, port);
  return n < 0 || (size_t)n >= size ? PROA_ENOSPC : n;
}

static proa__os_socket fd_of(proa__ioh *s) {
  return (proa__os_socket)proa__ioh_os(s);
}

static int last_error(void) {
  return proa__translate_socket_error(proa__socket_errno());
}

int proa__socket_bind(proa__ioh *s, const proa_sockaddr *addr) {
  if (bind(fd_of(s), sa(addr), (proa__socklen)addr->len) != 0)
    return last_error();
  return 0;
}

int proa__socket_listen(proa__ioh *s, int backlog) {
  return listen(fd_of(s), backlog) == 0 ? 0 : last_error();
}

int proa__socket_name(proa__ioh *s, proa_sockaddr *out, bool peer) {
  proa__socklen len = (proa__socklen)sizeof out->storage;
  struct sockaddr *p = (struct sockaddr *)(void *)out->storage;
  int rc =
      peer ? getpeername(fd_of(s), p, &len) : getsockname(fd_of(s), p, &len);
  if (rc != 0) {
    out->len = 0;
    return last_error();
  }
  out->len = (int)len;
  return 0;
}

int proa__socket_shutdown_write(proa__ioh *s) {
#ifdef _WIN32
  int how = SD_SEND;
#else
  int how = SHUT_WR;
#endif
  return shutdown(fd_of(s), how) == 0 ? 0 : last_error();
}

int proa__socket_setopt(proa__ioh *s, int level, int name, int value) {
  if (setsockopt(fd_of(s), level, name, (const char *)&value,
                 (proa__socklen)sizeof value) != 0)
    return last_error();
  return 0;
}

int proa__socket_pending_error(proa__ioh *s) {
  int err = 0;
  proa__socklen len = (proa__socklen)sizeof err;
  if (getsockopt(fd_of(s), SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0)
    return last_error();
  return proa__translate_socket_error(err);
}

int proa__socket_connect_now(proa__ioh *s, const proa_sockaddr *addr) {
  if (connect(fd_of(s), sa(addr), (proa__socklen)addr->len) != 0)
    return last_error();
  return 0;
}

static int join_v4(proa__ioh *s, const proa_sockaddr *g, const char *iface,
                   bool join) {
  struct ip_mreq m;
  proa_sockaddr ifaddr;
  memset(&m, 0, sizeof m);
  m.imr_multiaddr = in4_of(g).sin_addr;
  if (iface) {
    if (proa_sockaddr_from_ip(&ifaddr, iface, 0) != 0 ||
        proa_sockaddr_family(&ifaddr) != PROA_AF_INET)
      return PROA_EINVAL;
    m.imr_interface = in4_of(&ifaddr).sin_addr;
  } else {
    m.imr_interface.s_addr = htonl(INADDR_ANY);
  }
  if (setsockopt(fd_of(s), IPPROTO_IP,
                 join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
                 (const char *)&m, (proa__socklen)sizeof m) != 0)
    return last_error();
  return 0;
}

static int join_v6(proa__ioh *s, const proa_sockaddr *g, const char *iface,
                   bool join) {
  struct ipv6_mreq m;
  char *end = NULL;
  unsigned long index = iface ? strtoul(iface, &end, 10) : 0;
  if (iface && (*end || end == iface))
    return PROA_EINVAL;
  memset(&m, 0, sizeof m);
  m.ipv6mr_multiaddr = in6_of(g).sin6_addr;
  m.ipv6mr_interface = (unsigned)index;
  if (setsockopt(fd_of(s), IPPROTO_IPV6,
                 join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, (const char *)&m,
                 (proa__socklen)sizeof m) != 0)
    return last_error();
  return 0;
}

int proa__socket_multicast(proa__ioh *s, const char *group, const char *iface,
                           bool join) {
  proa_sockaddr g;
  if (proa_sockaddr_from_ip(&g, group, 0) != 0)
    return PROA_EINVAL;
  if (proa_sockaddr_family(&g) == PROA_AF_INET) {
    struct sockaddr_in a = in4_of(&g);
    const unsigned char *b = (const unsigned char *)&a.sin_addr;
    if ((b[0] & 0xf0) != 0xe0) /* 224.0.0.0/4 */
      return PROA_EINVAL;
    return join_v4(s, &g, iface, join);
  } else {
    struct sockaddr_in6 a = in6_of(&g);
    const unsigned char *b = (const unsigned char *)&a.sin6_addr;
    if (b[0] != 0xff) /* ff00::/8 */
      return PROA_EINVAL;
    return join_v6(s, &g, iface, join);
  }
}

int proa__socket_type(proa__ioh *s) {
  return proa__os_socket_type(proa__ioh_os(s));
}

int proa__os_listen(intptr_t fd, int backlog) {
  return listen((proa__os_socket)fd, backlog) == 0 ? 0 : last_error();
}

int proa__os_socket_family(intptr_t fd) {
#ifdef _WIN32
  /* getsockname fails on an unbound Winsock socket; this never does. */
  WSAPROTOCOL_INFOW pi;
  int len = (int)sizeof pi;
  if (fd == -1)
    return PROA_EBADF;
  if (getsockopt((SOCKET)fd, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi,
                 &len) != 0)
    return last_error();
  return proa__proa_family(pi.iAddressFamily);
#else
  struct sockaddr_storage ss;
  socklen_t len = (socklen_t)sizeof ss;
  if (fd == -1)
    return PROA_EBADF;
  if (getsockname((int)fd, (struct sockaddr *)&ss, &len) != 0)
    return last_error();
  return proa__proa_family(ss.ss_family);
#endif
}

int proa__os_socket_type(intptr_t fd) {
  int type = 0;
  proa__socklen len = (proa__socklen)sizeof type;
  if (fd == -1)
    return PROA_EBADF;
  if (getsockopt((proa__os_socket)fd, SOL_SOCKET, SO_TYPE, (char *)&type,
                 &len) != 0)
    return last_error();
  return type == SOCK_STREAM  ? PROA_SOCK_STREAM
         : type == SOCK_DGRAM ? PROA_SOCK_DGRAM
                              : 0;
}
