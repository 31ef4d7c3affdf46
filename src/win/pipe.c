/* proa_pipe on Windows: a named pipe pair with a name nobody can guess. */
#include <stdio.h>
#include <string.h>

#include "proa/pipe.h"
#include "win.h"

#include <bcrypt.h> /* after windows.h (win.h), which it needs */

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif

#define PIPE_BUFFER 65536 /* each direction's quota in the kernel */
#define NAME_RANDOM 16    /* random bytes in a name */

/* \\.\pipe\proa-PID-HEX: the pid tells whose it is, 128 random bits make
 * it unguessable, so nobody can connect to it (or make it) first. */
static int pipe_name(wchar_t *name, size_t size) {
  unsigned char rnd[NAME_RANDOM];
  wchar_t hex[2 * NAME_RANDOM + 1];
  int i;
  if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, rnd, sizeof rnd,
                                      BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
    return PROA_EUNKNOWN;
  for (i = 0; i < NAME_RANDOM; i++)
    swprintf(hex + 2 * i, 3, L"%02x", rnd[i]);
  swprintf(name, size, L"\\\\.\\pipe\\proa-%lu-%ls",
           (unsigned long)GetCurrentProcessId(), hex);
  return 0;
}

static DWORD overlapped_flag(unsigned flags) {
  return (flags & PROA_PIPE_NONBLOCK) ? FILE_FLAG_OVERLAPPED : 0;
}

/*
 * The write end is the server: duplex, so that a write pipe over it can
 * watch its reader with a zero-byte read (wait_peer_closed), which only
 * ends when the reader closes, since the read end is opened without write
 * access and can send nothing back. One instance only, local clients only.
 */
static HANDLE make_server(const wchar_t *name, unsigned flags) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  sa.bInheritHandle = (flags & PROA_PIPE_INHERIT) != 0;
  return CreateNamedPipeW(name,
                          PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE |
                              overlapped_flag(flags),
                          PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                              PIPE_REJECT_REMOTE_CLIENTS,
                          1, PIPE_BUFFER, PIPE_BUFFER, 0, &sa);
}

/* The read end: reads, and may change its own state (SetNamedPipeHandle-
 * State needs FILE_WRITE_ATTRIBUTES), but cannot write. */
static HANDLE open_client(const wchar_t *name, unsigned flags) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  sa.bInheritHandle = (flags & PROA_PIPE_INHERIT) != 0;
  return CreateFileW(name, GENERIC_READ | FILE_WRITE_ATTRIBUTES, 0, &sa,
                     OPEN_EXISTING, overlapped_flag(flags), NULL);
}

/* The client connected when CreateFileW returned; ConnectNamedPipe then
 * says ERROR_PIPE_CONNECTED at once (an overlapped server needs an
 * OVERLAPPED all the same). */
static int server_connected(HANDLE server) {
  OVERLAPPED ov;
  DWORD n;
  memset(&ov, 0, sizeof ov);
  if (ConnectNamedPipe(server, &ov) || GetLastError() == ERROR_PIPE_CONNECTED)
    return 0;
  if (GetLastError() == ERROR_IO_PENDING &&
      GetOverlappedResult(server, &ov, &n, TRUE))
    return 0;
  return proa__translate_win32(GetLastError());
}

int proa__os_pipe(intptr_t fds[2], unsigned read_flags, unsigned write_flags) {
  wchar_t name[64];
  HANDLE server, client;
  int err = pipe_name(name, sizeof name / sizeof name[0]);
  if (err)
    return err;
  server = make_server(name, write_flags);
  if (server == INVALID_HANDLE_VALUE)
    return proa__translate_win32(GetLastError());
  client = open_client(name, read_flags);
  err = client == INVALID_HANDLE_VALUE ? proa__translate_win32(GetLastError())
                                       : server_connected(server);
  if (err) {
    if (client != INVALID_HANDLE_VALUE)
      CloseHandle(client);
    CloseHandle(server);
    return err;
  }
  fds[0] = (intptr_t)client;
  fds[1] = (intptr_t)server;
  return 0;
}

int proa__os_pipe_close(intptr_t handle) {
  HANDLE h = (HANDLE)handle;
  if (h == NULL || h == INVALID_HANDLE_VALUE)
    return PROA_EBADF;
  return CloseHandle(h) ? 0 : PROA_EBADF;
}
