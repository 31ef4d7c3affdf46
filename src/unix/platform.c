/* Clock, thread id and pipe helpers for Unix. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "proa/pipe.h"

uint64_t proa__clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t proa__thread_id(void) {
  /* The address of a thread-local is unique among live threads, never 0. */
  static PROA__THREAD_LOCAL char marker;
  return (uint64_t)(uintptr_t)&marker;
}

int proa__set_nonblock_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return proa__translate_errno(errno);
  fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
    return proa__translate_errno(errno);
  return 0;
}

int proa__make_pipe(int fds[2]) {
#ifdef __linux__
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0)
    return 0;
  return proa__translate_errno(errno);
#else
  int err;
  if (pipe(fds) != 0)
    return proa__translate_errno(errno);
  err = proa__set_nonblock_cloexec(fds[0]);
  if (!err)
    err = proa__set_nonblock_cloexec(fds[1]);
  if (err) {
    close(fds[0]);
    close(fds[1]);
  }
  return err;
#endif
}

/* O_NONBLOCK and FD_CLOEXEC as PROA_PIPE_* `flags` ask. */
static int set_pipe_flags(int fd, unsigned flags) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return proa__translate_errno(errno);
  fl = (flags & PROA_PIPE_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
  if (fcntl(fd, F_SETFL, fl) < 0)
    return proa__translate_errno(errno);
  fl = fcntl(fd, F_GETFD);
  if (fl < 0)
    return proa__translate_errno(errno);
  fl = (flags & PROA_PIPE_INHERIT) ? fl & ~FD_CLOEXEC : fl | FD_CLOEXEC;
  return fcntl(fd, F_SETFD, fl) < 0 ? proa__translate_errno(errno) : 0;
}

/*
 * pipe2 makes both ends close-on-exec at once, so that a fork on another
 * thread cannot inherit an end that is not meant to be inherited; an end
 * that is then loses the flag. Without pipe2 there is a short window.
 */
int proa__os_pipe(intptr_t out[2], unsigned read_flags, unsigned write_flags) {
  int fds[2], err;
#ifdef __linux__
  if (pipe2(fds, O_CLOEXEC) != 0)
    return proa__translate_errno(errno);
#else
  if (pipe(fds) != 0)
    return proa__translate_errno(errno);
#endif
  err = set_pipe_flags(fds[0], read_flags);
  if (!err)
    err = set_pipe_flags(fds[1], write_flags);
  if (err) {
    close(fds[0]);
    close(fds[1]);
    return err;
  }
  out[0] = fds[0];
  out[1] = fds[1];
  return 0;
}

int proa__os_pipe_close(intptr_t handle) {
  if (handle < 0 || handle > INT32_MAX)
    return PROA_EBADF;
  /* EINTR: the fd is closed all the same on Linux; retrying could close
   * an fd another thread just opened. */
  return close((int)handle) == 0 || errno == EINTR ? 0 : PROA_EBADF;
}
