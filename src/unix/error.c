/* errno to PROA_E*: the only place errno values are interpreted. */
#include <errno.h>

#include "engine.h"

int proa__translate_errno(int err) {
  switch (err) {
  case 0:
    return 0;
#define MAP(e)                                                                 \
  case e:                                                                      \
    return PROA_##e;
    MAP(EINVAL)
    MAP(ENOMEM)
    MAP(ECANCELED)
    MAP(ETIMEDOUT)
    MAP(EBUSY)
    MAP(EINTR)
    MAP(EBADF)
    MAP(EPERM)
    MAP(EACCES)
    MAP(ENOENT)
    MAP(EEXIST)
    MAP(EIO)
    MAP(EMFILE)
    MAP(ENFILE)
    MAP(ENOSPC)
    MAP(EPIPE)
    MAP(ENOSYS)
    MAP(EADDRINUSE)
    MAP(EADDRNOTAVAIL)
    MAP(EAFNOSUPPORT)
    MAP(ECONNREFUSED)
    MAP(ECONNRESET)
    MAP(ECONNABORTED)
    MAP(ENOTCONN)
    MAP(EISCONN)
    MAP(ENETUNREACH)
    MAP(EHOSTUNREACH)
    MAP(ENETDOWN)
    MAP(EMSGSIZE)
    MAP(ENOBUFS)
    MAP(EALREADY)
    MAP(EINPROGRESS)
    MAP(ENOTSOCK)
    MAP(EPROTO)
    MAP(EPROTONOSUPPORT)
    MAP(EPROTOTYPE)
    MAP(ENOPROTOOPT)
    MAP(ENETRESET)
    MAP(EDESTADDRREQ)
    MAP(ENAMETOOLONG)
#ifdef ESOCKTNOSUPPORT
    MAP(ESOCKTNOSUPPORT)
#endif
#ifdef ESHUTDOWN
    MAP(ESHUTDOWN)
#endif
#ifdef EHOSTDOWN
    MAP(EHOSTDOWN)
#endif
#undef MAP
  case EAGAIN:
#if EWOULDBLOCK != EAGAIN
  case EWOULDBLOCK:
#endif
    return PROA_EAGAIN;
  case EOPNOTSUPP:
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
  case ENOTSUP:
#endif
    return PROA_ENOTSUP;
  default:
    return PROA_EUNKNOWN;
  }
}
