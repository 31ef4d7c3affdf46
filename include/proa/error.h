/* Error codes shared by every proa function: one table, stable numbers. */
#ifndef PROA_ERROR_H
#define PROA_ERROR_H

#include "proa/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * PROA_ERROR_TABLE(X) expands X(NAME, number, "description") once per code.
 * The numbers are negative, fixed and identical on every OS: errno, WSA and
 * Win32 codes are translated at the backend edge and never leak out of proa.
 */
#define PROA_ERROR_TABLE(X)                                                    \
  X(EUNKNOWN, -1, "unknown error")                                             \
  X(EINVAL, -2, "invalid argument")                                            \
  X(ENOMEM, -3, "out of memory")                                               \
  X(ECANCELED, -4, "operation canceled")                                       \
  X(ETIMEDOUT, -5, "operation timed out")                                      \
  X(ENOTSUP, -6, "operation not supported on this platform")                   \
  X(ERUNNING, -7, "the event loop is already running")                         \
  X(ECLOSED, -8, "the event loop is closed")                                   \
  X(ESTATE, -9, "invalid state for this operation")                            \
  X(EWRONGTHREAD, -10, "called from a thread other than the loop's")           \
  X(EBUSY, -11, "resource busy")                                               \
  X(ENOTDONE, -12, "the future is not done yet")                               \
  X(ESTOPPED, -13, "the event loop stopped before the future completed")       \
  X(EHANDLER, -14, "a callback reported an error")                             \
  X(ENOTINTASK, -15, "not called from inside a task")                          \
  X(ELIMIT, -16, "data over the stream's buffer limit")                        \
  X(EAGAIN, -20, "resource temporarily unavailable")                           \
  X(EINTR, -21, "interrupted system call")                                     \
  X(EBADF, -22, "bad file descriptor or handle")                               \
  X(EPERM, -23, "operation not permitted")                                     \
  X(EACCES, -24, "permission denied")                                          \
  X(ENOENT, -25, "no such file or directory")                                  \
  X(EEXIST, -26, "already exists")                                             \
  X(EIO, -27, "input/output error")                                            \
  X(EMFILE, -28, "too many open files")                                        \
  X(ENFILE, -29, "too many open files in system")                              \
  X(ENOSPC, -30, "no space left on device")                                    \
  X(EPIPE, -31, "broken pipe")                                                 \
  X(EOF, -32, "end of file")                                                   \
  X(ENOSYS, -33, "function not implemented by the system")                     \
  X(ENAMETOOLONG, -34, "name too long")                                        \
  X(EADDRINUSE, -40, "address already in use")                                 \
  X(EADDRNOTAVAIL, -41, "address not available")                               \
  X(EAFNOSUPPORT, -42, "address family not supported")                         \
  X(ECONNREFUSED, -43, "connection refused")                                   \
  X(ECONNRESET, -44, "connection reset by peer")                               \
  X(ECONNABORTED, -45, "connection aborted")                                   \
  X(ENOTCONN, -46, "socket is not connected")                                  \
  X(EISCONN, -47, "socket is already connected")                               \
  X(ENETUNREACH, -48, "network is unreachable")                                \
  X(EHOSTUNREACH, -49, "host is unreachable")                                  \
  X(ENETDOWN, -50, "network is down")                                          \
  X(EMSGSIZE, -51, "message too long")                                         \
  X(ENOBUFS, -52, "no buffer space available")                                 \
  X(EALREADY, -53, "operation already in progress")                            \
  X(EINPROGRESS, -54, "operation in progress")                                 \
  X(ENOTSOCK, -55, "not a socket")                                             \
  X(EPROTO, -56, "protocol error")                                             \
  X(EPROTONOSUPPORT, -57, "protocol not supported")                            \
  X(ESOCKTNOSUPPORT, -58, "socket type not supported")                         \
  X(EPROTOTYPE, -59, "protocol wrong type for socket")                         \
  X(ENOPROTOOPT, -70, "protocol not available")                                \
  X(ESHUTDOWN, -71, "cannot send after socket shutdown")                       \
  X(ENETRESET, -72, "connection reset by network")                             \
  X(EHOSTDOWN, -73, "host is down")                                            \
  X(EDESTADDRREQ, -74, "destination address required")                         \
  X(EAI_NONAME, -60, "unknown host or service")                                \
  X(EAI_AGAIN, -61, "temporary failure in name resolution")                    \
  X(EAI_FAIL, -62, "non-recoverable failure in name resolution")               \
  X(EAI_NODATA, -63, "no address for this host")                               \
  X(EAI_FAMILY, -64, "address family not supported by the resolver")           \
  X(EAI_SERVICE, -65, "service not available for this socket type")

/* The codes as an enum: PROA_EINVAL, PROA_ECANCELED, ... (0 is success). */
typedef enum proa_error {
  PROA_OK = 0,
#define PROA__ERROR_ENUM(name, num, text) PROA_##name = (num),
  PROA_ERROR_TABLE(PROA__ERROR_ENUM)
#undef PROA__ERROR_ENUM
} proa_error;

/*
 * A sentence describing `err` ("operation canceled"). 0 gives "success", a code
 * outside the table gives "unknown error". The string is static: never free it.
 * Thread-safe.
 */
PROA_API const char *proa_strerror(int err);

/*
 * The code's name without prefix ("ECANCELED"), "OK" for 0 and "EUNKNOWN" for
 * a code outside the table. Static string; thread-safe.
 */
PROA_API const char *proa_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* PROA_ERROR_H */
