/* Process-wide signal catching: the handler writes the number to a pipe. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

#ifdef NSIG
#define SIGNAL_COUNT NSIG
#else
#define SIGNAL_COUNT 65
#endif

/*
 * For each signal, the write end of the owning loop's self-pipe plus one
 * (0: not owned). The handler may run on any thread at any time, so it only
 * reads this table atomically and writes one byte.
 */
static proa__atomic_int owner_fd[SIGNAL_COUNT];
/* Serialises claims: two loops on two threads may race for a signal. */
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;

int proa__signal_max(void) { return SIGNAL_COUNT - 1; }

/* Handlers running right now, on any thread: a release waits for them, so
 * that no handler writes to a pipe its loop has closed (and whose number
 * may by then belong to another file). */
static proa__atomic_int running;

static void on_signal(int signum) {
  int saved = errno;
  long fd;
  /* Dekker's handshake with proa__signal_release: this side announces
   * itself and then reads the owner; that side clears the owner and then
   * reads `running`. Only sequential consistency rules out both reads
   * seeing the old values (this one writing to a released fd while that
   * one saw no handler running). */
  proa__atomic_add_sc(&running, 1);
  fd = proa__atomic_load_sc(&owner_fd[signum]) - 1;
  if (fd >= 0) {
    unsigned char byte = (unsigned char)signum;
    /* A full pipe already holds a wake-up; losing the byte is fine. */
    ssize_t n = write((int)fd, &byte, 1);
    (void)n;
  }
  proa__atomic_add_sc(&running, -1);
  errno = saved;
}

static int install(int signum, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(signum, &sa, NULL) == 0)
    return 0;
  return errno == EINVAL ? PROA_EINVAL : proa__translate_errno(errno);
}

int proa__signal_claim(int signum, int write_fd) {
  long owner;
  int err = 0;
  if (signum == SIGKILL || signum == SIGSTOP)
    return PROA_EINVAL;
  pthread_mutex_lock(&claim_lock);
  owner = proa__atomic_load(&owner_fd[signum]) - 1;
  if (owner >= 0 && owner != write_fd)
    err = PROA_EBUSY;
  if (!err && owner < 0) {
    proa__atomic_store(&owner_fd[signum], (long)write_fd + 1);
    err = install(signum, on_signal);
    if (err)
      proa__atomic_store(&owner_fd[signum], 0);
  }
  pthread_mutex_unlock(&claim_lock);
  return err;
}

void proa__signal_release(int signum, int write_fd) {
  pthread_mutex_lock(&claim_lock);
  if (proa__atomic_load(&owner_fd[signum]) - 1 == write_fd) {
    install(signum, SIG_DFL);
    proa__atomic_store_sc(&owner_fd[signum], 0);
  }
  pthread_mutex_unlock(&claim_lock);
  /* A handler that loaded the fd before the store may still be writing;
   * it takes microseconds, and a handler on this thread runs to its end
   * before this loop resumes, so the wait cannot deadlock. */
  while (proa__atomic_load_sc(&running) != 0)
    sched_yield();
}
