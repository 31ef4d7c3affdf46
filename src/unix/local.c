/* Local IPC for Unix: socket files, peer credentials, pipe names. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* struct ucred */
#endif
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine.h"
#include "local.h"

int proa__socket_file_id(const char *path, proa__file_id *out) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return proa__translate_errno(errno);
  if (!S_ISSOCK(st.st_mode))
    return PROA_ENOTSOCK;
  out->dev = (uint64_t)st.st_dev;
  out->ino = (uint64_t)st.st_ino;
  return 0;
}

int proa__file_remove(const char *path) {
  return unlink(path) == 0 ? 0 : proa__translate_errno(errno);
}

#if defined(__linux__) && defined(SO_PEERCRED)
int proa__socket_peer_cred(intptr_t sock, proa_peer_cred *out) {
  struct ucred cred;
  socklen_t len = (socklen_t)sizeof cred;
  if (getsockopt((int)sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return proa__translate_errno(errno);
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  return 0;
}
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) ||     \
    defined(__OpenBSD__) || defined(__DragonFly__)
int proa__socket_peer_cred(intptr_t sock, proa_peer_cred *out) {
  uid_t uid;
  gid_t gid;
  if (getpeereid((int)sock, &uid, &gid) != 0)
    return proa__translate_errno(errno);
  out->pid = -1;
  out->uid = uid;
  out->gid = gid;
#ifdef LOCAL_PEERPID /* macOS: the pid is a socket option of its own */
  {
    pid_t pid;
    socklen_t len = (socklen_t)sizeof pid;
    if (getsockopt((int)sock, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0)
      out->pid = pid;
  }
#endif
  return 0;
}
#else
int proa__socket_peer_cred(intptr_t sock, proa_peer_cred *out) {
  (void)sock;
  (void)out;
  return PROA_ENOTSUP;
}
#endif

/* A pipe name is a socket path here; proa_sockaddr_from_path checks it. */
int proa__pipe_full_name(const char *name, char *full, size_t size) {
  proa_sockaddr addr; /* the path rules: '@', sun_path's length */
  size_t n = name ? strlen(name) : 0;
  int err = name ? proa_sockaddr_from_path(&addr, name) : PROA_EINVAL;
  if (err)
    return err;
  if (n >= size)
    return PROA_ENAMETOOLONG;
  memcpy(full, name, n + 1);
  return PROA__PIPE_UNIX_SOCKET;
}
