/* What local IPC needs from the OS: socket files, peer credentials, names. */
#ifndef PROA_LOCAL_H
#define PROA_LOCAL_H

/*
 * Implemented once per OS (src/unix/local.c, src/win/local.c), so that
 * src/common/unix.c and pipe_server.c stay free of OS conditionals. Paths
 * are UTF-8 on Windows (what Winsock's AF_UNIX takes in sun_path).
 * Thread-safe: none of them touches the loop.
 */

#include "internal.h"

/* What tells one file from another: st_dev and st_ino on Unix; the volume
 * serial number and the file index on Windows. */
typedef struct proa__file_id {
  uint64_t dev;
  uint64_t ino;
} proa__file_id;

/*
 * The identity of the socket file at `path` (not following a symbolic
 * link). Errors: PROA_ENOENT (nothing there), PROA_ENOTSOCK (a file that is
 * not a socket), PROA_EACCES, ...
 */
int proa__socket_file_id(const char *path, proa__file_id *out);

/* Removes the file at `path` (unlink, DeleteFileW). 0 or the error. */
int proa__file_remove(const char *path);

/*
 * The peer of a connected AF_UNIX socket: SO_PEERCRED (Linux), getpeereid
 * and LOCAL_PEERPID (macOS, BSD), SIO_AF_UNIX_GETPEERPID (Windows: the pid
 * only). What the OS does not say is -1. Errors: PROA_ENOTSUP, or the
 * socket's error.
 */
int proa__socket_peer_cred(intptr_t sock, proa_peer_cred *out);

/* What a proa_create_pipe_* name is on this OS. */
enum proa__pipe_kind {
  PROA__PIPE_UNIX_SOCKET = 1, /* a Unix socket path (proa/pipe.h's rules) */
  PROA__PIPE_NAMED = 2        /* a Windows named pipe, \\.\pipe\NAME */
};

/*
 * Checks `name` against this OS's rules for pipe names and writes the full
 * name (what the OS is given) into `full`, of `size` bytes. Returns the
 * proa__pipe_kind, or PROA_EINVAL (NULL, empty, a backslash inside a
 * Windows NAME), PROA_ENAMETOOLONG.
 */
int proa__pipe_full_name(const char *name, char *full, size_t size);

/* Room for any full name that proa__pipe_full_name makes: a named pipe's
 * 256 UTF-16 units take at most 3 bytes of UTF-8 each. */
#define PROA__PIPE_NAME_MAX (3 * 256 + 1)

#endif /* PROA_LOCAL_H */
