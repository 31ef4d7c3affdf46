/* Local IPC for Windows: AF_UNIX socket files, peer pids, pipe names. */
#include <stdlib.h>
#include <string.h>

#include "sockets.h"
#include "local.h"
#include "win.h"

/* A socket file that AF_UNIX's bind made is a reparse point of this tag. */
#ifndef IO_REPARSE_TAG_AF_UNIX
#define IO_REPARSE_TAG_AF_UNIX 0x80000023
#endif

#define PIPE_PREFIX "\\\\.\\pipe\\"
/* CreateNamedPipe's limit: 256 UTF-16 units, the prefix included; each
 * takes at most 3 bytes of UTF-8. */
#define PIPE_NAME_UNITS 256
#define PIPE_NAME_MAX (3 * PIPE_NAME_UNITS)

/* `path` (UTF-8) as a wide string, or NULL (*err says why). */
static wchar_t *wide(const char *path, int *err) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
  wchar_t *w = n > 0 ? (wchar_t *)malloc((size_t)n * sizeof *w) : NULL;
  *err = n > 0 ? PROA_ENOMEM : PROA_EINVAL;
  if (w && MultiByteToWideChar(CP_UTF8, 0, path, -1, w, n) != n) {
    free(w);
    w = NULL;
    *err = PROA_EINVAL;
  }
  return w;
}

/* Opened for its attributes only; a reparse point itself, not its target. */
static HANDLE open_attributes(const char *path, int *err) {
  wchar_t *w = wide(path, err);
  HANDLE h;
  if (!w)
    return INVALID_HANDLE_VALUE;
  h = CreateFileW(w, FILE_READ_ATTRIBUTES,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING,
                  FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS,
                  NULL);
  if (h == INVALID_HANDLE_VALUE)
    *err = proa__translate_win32(GetLastError());
  free(w);
  return h;
}

int proa__socket_file_id(const char *path, proa__file_id *out) {
  BY_HANDLE_FILE_INFORMATION info;
  FILE_ATTRIBUTE_TAG_INFO tag;
  int err = 0;
  HANDLE h = open_attributes(path, &err);
  if (h == INVALID_HANDLE_VALUE)
    return err;
  if (!GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag,
                                    sizeof tag) ||
      !GetFileInformationByHandle(h, &info))
    err = proa__translate_win32(GetLastError());
  else if (!(tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) ||
           tag.ReparseTag != IO_REPARSE_TAG_AF_UNIX)
    err = PROA_ENOTSOCK;
  CloseHandle(h);
  if (err)
    return err;
  out->dev = info.dwVolumeSerialNumber;
  out->ino = ((uint64_t)info.nFileIndexHigh << 32) | info.nFileIndexLow;
  return 0;
}

int proa__file_remove(const char *path) {
  int err = 0;
  wchar_t *w = wide(path, &err);
  if (!w)
    return err;
  err = DeleteFileW(w) ? 0 : proa__translate_win32(GetLastError());
  free(w);
  return err;
}

int proa__socket_peer_cred(intptr_t sock, proa_peer_cred *out) {
  ULONG pid = 0;
  DWORD n = 0;
  if (WSAIoctl((SOCKET)sock, SIO_AF_UNIX_GETPEERPID, NULL, 0, &pid, sizeof pid,
               &n, NULL, NULL) != 0)
    return proa__translate_wsa(WSAGetLastError());
  out->pid = (int64_t)pid;
  out->uid = -1; /* Windows has SIDs, not uids */
  out->gid = -1;
  return 0;
}

/* NAME becomes \\.\pipe\NAME; a name given whole is taken as it is. */
int proa__pipe_full_name(const char *name, char *full, size_t size) {
  size_t prefix = strlen(PIPE_PREFIX), n = name ? strlen(name) : 0;
  bool whole = n > prefix && _strnicmp(name, PIPE_PREFIX, prefix) == 0;
  int units;
  if (n == 0 || strchr(whole ? name + prefix : name, '\\'))
    return PROA_EINVAL; /* no backslash in NAME, given whole or not */
  if ((whole ? n : prefix + n) > PIPE_NAME_MAX ||
      (whole ? n : prefix + n) >= size)
    return PROA_ENAMETOOLONG;
  if (whole)
    memcpy(full, name, n + 1);
  else {
    memcpy(full, PIPE_PREFIX, prefix);
    memcpy(full + prefix, name, n + 1);
  }
  units = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, full, -1, NULL, 0);
  if (units <= 0)
    return PROA_EINVAL; /* not UTF-8 */
  return units - 1 > PIPE_NAME_UNITS ? PROA_ENAMETOOLONG : PROA__PIPE_NAMED;
}
