/* Translation of Win32, Winsock and NTSTATUS codes to PROA_E* codes. */
#include "win.h"

/* Missing from some mingw-w64 headers. */
#ifndef ERROR_ELEVATION_REQUIRED
#define ERROR_ELEVATION_REQUIRED 740L
#endif

typedef struct code_map {
  DWORD code;
  int err;
} code_map;

/*
 * Win32 (winerror.h) and Winsock codes in one table: they never collide, and
 * GetLastError() returns Winsock codes after a failed Winsock call while
 * Winsock reports some Win32 codes (WSA_IO_PENDING is ERROR_IO_PENDING).
 * Errors are rare, so a linear search is fine; the hot one (WSAEWOULDBLOCK
 * on the speculative path) is checked before the search.
 */
static const code_map win32_codes[] = {
    /* cancellation and memory */
    {ERROR_OPERATION_ABORTED, PROA_ECANCELED},
    {ERROR_CANCELLED, PROA_ECANCELED},
    {ERROR_REQUEST_ABORTED, PROA_ECANCELED},
    {WSAECANCELLED, PROA_ECANCELED},
    {WSA_E_CANCELLED, PROA_ECANCELED},
    {ERROR_NOT_ENOUGH_MEMORY, PROA_ENOMEM},
    {ERROR_OUTOFMEMORY, PROA_ENOMEM},
    {ERROR_COMMITMENT_LIMIT, PROA_ENOMEM},
    {ERROR_NOT_ENOUGH_QUOTA, PROA_ENOMEM},
    {ERROR_WORKING_SET_QUOTA, PROA_ENOMEM},
    {ERROR_NO_SYSTEM_RESOURCES, PROA_ENOBUFS},
    {ERROR_INSUFFICIENT_BUFFER, PROA_ENOBUFS},
    {ERROR_INVALID_USER_BUFFER, PROA_ENOBUFS},
    {WSAENOBUFS, PROA_ENOBUFS},
    {WSAETOOMANYREFS, PROA_ENOBUFS},
    /* arguments and support */
    {ERROR_INVALID_PARAMETER, PROA_EINVAL},
    {ERROR_INVALID_FLAGS, PROA_EINVAL},
    {ERROR_INVALID_FUNCTION, PROA_EINVAL},
    {ERROR_BAD_EXE_FORMAT, PROA_EINVAL},
    {ERROR_NOACCESS, PROA_EINVAL},
    {ERROR_INVALID_ADDRESS, PROA_EINVAL},
    {ERROR_DIRECTORY, PROA_EINVAL},
    {ERROR_FILENAME_EXCED_RANGE, PROA_ENAMETOOLONG},
    {ERROR_BUFFER_OVERFLOW, PROA_EINVAL},
    {WSAEFAULT, PROA_EINVAL},
    {WSAEINVAL, PROA_EINVAL},
    {WSAEDESTADDRREQ, PROA_EDESTADDRREQ},
    {WSAENOPROTOOPT, PROA_ENOPROTOOPT},
    {WSAENAMETOOLONG, PROA_ENAMETOOLONG},
    {WSANOTINITIALISED, PROA_EINVAL},
    {ERROR_NOT_SUPPORTED, PROA_ENOTSUP},
    {WSAEPROTONOSUPPORT, PROA_EPROTONOSUPPORT},
    {WSAESOCKTNOSUPPORT, PROA_ESOCKTNOSUPPORT},
    {WSAEOPNOTSUPP, PROA_ENOTSUP},
    {WSAVERNOTSUPPORTED, PROA_ENOTSUP},
    {WSAEPFNOSUPPORT, PROA_EAFNOSUPPORT},
    {WSAEAFNOSUPPORT, PROA_EAFNOSUPPORT},
    {WSAEPROTOTYPE, PROA_EPROTOTYPE},
    {ERROR_CALL_NOT_IMPLEMENTED, PROA_ENOSYS},
    {ERROR_PROC_NOT_FOUND, PROA_ENOSYS},
    /* permissions, names and handles */
    {ERROR_ACCESS_DENIED, PROA_EACCES},
    {ERROR_WRITE_PROTECT, PROA_EACCES},
    {ERROR_ELEVATION_REQUIRED, PROA_EACCES},
    {WSAEACCES, PROA_EACCES},
    {ERROR_PRIVILEGE_NOT_HELD, PROA_EPERM},
    {ERROR_SHARING_VIOLATION, PROA_EBUSY},
    {ERROR_LOCK_VIOLATION, PROA_EBUSY},
    {ERROR_PIPE_BUSY, PROA_EBUSY},
    {ERROR_BUSY, PROA_EBUSY},
    {ERROR_FILE_NOT_FOUND, PROA_ENOENT},
    {ERROR_PATH_NOT_FOUND, PROA_ENOENT},
    {ERROR_INVALID_DRIVE, PROA_ENOENT},
    {ERROR_INVALID_NAME, PROA_ENOENT},
    {ERROR_BAD_PATHNAME, PROA_ENOENT},
    {ERROR_MOD_NOT_FOUND, PROA_ENOENT},
    {ERROR_ENVVAR_NOT_FOUND, PROA_ENOENT},
    {ERROR_FILE_EXISTS, PROA_EEXIST},
    {ERROR_ALREADY_EXISTS, PROA_EEXIST},
    {ERROR_INVALID_HANDLE, PROA_EBADF},
    {ERROR_ABANDONED_WAIT_0, PROA_EBADF}, /* the completion port closed */
    {WSAEBADF, PROA_EBADF},
    {WSAENOTSOCK, PROA_ENOTSOCK},
    {ERROR_TOO_MANY_OPEN_FILES, PROA_EMFILE},
    {WSAEMFILE, PROA_EMFILE},
    {WSAEPROCLIM, PROA_EMFILE},
    {ERROR_DISK_FULL, PROA_ENOSPC},
    {ERROR_HANDLE_DISK_FULL, PROA_ENOSPC},
    {ERROR_CRC, PROA_EIO},
    {ERROR_IO_DEVICE, PROA_EIO},
    {WSAEINTR, PROA_EINTR},
    /* pipes: ERROR_BROKEN_PIPE is the end of a read (see win.h) */
    {ERROR_BROKEN_PIPE, PROA_EOF},
    {ERROR_HANDLE_EOF, PROA_EOF},
    {ERROR_NO_DATA, PROA_EPIPE},
    {ERROR_PIPE_NOT_CONNECTED, PROA_EPIPE},
    {ERROR_BAD_PIPE, PROA_EPIPE},
    {ERROR_MORE_DATA, PROA_EMSGSIZE},
    /* pending work */
    {ERROR_IO_PENDING, PROA_EINPROGRESS},
    {ERROR_IO_INCOMPLETE, PROA_EINPROGRESS},
    {WSAEINPROGRESS, PROA_EINPROGRESS},
    {WSAEALREADY, PROA_EALREADY},
    {ERROR_SEM_TIMEOUT, PROA_ETIMEDOUT},
    {WAIT_TIMEOUT, PROA_ETIMEDOUT},
    {ERROR_TIMEOUT, PROA_ETIMEDOUT},
    {WSAETIMEDOUT, PROA_ETIMEDOUT},
    /* connections */
    {ERROR_NETNAME_DELETED, PROA_ECONNRESET},
    {WSAECONNRESET, PROA_ECONNRESET},
    {WSAENETRESET, PROA_ENETRESET},
    {ERROR_CONNECTION_REFUSED, PROA_ECONNREFUSED},
    {ERROR_PORT_UNREACHABLE, PROA_ECONNREFUSED},
    {WSAECONNREFUSED, PROA_ECONNREFUSED},
    {ERROR_CONNECTION_ABORTED, PROA_ECONNABORTED},
    {WSAECONNABORTED, PROA_ECONNABORTED},
    {ERROR_GRACEFUL_DISCONNECT, PROA_EPIPE},
    {WSAESHUTDOWN, PROA_ESHUTDOWN},
    {WSAEDISCON, PROA_EPIPE},
    {ERROR_PIPE_CONNECTED, PROA_EISCONN},
    {ERROR_CONNECTION_ACTIVE, PROA_EISCONN},
    {WSAEISCONN, PROA_EISCONN},
    {ERROR_CONNECTION_INVALID, PROA_ENOTCONN},
    {ERROR_NOT_CONNECTED, PROA_ENOTCONN},
    {WSAENOTCONN, PROA_ENOTCONN},
    {WSAEMSGSIZE, PROA_EMSGSIZE},
    /* addresses and routes */
    {ERROR_ADDRESS_ALREADY_ASSOCIATED, PROA_EADDRINUSE},
    {WSAEADDRINUSE, PROA_EADDRINUSE},
    {ERROR_INVALID_NETNAME, PROA_EADDRNOTAVAIL},
    {WSAEADDRNOTAVAIL, PROA_EADDRNOTAVAIL},
    {ERROR_NETWORK_UNREACHABLE, PROA_ENETUNREACH},
    {ERROR_PROTOCOL_UNREACHABLE, PROA_ENETUNREACH},
    {WSAENETUNREACH, PROA_ENETUNREACH},
    {ERROR_HOST_UNREACHABLE, PROA_EHOSTUNREACH},
    {WSAEHOSTUNREACH, PROA_EHOSTUNREACH},
    {WSAEHOSTDOWN, PROA_EHOSTDOWN},
    {WSAENETDOWN, PROA_ENETDOWN},
    {WSASYSNOTREADY, PROA_ENETDOWN},
    /* the resolver (getaddrinfo's EAI_* are these codes on Windows) */
    {WSAHOST_NOT_FOUND, PROA_EAI_NONAME},
    {WSATRY_AGAIN, PROA_EAI_AGAIN},
    {WSANO_RECOVERY, PROA_EAI_FAIL},
    {WSANO_DATA, PROA_EAI_NODATA},
    {WSATYPE_NOT_FOUND, PROA_EAI_SERVICE},
};

/*
 * NTSTATUS values of kernel completions; ntstatus.h clashes with windows.h
 * without extra defines, so the ones that matter are spelled out. They are
 * mapped the way Winsock would report them; the rest go through
 * RtlNtStatusToDosError.
 */
static const code_map ntstatus_codes[] = {
    {0xC0000120u, PROA_ECANCELED},     /* STATUS_CANCELLED */
    {0x80000005u, PROA_EMSGSIZE},      /* STATUS_BUFFER_OVERFLOW */
    {0xC0000011u, PROA_EOF},           /* STATUS_END_OF_FILE */
    {0xC000014Bu, PROA_EOF},           /* STATUS_PIPE_BROKEN */
    {0xC00000B0u, PROA_EPIPE},         /* STATUS_PIPE_DISCONNECTED */
    {0xC00000B1u, PROA_EPIPE},         /* STATUS_PIPE_CLOSING */
    {0xC0000237u, PROA_EPIPE},         /* STATUS_GRACEFUL_DISCONNECT */
    {0xC00000B5u, PROA_ETIMEDOUT},     /* STATUS_IO_TIMEOUT */
    {0xC000013Cu, PROA_ECONNRESET},    /* STATUS_REMOTE_DISCONNECT */
    {0xC000020Cu, PROA_ECONNRESET},    /* STATUS_CONNECTION_DISCONNECTED */
    {0xC000020Du, PROA_ECONNRESET},    /* STATUS_CONNECTION_RESET */
    {0xC000013Bu, PROA_ECONNABORTED},  /* STATUS_LOCAL_DISCONNECT */
    {0xC0000241u, PROA_ECONNABORTED},  /* STATUS_CONNECTION_ABORTED */
    {0xC0000236u, PROA_ECONNREFUSED},  /* STATUS_CONNECTION_REFUSED */
    {0xC000023Fu, PROA_ECONNREFUSED},  /* STATUS_PORT_UNREACHABLE */
    {0xC000023Cu, PROA_ENETUNREACH},   /* STATUS_NETWORK_UNREACHABLE */
    {0xC000023Eu, PROA_ENETUNREACH},   /* STATUS_PROTOCOL_UNREACHABLE */
    {0xC000023Du, PROA_EHOSTUNREACH},  /* STATUS_HOST_UNREACHABLE */
    {0xC000020Au, PROA_EADDRINUSE},    /* STATUS_ADDRESS_ALREADY_EXISTS */
    {0xC0000207u, PROA_EADDRNOTAVAIL}, /* STATUS_INVALID_ADDRESS_COMPONENT */
    {0xC0000140u, PROA_ENOTCONN},      /* STATUS_INVALID_CONNECTION */
    {0xC000023Bu, PROA_EISCONN},       /* STATUS_CONNECTION_ACTIVE */
    {0xC000009Au, PROA_ENOBUFS},       /* STATUS_INSUFFICIENT_RESOURCES */
    {0xC0000017u, PROA_ENOMEM},        /* STATUS_NO_MEMORY */
    {0xC0000008u, PROA_EBADF},         /* STATUS_INVALID_HANDLE */
    {0xC0000024u, PROA_ENOTSOCK},      /* STATUS_OBJECT_TYPE_MISMATCH */
    {0xC000000Du, PROA_EINVAL},        /* STATUS_INVALID_PARAMETER */
    {0xC00000BBu, PROA_ENOTSUP},       /* STATUS_NOT_SUPPORTED */
    {0xC0000022u, PROA_EACCES},        /* STATUS_ACCESS_DENIED */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The PROA_E* code of `code` in `map`, or 1 when it is not there. */
static int lookup(const code_map *map, size_t n, DWORD code) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (map[i].code == code)
      return map[i].err;
  }
  return 1;
}

int proa__translate_win32(DWORD err) {
  int r;
  if (err == ERROR_SUCCESS)
    return 0;
  if (err == WSAEWOULDBLOCK)
    return PROA_EAGAIN;
  r = lookup(win32_codes, COUNT(win32_codes), err);
  return r <= 0 ? r : PROA_EUNKNOWN;
}

int proa__translate_wsa(int err) {
  if (err < 0)
    return PROA_EUNKNOWN;
  return proa__translate_win32((DWORD)err);
}

typedef ULONG(WINAPI *rtl_status_fn)(LONG status);

/*
 * ntdll is loaded in every process; looking the function up avoids linking
 * ntdll.lib, which not every toolchain ships.
 */
proa__ntdll_fn proa__ntdll_function(const char *name) {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  /* Through void (*)(void) so that GCC accepts the function type change. */
  return ntdll != NULL
             ? (proa__ntdll_fn)(void (*)(void))GetProcAddress(ntdll, name)
             : NULL;
}

static INIT_ONCE rtl_once = INIT_ONCE_STATIC_INIT;
static rtl_status_fn rtl_status_to_dos;

static BOOL CALLBACK rtl_init(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)param;
  (void)ctx;
  rtl_status_to_dos =
      (rtl_status_fn)proa__ntdll_function("RtlNtStatusToDosError");
  return TRUE;
}

int proa__translate_ntstatus(LONG status) {
  int r;
  if (status >= 0) /* NT_SUCCESS: success, information or pending */
    return 0;
  r = lookup(ntstatus_codes, COUNT(ntstatus_codes), (DWORD)status);
  if (r <= 0)
    return r;
  InitOnceExecuteOnce(&rtl_once, rtl_init, NULL, NULL);
  if (rtl_status_to_dos == NULL)
    return PROA_EUNKNOWN;
  return proa__translate_win32(rtl_status_to_dos(status));
}
