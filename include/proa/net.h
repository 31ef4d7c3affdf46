/* Socket addresses and asynchronous name resolution. */
#ifndef PROA_NET_H
#define PROA_NET_H

#include "proa/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Address families, socket types and resolver flags: proa's own values,
 * identical on every OS (the backend translates them). */
#define PROA_AF_UNSPEC 0
#define PROA_AF_INET 4
#define PROA_AF_INET6 6
#define PROA_AF_UNIX 1 /* local (Unix-domain) sockets: proa/pipe.h */

#define PROA_SOCK_STREAM 1
#define PROA_SOCK_DGRAM 2

#define PROA_AI_PASSIVE 0x01
#define PROA_AI_CANONNAME 0x02
#define PROA_AI_NUMERICHOST 0x04
#define PROA_AI_NUMERICSERV 0x08
#define PROA_AI_ADDRCONFIG 0x10
#define PROA_AI_V4MAPPED 0x20

#define PROA_NI_NUMERICHOST 0x01
#define PROA_NI_NUMERICSERV 0x02
#define PROA_NI_NAMEREQD 0x04
#define PROA_NI_DGRAM 0x08

/*
 * A socket address of any family: `storage` holds a struct sockaddr of `len`
 * bytes (cast it to use it with the OS's socket calls). Plain data: copy it
 * freely.
 */
typedef struct proa_sockaddr {
  int64_t storage[16]; /* 128 bytes, aligned like sockaddr_storage */
  int len;
} proa_sockaddr;

/*
 * Fills `out` from a numeric IPv4 ("127.0.0.1") or IPv6 ("::1", with an
 * optional "%scope") address and a port (0-65535). Never resolves names.
 * Errors: PROA_EINVAL (not a numeric address, port out of range, NULL).
 */
PROA_API int proa_sockaddr_from_ip(proa_sockaddr *out, const char *ip,
                                   int port);

/*
 * Fills `out` with the AF_UNIX address of `path`, with the rules of
 * proa/pipe.h: on Linux a leading '@' names an abstract socket (the '@'
 * becomes the leading NUL). Errors: PROA_EINVAL (NULL, empty, '@' off
 * Linux), PROA_ENAMETOOLONG (longer than the OS's sun_path holds: a name is
 * never truncated).
 */
PROA_API int proa_sockaddr_from_path(proa_sockaddr *out, const char *path);

/*
 * Writes the path of an AF_UNIX address into buf ("@name" for a Linux
 * abstract name, "" for an unnamed socket, such as a client that connected
 * without binding). Returns its length, or PROA_EINVAL (not AF_UNIX),
 * PROA_ENOSPC (buf too small; 110 bytes always suffice).
 */
PROA_API int proa_sockaddr_path(const proa_sockaddr *addr, char *buf,
                                size_t size);

/* PROA_AF_INET, PROA_AF_INET6, PROA_AF_UNIX, or PROA_AF_UNSPEC for anything
 * else. */
PROA_API int proa_sockaddr_family(const proa_sockaddr *addr);

/* The port, or PROA_EINVAL for a family without ports. */
PROA_API int proa_sockaddr_port(const proa_sockaddr *addr);

/*
 * Writes the numeric host ("127.0.0.1", "::1") into buf. Returns its length,
 * or PROA_EINVAL (unknown family), PROA_ENOSPC (buf too small; 46 bytes
 * always suffice).
 */
PROA_API int proa_sockaddr_ip(const proa_sockaddr *addr, char *buf,
                              size_t size);

/*
 * Writes "host:port" ("127.0.0.1:80", "[::1]:80") into buf, or the path of
 * an AF_UNIX address (as proa_sockaddr_path). Returns its length, or
 * PROA_EINVAL, PROA_ENOSPC (56 bytes always suffice for IP, 110 for a
 * path).
 */
PROA_API int proa_sockaddr_format(const proa_sockaddr *addr, char *buf,
                                  size_t size);

/* ---- name resolution (asyncio's getaddrinfo / getnameinfo) ---- */

/* One resolved address. */
typedef struct proa_addrinfo {
  int family;   /* PROA_AF_INET or PROA_AF_INET6 */
  int socktype; /* PROA_SOCK_STREAM or PROA_SOCK_DGRAM */
  int protocol; /* the OS's IPPROTO_* number */
  proa_sockaddr addr;
} proa_addrinfo;

/* What getaddrinfo resolves to: a future's result, owned by the future. */
typedef struct proa_addrinfo_list {
  size_t count;
  proa_addrinfo *items;
  char *canonname; /* with PROA_AI_CANONNAME, else NULL */
} proa_addrinfo_list;

/* Narrows a lookup; start from PROA_ADDRINFO_HINTS_INIT. */
typedef struct proa_addrinfo_hints {
  size_t size;  /* sizeof the struct: set by the _INIT macro (common.h) */
  int family;   /* PROA_AF_*, 0 for any */
  int socktype; /* PROA_SOCK_*, 0 for any */
  int protocol; /* 0 for any */
  int flags;    /* PROA_AI_* */
} proa_addrinfo_hints;

#define PROA_ADDRINFO_HINTS_INIT                                               \
  { sizeof(proa_addrinfo_hints), 0, 0, 0, 0 }

/*
 * Resolves host and port (either may be NULL, not both; port may be a
 * service name) on the loop's default executor. *out receives a future
 * whose result is a proa_addrinfo_list (owned by the future). Errors of the
 * lookup arrive through the future as PROA_EAI_* codes (PROA_EAI_NONAME for
 * an unknown host, ...). Loop thread only. Immediate errors: PROA_EINVAL,
 * PROA_ENOMEM, PROA_ECLOSED.
 */
PROA_API int proa_getaddrinfo(proa_loop *loop, const char *host,
                              const char *port,
                              const proa_addrinfo_hints *hints,
                              proa_future **out);

/* The result of getnameinfo, owned by its future. */
typedef struct proa_nameinfo {
  char host[1025];
  char service[32];
} proa_nameinfo;

/* Looks up the name of an address (PROA_NI_* flags), as proa_getaddrinfo. */
PROA_API int proa_getnameinfo(proa_loop *loop, const proa_sockaddr *addr,
                              int flags, proa_future **out);

#ifdef __cplusplus
}
#endif

#endif /* PROA_NET_H */
