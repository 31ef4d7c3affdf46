/* The Windows backend: an I/O completion port that delivers proa__ops. */
#include <stdlib.h>
#include <string.h>

#include <winsock2.h>

#include "win.h"

/*
 * Completions taken from the port per system call. A full batch is followed
 * by a few more non-blocking calls so that a burst is drained in one poll,
 * but not so many that callbacks starve.
 */
#define BATCH 64
#define MAX_ROUNDS 4

static int iocp_init(proa_loop *loop, proa__backend **out) {
  proa__backend *be;
  WSADATA wsa;
  int err;
  be = (proa__backend *)calloc(1, sizeof *be);
  if (be == NULL)
    return PROA_ENOMEM;
  be->ops = &proa__iocp_ops;
  be->loop = loop;
  be->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
  if (be->port == NULL) {
    err = proa__translate_win32(GetLastError());
    free(be);
    return err;
  }
  /* Socket transports need Winsock; the loop is its natural owner. */
  err = WSAStartup(MAKEWORD(2, 2), &wsa);
  if (err != 0) {
    CloseHandle(be->port);
    free(be);
    return proa__translate_wsa(err);
  }
  be->wsa_started = 1;
  *out = be;
  return 0;
}

static void iocp_free(proa__backend *be) {
  if (be == NULL)
    return;
  PROA_ASSERT(be->inflight == 0, "the backend is freed with nothing in flight");
  /* Signals first, so that no console event is posted to a closed port. */
  proa__win_signals_release(be);
  CloseHandle(be->port);
  if (be->wsa_started)
    WSACleanup();
  free(be->lend_buf);
  free(be);
}

static size_t iocp_inflight(const proa__backend *be) { return be->inflight; }

HANDLE proa__backend_port(proa__backend *be) { return be->port; }

int proa__backend_associate(proa__backend *be, HANDLE h) {
  if (CreateIoCompletionPort(h, be->port, PROA__KEY_IO, 0) == NULL)
    return proa__translate_win32(GetLastError());
  return 0;
}

/* Converts the loop's timeout (-1 forever) to the milliseconds of a wait. */
static DWORD wait_ms(int64_t timeout_ms) {
  if (timeout_ms < 0)
    return INFINITE;
  if (timeout_ms >= (int64_t)INFINITE)
    return INFINITE - 1; /* about 49 days; the loop will wait again */
  return (DWORD)timeout_ms;
}

/* The op whose OVERLAPPED the port returned. */
static proa__op *op_of(OVERLAPPED *ov) {
  return (proa__op *)(void *)((char *)ov - offsetof(proa__op, overlapped));
}

/* A signal still owned when it arrives is delivered; one that was stopped
 * while its completion was queued is dropped. */
static void deliver_signal(proa__backend *be, DWORD signum) {
  if (signum < 32 && (be->signals & (1u << signum)) != 0)
    proa__loop_on_signal(be->loop, (int)signum);
}

static void deliver(proa__backend *be, const OVERLAPPED_ENTRY *e) {
  proa__op *op;
  LONG status;
  if (e->lpCompletionKey == (ULONG_PTR)PROA__KEY_SIGNAL) {
    deliver_signal(be, e->dwNumberOfBytesTransferred);
    return;
  }
  if (e->lpOverlapped == NULL) /* PROA__KEY_WAKE: the wait is over */
    return;
  op = op_of(e->lpOverlapped);
  if (e->lpCompletionKey == (ULONG_PTR)PROA__KEY_COUNTED)
    be->inflight--;
  if (e->lpCompletionKey == (ULONG_PTR)PROA__KEY_IO) {
    /* The entry's Internal is the IO_STATUS_BLOCK status of the request. */
    status = (LONG)e->Internal;
    if (status < 0)
      op->result = proa__translate_ntstatus(status);
    else
      op->result = (intptr_t)e->dwNumberOfBytesTransferred;
  }
  op->complete(op);
}

/* Completes the spilled posts, detaching the list first so that ops posted
 * again by a completion wait for the next poll. */
static void deliver_spill(proa__backend *be) {
  proa__op *op = be->spill_head, *next;
  proa__op *counted = be->cspill_head;
  be->spill_head = be->spill_tail = NULL;
  be->cspill_head = be->cspill_tail = NULL;
  for (; op != NULL; op = next) {
    next = op->next;
    op->next = NULL;
    op->complete(op);
  }
  for (op = counted; op != NULL; op = next) {
    next = op->next;
    op->next = NULL;
    be->inflight--;
    op->complete(op);
  }
}

static int iocp_poll(proa__backend *be, int64_t timeout_ms) {
  OVERLAPPED_ENTRY entries[BATCH];
  ULONG n, i;
  int round;
  bool spilled = be->spill_head != NULL || be->cspill_head != NULL;
  DWORD timeout = spilled ? 0 : wait_ms(timeout_ms);
  for (round = 0; round < MAX_ROUNDS; round++) {
    if (!GetQueuedCompletionStatusEx(be->port, entries, BATCH, &n, timeout,
                                     FALSE)) {
      DWORD err = GetLastError();
      if (err != WAIT_TIMEOUT)
        return proa__translate_win32(err);
      break;
    }
    for (i = 0; i < n; i++)
      deliver(be, &entries[i]);
    if (n < BATCH)
      break;
    timeout = 0;
  }
  if (be->spill_head != NULL || be->cspill_head != NULL)
    deliver_spill(be);
  return 0;
}

static void iocp_wakeup(proa__backend *be) {
  /* Failure means the kernel is out of memory; the loop's timers still end
   * the wait, and there is nobody to report to on a foreign thread. */
  PostQueuedCompletionStatus(be->port, 0, PROA__KEY_WAKE, NULL);
}

/* Posts `op` under `key`; when the kernel cannot take it (out of memory),
 * onto a list that the next poll completes. */
static void post(proa__backend *be, proa__op *op, ULONG_PTR key,
                 proa__op **head, proa__op **tail) {
  if (PostQueuedCompletionStatus(be->port, 0, key, &op->overlapped))
    return;
  op->next = NULL;
  if (*tail != NULL)
    (*tail)->next = op;
  else
    *head = op;
  *tail = op;
}

void proa__backend_post(proa__backend *be, proa__op *op) {
  post(be, op, PROA__KEY_POSTED, &be->spill_head, &be->spill_tail);
}

void proa__iocp_post_counted(proa__backend *be, proa__op *op) {
  be->inflight++;
  post(be, op, PROA__KEY_COUNTED, &be->cspill_head, &be->cspill_tail);
}

const proa__backend_ops proa__iocp_ops = {
    .name = "iocp",
    .init = iocp_init,
    .free = iocp_free,
    .poll = iocp_poll,
    .wakeup = iocp_wakeup,
    .inflight = iocp_inflight,
    .signal_start = proa__iocp_signal_start,
    .signal_stop = proa__iocp_signal_stop,
    .socket_open = proa__iocp_socket_open,
    .adopt = proa__iocp_adopt,
    .close = proa__iocp_close,
    .detach = proa__iocp_detach,
    .read = proa__iocp_read,
    .write = proa__iocp_write,
    .wait_readable = proa__iocp_wait_readable,
    .wait_writable = proa__iocp_wait_writable,
    .wait_peer_closed = proa__iocp_wait_peer_closed,
    .cancel = proa__iocp_cancel,
    .try_write = proa__iocp_try_write,
    .connect = proa__iocp_connect,
    .accept = proa__iocp_accept,
    .accept_max = PROA__IOCP_ACCEPT_MAX,
    .try_recvfrom = proa__iocp_try_recvfrom,
    .try_sendto = proa__iocp_try_sendto,
    .sendto = proa__iocp_sendto,
    .shutdown_write = proa__iocp_shutdown_write,
    .peer_pid = proa__iocp_peer_pid,
    .pipe_listen = proa__iocp_pipe_listen,
    .pipe_connect = proa__iocp_pipe_connect,
};

const proa__backend_ops *const proa__backends[] = {&proa__iocp_ops, NULL};
