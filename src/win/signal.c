/* Console control events (Ctrl-C, Ctrl-Break, closing) delivered as signals. */
#include "win.h"

#include "proa/signal.h"

/*
 * The process-wide registry: which loop's port gets each console event.
 * Windows runs the handler on a thread it creates, so the registry is read
 * under a shared lock there and written under an exclusive lock by the loops.
 * An SRWLOCK can be initialised statically, so no InitOnce is needed.
 */
enum { SLOT_HUP, SLOT_INT, SLOT_BREAK, NSLOTS };

static SRWLOCK registry_lock = SRWLOCK_INIT;
static proa__backend *owners[NSLOTS];
static HANDLE ports[NSLOTS];
static int handler_installed;

static int slot_of(int signum) {
  switch (signum) {
  case PROA_SIGHUP:
    return SLOT_HUP;
  case PROA_SIGINT:
    return SLOT_INT;
  case PROA_SIGBREAK:
    return SLOT_BREAK;
  default:
    return -1;
  }
}

static int signum_of(DWORD event) {
  switch (event) {
  case CTRL_C_EVENT:
    return PROA_SIGINT;
  case CTRL_BREAK_EVENT:
    return PROA_SIGBREAK;
  case CTRL_CLOSE_EVENT:
    return PROA_SIGHUP;
  default:
    return 0; /* logoff and shutdown reach services only */
  }
}

/* Posts `signum` to its owner's port; false when no loop watches it. */
static BOOL post_signal(int signum) {
  BOOL posted = FALSE;
  int slot = slot_of(signum);
  AcquireSRWLockShared(&registry_lock);
  if (ports[slot] != NULL)
    posted = PostQueuedCompletionStatus(ports[slot], (DWORD)signum,
                                        PROA__KEY_SIGNAL, NULL);
  ReleaseSRWLockShared(&registry_lock);
  return posted;
}

/*
 * Returning FALSE passes the event on to the next handler, and in the end to
 * the default one, which ends the process: that is the default disposition of
 * an event no loop watches.
 */
static BOOL WINAPI console_handler(DWORD event) {
  int signum = signum_of(event);
  if (signum == 0 || !post_signal(signum))
    return FALSE;
  /*
   * Windows ends the process as soon as the handler of a close event
   * returns (or after about 5 seconds). Blocking here gives the loop those
   * seconds to run its SIGHUP callback and exit on its own terms.
   */
  if (event == CTRL_CLOSE_EVENT)
    Sleep(INFINITE);
  return TRUE;
}

/* Takes `slot` for `be`; the registry lock is held exclusively. */
static int take_slot(proa__backend *be, int slot) {
  if (owners[slot] == be)
    return 0;
  if (owners[slot] != NULL)
    return PROA_EBUSY;
  /* The handler stays installed for good: it declines what nobody watches. */
  if (!handler_installed) {
    if (!SetConsoleCtrlHandler(console_handler, TRUE))
      return proa__translate_win32(GetLastError());
    handler_installed = 1;
  }
  owners[slot] = be;
  ports[slot] = be->port;
  return 0;
}

int proa__iocp_signal_start(proa__backend *be, int signum) {
  int slot, err;
  if (signum < 1 || signum > proa__signal_max())
    return PROA_EINVAL;
  slot = slot_of(signum);
  if (slot < 0)
    return PROA_ENOTSUP;
  AcquireSRWLockExclusive(&registry_lock);
  err = take_slot(be, slot);
  ReleaseSRWLockExclusive(&registry_lock);
  if (err == 0)
    be->signals |= 1u << signum;
  return err;
}

void proa__iocp_signal_stop(proa__backend *be, int signum) {
  int slot = slot_of(signum);
  if (slot < 0)
    return;
  AcquireSRWLockExclusive(&registry_lock);
  if (owners[slot] == be) {
    owners[slot] = NULL;
    ports[slot] = NULL;
  }
  ReleaseSRWLockExclusive(&registry_lock);
  be->signals &= ~(1u << signum);
}

void proa__win_signals_release(proa__backend *be) {
  int slot;
  AcquireSRWLockExclusive(&registry_lock);
  for (slot = 0; slot < NSLOTS; slot++) {
    if (owners[slot] == be) {
      owners[slot] = NULL;
      ports[slot] = NULL;
    }
  }
  ReleaseSRWLockExclusive(&registry_lock);
  be->signals = 0;
}
