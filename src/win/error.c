/* Translation of Win32, Winsock and NTSTATUS codes to PROA_E* codes. */
#include "win.h"

/* Missing from some mingw-w64 headers. */
#ifndef ERROR_ELEVATION_REQUIRED
#define ERROR_ELEVATION_REQUIRED 740L
#endif

/* Win32 codes from winerror.h; Winsock's codes are in there too. */
static int translate_win32_part(DWORD err) {
  switch (err) {
  case ERROR_SUCCESS: return 0;
  case ERROR_OPERATION_ABORTED:
  case ERROR_CANCELLED:
  case ERROR_REQUEST_ABORTED: return PROA_ECANCELED;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
  case ERROR_NOT_ENOUGH_QUOTA:
  case ERROR_WORKING_SET_QUOTA: return PROA_ENOMEM;
  case ERROR_INVALID_PARAMETER:
  case ERROR_INVALID_FLAGS:
  case ERROR_INVALID_FUNCTION:
  case ERROR_BAD_EXE_FORMAT:
  case ERROR_NOACCESS:
  case ERROR_INVALID_ADDRESS:
  case ERROR_DIRECTORY:
  case ERROR_FILENAME_EXCED_RANGE:
  case ERROR_BUFFER_OVERFLOW: return PROA_EINVAL;
  case ERROR_NOT_SUPPORTED: return PROA_ENOTSUP;
  case ERROR_CALL_NOT_IMPLEMENTED:
  case ERROR_PROC_NOT_FOUND: return PROA_ENOSYS;
  case ERROR_ACCESS_DENIED:
  case ERROR_WRITE_PROTECT:
  case ERROR_ELEVATION_REQUIRED: return PROA_EACCES;
  case ERROR_PRIVILEGE_NOT_HELD: return PROA_EPERM;
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
  case ERROR_PIPE_BUSY:
  case ERROR_BUSY: return PROA_EBUSY;
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_INVALID_DRIVE:
  case ERROR_INVALID_NAME:
  case ERROR_BAD_PATHNAME:
  case ERROR_MOD_NOT_FOUND:
  case ERROR_ENVVAR_NOT_FOUND: return PROA_ENOENT;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS: return PROA_EEXIST;
  case ERROR_INVALID_HANDLE:
  case ERROR_ABANDONED_WAIT_0: return PROA_EBADF;
  case ERROR_TOO_MANY_OPEN_FILES: return PROA_EMFILE;
  case ERROR_NO_SYSTEM_RESOURCES:
  case ERROR_INSUFFICIENT_BUFFER:
  case ERROR_INVALID_USER_BUFFER: return PROA_ENOBUFS;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL: return PROA_ENOSPC;
  case ERROR_CRC:
  case ERROR_IO_DEVICE: return PROA_EIO;
  default: return PROA_EUNKNOWN;
  }
}

/* Win32 codes of pipes, connections and waits. */
static int translate_win32_io(DWORD err) {
  switch (err) {
  case ERROR_BROKEN_PIPE: /* the writer closed: see win.h */
  case ERROR_HANDLE_EOF: return PROA_EOF;
  case ERROR_NO_DATA:
  case ERROR_PIPE_NOT_CONNECTED:
  case ERROR_BAD_PIPE:
  case ERROR_GRACEFUL_DISCONNECT: return PROA_EPIPE;
  case ERROR_PIPE_CONNECTED:
  case ERROR_CONNECTION_ACTIVE: return PROA_EISCONN;
  case ERROR_MORE_DATA: return PROA_EMSGSIZE;
  case ERROR_IO_PENDING:
  case ERROR_IO_INCOMPLETE: return PROA_EINPROGRESS;
  case ERROR_SEM_TIMEOUT:
  case WAIT_TIMEOUT:
  case ERROR_TIMEOUT: return PROA_ETIMEDOUT;
  case ERROR_NETNAME_DELETED: return PROA_ECONNRESET;
  case ERROR_CONNECTION_REFUSED:
  case ERROR_PORT_UNREACHABLE: return PROA_ECONNREFUSED;
  case ERROR_CONNECTION_ABORTED: return PROA_ECONNABORTED;
  case ERROR_NETWORK_UNREACHABLE:
  case ERROR_PROTOCOL_UNREACHABLE: return PROA_ENETUNREACH;
  case ERROR_HOST_UNREACHABLE: return PROA_EHOSTUNREACH;
  case ERROR_ADDRESS_ALREADY_ASSOCIATED: return PROA_EADDRINUSE;
  case ERROR_INVALID_NETNAME: return PROA_EADDRNOTAVAIL;
  case ERROR_CONNECTION_INVALID:
  case ERROR_NOT_CONNECTED: return PROA_ENOTCONN;
  default: return translate_win32_part(err);
  }
}

/* Winsock's own codes (10000 and up). */
static int translate_wsa_part(int err) {
  switch (err) {
  case WSAEINTR: return PROA_EINTR;
  case WSAEBADF: return PROA_EBADF;
  case WSAEACCES: return PROA_EACCES;
  case WSAEFAULT:
  case WSAEINVAL:
  case WSAEDESTADDRREQ:
  case WSAENOPROTOOPT:
  case WSAENAMETOOLONG:
  case WSANOTINITIALISED: return PROA_EINVAL;
  case WSAEMFILE:
  case WSAEPROCLIM: return PROA_EMFILE;
  case WSAEWOULDBLOCK: return PROA_EAGAIN;
  case WSAEINPROGRESS: return PROA_EINPROGRESS;
  case WSAEALREADY: return PROA_EALREADY;
  case WSAENOTSOCK: return PROA_ENOTSOCK;
  case WSAEMSGSIZE: return PROA_EMSGSIZE;
  case WSAEPROTOTYPE: return PROA_EPROTO;
  case WSAEPROTONOSUPPORT:
  case WSAESOCKTNOSUPPORT:
  case WSAEOPNOTSUPP:
  case WSAVERNOTSUPPORTED: return PROA_ENOTSUP;
  case WSAEPFNOSUPPORT:
  case WSAEAFNOSUPPORT: return PROA_EAFNOSUPPORT;
  case WSAEADDRINUSE: return PROA_EADDRINUSE;
  case WSAEADDRNOTAVAIL: return PROA_EADDRNOTAVAIL;
  case WSAENETDOWN:
  case WSASYSNOTREADY: return PROA_ENETDOWN;
  case WSAENETUNREACH: return PROA_ENETUNREACH;
  case WSAEHOSTDOWN:
  case WSAEHOSTUNREACH: return PROA_EHOSTUNREACH;
  default: return PROA_EUNKNOWN;
  }
}

/* Winsock's connection and resolver codes. */
static int translate_wsa_conn(int err) {
  switch (err) {
  case WSAENETRESET:
  case WSAECONNRESET: return PROA_ECONNRESET;
  case WSAECONNABORTED: return PROA_ECONNABORTED;
  case WSAECONNREFUSED: return PROA_ECONNREFUSED;
  case WSAENOBUFS:
  case WSAETOOMANYREFS: return PROA_ENOBUFS;
  case WSAEISCONN: return PROA_EISCONN;
  case WSAENOTCONN: return PROA_ENOTCONN;
  case WSAESHUTDOWN:
  case WSAEDISCON: return PROA_EPIPE;
  case WSAETIMEDOUT: return PROA_ETIMEDOUT;
  case WSAECANCELLED:
  case WSA_E_CANCELLED: return PROA_ECANCELED;
  case WSAHOST_NOT_FOUND: return PROA_EAI_NONAME;
  case WSATRY_AGAIN: return PROA_EAI_AGAIN;
  case WSANO_RECOVERY: return PROA_EAI_FAIL;
  case WSANO_DATA: return PROA_EAI_NODATA;
  case WSATYPE_NOT_FOUND: return PROA_EAI_SERVICE;
  default: return translate_wsa_part(err);
  }
}

int proa__translate_win32(DWORD err) {
  /* Winsock codes live in 10000..11999, above every Win32 code it uses. */
  if (err >= 10000 && err < 12000)
    return translate_wsa_conn((int)err);
  return translate_win32_io(err);
}

int proa__translate_wsa(int err) {
  if (err < 0)
    return PROA_EUNKNOWN;
  return proa__translate_win32((DWORD)err);
}

/*
 * NTSTATUS values; ntstatus.h clashes with windows.h without extra defines,
 * so the few that matter are spelled out here.
 */
#define ST_BUFFER_OVERFLOW 0x80000005u
#define ST_INVALID_HANDLE 0xC0000008u
#define ST_INVALID_PARAMETER 0xC000000Du
#define ST_END_OF_FILE 0xC0000011u
#define ST_NO_MEMORY 0xC0000017u
#define ST_ACCESS_DENIED 0xC0000022u
#define ST_OBJECT_TYPE_MISMATCH 0xC0000024u
#define ST_INSUFFICIENT_RESOURCES 0xC000009Au
#define ST_PIPE_DISCONNECTED 0xC00000B0u
#define ST_PIPE_CLOSING 0xC00000B1u
#define ST_IO_TIMEOUT 0xC00000B5u
#define ST_NOT_SUPPORTED 0xC00000BBu
#define ST_CANCELLED 0xC0000120u
#define ST_LOCAL_DISCONNECT 0xC000013Bu
#define ST_REMOTE_DISCONNECT 0xC000013Cu
#define ST_INVALID_CONNECTION 0xC0000140u
#define ST_PIPE_BROKEN 0xC000014Bu
#define ST_INVALID_ADDRESS_COMPONENT 0xC0000207u
#define ST_ADDRESS_ALREADY_EXISTS 0xC000020Au
#define ST_CONNECTION_DISCONNECTED 0xC000020Cu
#define ST_CONNECTION_RESET 0xC000020Du
#define ST_CONNECTION_REFUSED 0xC0000236u
#define ST_GRACEFUL_DISCONNECT 0xC0000237u
#define ST_CONNECTION_ACTIVE 0xC000023Bu
#define ST_NETWORK_UNREACHABLE 0xC000023Cu
#define ST_HOST_UNREACHABLE 0xC000023Du
#define ST_PROTOCOL_UNREACHABLE 0xC000023Eu
#define ST_PORT_UNREACHABLE 0xC000023Fu
#define ST_CONNECTION_ABORTED 0xC0000241u

/* Statuses of sockets and pipes, mapped the way Winsock would report them. */
static int translate_ntstatus_io(DWORD st) {
  switch (st) {
  case ST_CANCELLED: return PROA_ECANCELED;
  case ST_BUFFER_OVERFLOW: return PROA_EMSGSIZE;
  case ST_END_OF_FILE:
  case ST_PIPE_BROKEN: return PROA_EOF;
  case ST_PIPE_DISCONNECTED:
  case ST_PIPE_CLOSING:
  case ST_GRACEFUL_DISCONNECT: return PROA_EPIPE;
  case ST_IO_TIMEOUT: return PROA_ETIMEDOUT;
  case ST_REMOTE_DISCONNECT:
  case ST_CONNECTION_DISCONNECTED:
  case ST_CONNECTION_RESET: return PROA_ECONNRESET;
  case ST_LOCAL_DISCONNECT:
  case ST_CONNECTION_ABORTED: return PROA_ECONNABORTED;
  case ST_CONNECTION_REFUSED:
  case ST_PORT_UNREACHABLE: return PROA_ECONNREFUSED;
  case ST_NETWORK_UNREACHABLE:
  case ST_PROTOCOL_UNREACHABLE: return PROA_ENETUNREACH;
  case ST_HOST_UNREACHABLE: return PROA_EHOSTUNREACH;
  case ST_ADDRESS_ALREADY_EXISTS: return PROA_EADDRINUSE;
  case ST_INVALID_ADDRESS_COMPONENT: return PROA_EADDRNOTAVAIL;
  case ST_INVALID_CONNECTION: return PROA_ENOTCONN;
  case ST_CONNECTION_ACTIVE: return PROA_EISCONN;
  case ST_INSUFFICIENT_RESOURCES: return PROA_ENOBUFS;
  case ST_NO_MEMORY: return PROA_ENOMEM;
  case ST_INVALID_HANDLE: return PROA_EBADF;
  case ST_OBJECT_TYPE_MISMATCH: return PROA_ENOTSOCK;
  case ST_INVALID_PARAMETER: return PROA_EINVAL;
  case ST_NOT_SUPPORTED: return PROA_ENOTSUP;
  case ST_ACCESS_DENIED: return PROA_EACCES;
  default: return 1; /* not a status of this table */
  }
}

typedef ULONG(WINAPI *rtl_status_fn)(LONG status);

/* ntdll is loaded in every process; looking the function up avoids linking
 * ntdll.lib, which not every toolchain ships. */
static INIT_ONCE rtl_once = INIT_ONCE_STATIC_INIT;
static rtl_status_fn rtl_status_to_dos;

static BOOL CALLBACK rtl_init(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  (void)once;
  (void)param;
  (void)ctx;
  if (ntdll != NULL) {
    /* Through void (*)(void) so that GCC accepts the function type change. */
    rtl_status_to_dos = (rtl_status_fn)(void (*)(void))GetProcAddress(
        ntdll, "RtlNtStatusToDosError");
  }
  return TRUE;
}

int proa__translate_ntstatus(LONG status) {
  int err;
  if (status >= 0) /* NT_SUCCESS: success, information or pending */
    return 0;
  err = translate_ntstatus_io((DWORD)status);
  if (err <= 0)
    return err;
  InitOnceExecuteOnce(&rtl_once, rtl_init, NULL, NULL);
  if (rtl_status_to_dos == NULL)
    return PROA_EUNKNOWN;
  return proa__translate_win32(rtl_status_to_dos(status));
}
