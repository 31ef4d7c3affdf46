/* Clock, thread id and pipe helpers for Unix. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

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
