/* Internal declarations shared by the files of the Windows backend. */
#ifndef PROA_WIN_H
#define PROA_WIN_H

#include "backend.h"
#include "proa/error.h"

/*
 * Completion keys. Handles that carry overlapped I/O are associated with the
 * port under PROA__KEY_IO; the other keys are used only with
 * PostQueuedCompletionStatus.
 */
enum proa__win_key {
  PROA__KEY_IO = 0,     /* kernel completion: result from the NTSTATUS */
  PROA__KEY_POSTED = 1, /* proa__backend_post: op->result already set */
  PROA__KEY_WAKE = 2,   /* proa__backend_wakeup, no OVERLAPPED */
  PROA__KEY_SIGNAL = 3  /* console event: signal number in the byte count */
};

struct proa__backend {
  HANDLE port;
  proa_loop *loop;
  unsigned signals; /* bit n set: this backend owns signal n; loop thread */
  int wsa_started;  /* WSAStartup succeeded and needs its WSACleanup */
  /* Posted ops that PostQueuedCompletionStatus could not take (it fails
   * only when the kernel is out of memory); poll completes them. */
  proa__op *spill_head, *spill_tail;
};

/* The backend's completion port, for associating handles with it. */
HANDLE proa__backend_port(proa__backend *be);

/*
 * Associates `h` (a socket, pipe or file opened for overlapped I/O) with the
 * backend's port under PROA__KEY_IO. Returns 0 or the translated error.
 */
int proa__backend_associate(proa__backend *be, HANDLE h);

/* ---- error translation (error.c) ---- */

/*
 * Translate Win32 (GetLastError) and Winsock (WSAGetLastError) codes to
 * PROA_E* codes; 0 gives 0 and an unknown code PROA_EUNKNOWN. Both accept
 * either kind of code, since Winsock reports some Win32 codes
 * (WSA_OPERATION_ABORTED is ERROR_OPERATION_ABORTED) and GetLastError
 * returns WSA codes after a failed Winsock call.
 *
 * Pipes: ERROR_BROKEN_PIPE gives PROA_EOF, because that is what a read sees
 * when the writing end closed (the normal end of a child's output). Writing
 * to a pipe whose reader is gone reports ERROR_NO_DATA, which gives
 * PROA_EPIPE; a write path that gets PROA_EOF should report PROA_EPIPE.
 */
int proa__translate_win32(DWORD err);
int proa__translate_wsa(int err);

/*
 * Translates the NTSTATUS of a kernel completion (OVERLAPPED.Internal, or
 * OVERLAPPED_ENTRY.Internal) to a PROA_E* code; a success status gives 0.
 * Socket statuses are mapped directly (RtlNtStatusToDosError would turn a
 * reset into ERROR_NETNAME_DELETED and a refusal into
 * ERROR_CONNECTION_REFUSED, which end up the same); the others go through
 * RtlNtStatusToDosError. STATUS_BUFFER_OVERFLOW (a datagram or message
 * larger than the buffer; the bytes that fit were transferred) gives
 * PROA_EMSGSIZE.
 */
int proa__translate_ntstatus(LONG status);

/* ---- console control events (signal.c) ---- */

/* Gives up every signal `be` owns; proa__backend_free calls it. */
void proa__win_signals_release(proa__backend *be);

#endif /* PROA_WIN_H */
