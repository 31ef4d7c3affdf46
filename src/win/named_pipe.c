/* Windows named pipes: the listeners and clients of the local servers. */
#include <stdlib.h>
#include <string.h>

#include "win.h"

#include <sddl.h> /* after windows.h (win.h), which it needs */

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif

#define NAME_MAX_CHARS 256 /* a pipe name's limit, \\.\pipe\ included */
#define DEFAULT_INSTANCES 8
#define PIPE_BUFFER 65536 /* each direction's buffer: a hint to the OS */
#define ACCEPT_MAX PROA__IOCP_ACCEPT_MAX
/* Clients that came and went, tolerated per ConnectNamedPipe. */
#define NO_DATA_RETRIES 4

static const wchar_t prefix[] = L"\\\\.\\pipe\\";
#define PREFIX_LEN (sizeof prefix / sizeof prefix[0] - 1)

/* ---- names ---- */

/*
 * \\.\pipe\NAME in UTF-16 into *out (the caller frees it); a NAME given
 * whole (\\.\pipe\ first, in any case) is taken as it is. PROA_EINVAL for
 * NULL, an empty NAME, a backslash in NAME or bad UTF-8; PROA_ENAMETOOLONG
 * over NAME_MAX_CHARS UTF-16 units in all: never a truncated name.
 */
static int pipe_name(const char *name, wchar_t **out) {
  const char *tail = name;
  wchar_t *w;
  int n;
  if (name == NULL)
    return PROA_EINVAL;
  if (_strnicmp(name, "\\\\.\\pipe\\", PREFIX_LEN) == 0)
    tail = name + PREFIX_LEN;
  if (*tail == '\0' || strchr(tail, '\\') != NULL)
    return PROA_EINVAL;
  /* Each UTF-16 unit takes at most 3 bytes of UTF-8: no need to convert
   * a name that long to know it is too long. */
  if (strlen(tail) > 3 * NAME_MAX_CHARS)
    return PROA_ENAMETOOLONG;
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, tail, -1, NULL, 0);
  if (n <= 0)
    return PROA_EINVAL;
  if (PREFIX_LEN + (size_t)n - 1 > NAME_MAX_CHARS)
    return PROA_ENAMETOOLONG;
  w = (wchar_t *)malloc((PREFIX_LEN + (size_t)n) * sizeof *w);
  if (w == NULL)
    return PROA_ENOMEM;
  memcpy(w, prefix, PREFIX_LEN * sizeof *w);
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, tail, -1, w + PREFIX_LEN,
                      n);
  *out = w;
  return 0;
}

/* ---- the default security descriptor ---- */

/* The string form of the process token's user SID (LocalFree it). */
static int user_sid(wchar_t **out) {
  HANDLE token;
  DWORD len = 0;
  TOKEN_USER *user = NULL;
  int err = 0;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return proa__translate_win32(GetLastError());
  GetTokenInformation(token, TokenUser, NULL, 0, &len);
  user = len ? (TOKEN_USER *)malloc(len) : NULL;
  if (user == NULL)
    err = PROA_ENOMEM;
  else if (!GetTokenInformation(token, TokenUser, user, len, &len) ||
           !ConvertSidToStringSidW(user->User.Sid, out))
    err = proa__translate_win32(GetLastError());
  free(user);
  CloseHandle(token);
  return err;
}

/*
 * A protected DACL that gives the current user and SYSTEM full access and
 * nobody else any (LocalFree the result). Made once per listener.
 */
static int default_sd(PSECURITY_DESCRIPTOR *out) {
  static const wchar_t head[] = L"D:P(A;;GA;;;SY)(A;;GA;;;";
  wchar_t *sid = NULL, *sddl;
  size_t hlen = sizeof head / sizeof head[0] - 1, slen;
  int err = user_sid(&sid);
  if (err)
    return err;
  slen = wcslen(sid);
  sddl = (wchar_t *)malloc((hlen + slen + 2) * sizeof *sddl);
  if (sddl == NULL) {
    LocalFree(sid);
    return PROA_ENOMEM;
  }
  memcpy(sddl, head, hlen * sizeof *sddl);
  memcpy(sddl + hlen, sid, slen * sizeof *sddl);
  sddl[hlen + slen] = L')';
  sddl[hlen + slen + 1] = L'\0';
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, out, NULL))
    err = proa__translate_win32(GetLastError());
  free(sddl);
  LocalFree(sid);
  return err;
}

/* ---- listeners ---- */

typedef struct listener listener;

/* A slot for one instance waiting for a client: ConnectNamedPipe's op. */
typedef struct instance {
  proa__op op; /* first: its OVERLAPPED is what the port returns */
  listener *l;
  HANDLE pipe; /* INVALID_HANDLE_VALUE once handed over or closed */
  bool busy;   /* ConnectNamedPipe in flight: its completion is to come */
} instance;

/* An accept of the caller's, waiting for a connected instance. */
typedef struct accept_rec {
  proa__op op; /* first: posted when the accept ends outside a completion */
  listener *l;
  proa__accept_op *user; /* in flight, or NULL */
  bool posted;           /* its result is set and on its way */
} accept_rec;

/*
 * The listener owns `ninstances` pipe instances, each waiting for a client
 * (ConnectNamedPipe in flight) or connected and waiting for an accept (in
 * `ready`): the backlog. A connected instance handed to an accept leaves
 * the listener and a new one takes its place, so a burst of clients finds
 * instances to connect to while the server accepts.
 */
struct listener {
  proa__ioh h; /* first: what the code above sees; h.os is -1 */
  proa__backend *be;
  wchar_t *name;
  SECURITY_ATTRIBUTES sa;
  PSECURITY_DESCRIPTOR own_sd; /* the default one, else NULL */
  int ninstances;
  int listening; /* instances with ConnectNamedPipe in flight */
  instance *instances;
  HANDLE *ready; /* connected, not accepted yet; oldest first */
  int nready;
  accept_rec accepts[ACCEPT_MAX];
  int inflight; /* completions of instances and accepts still to run */
  bool made_first;
  bool closed;
};

static const proa__backend_ops listener_ops;

static listener *of_ioh(proa__ioh *h) { return (listener *)(void *)h; }

static void listener_free(listener *l) {
  proa__handles_count(-1);
  if (l->own_sd != NULL)
    LocalFree(l->own_sd);
  free(l->name);
  free(l->instances);
  free(l->ready);
  free(l);
}

static void maybe_free(listener *l) {
  if (l->closed && l->inflight == 0)
    listener_free(l);
}

static void flight(listener *l, int n) {
  l->inflight += n;
  proa__iocp_inflight_add(l->be, n);
}

/*
 * A new instance, associated with the port. The first one claims the name
 * (FILE_FLAG_FIRST_PIPE_INSTANCE): its ERROR_ACCESS_DENIED means that
 * another server has it. Remote clients are always refused. Messages, so
 * that an empty one can end a direction (handle.c, pipe_write_eof); the
 * stream reads across their boundaries all the same.
 */
static int instance_open(listener *l, HANDLE *out) {
  DWORD open = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
  DWORD mode = PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT |
               PIPE_REJECT_REMOTE_CLIENTS;
  HANDLE pipe;
  int err;
  if (!l->made_first)
    open |= FILE_FLAG_FIRST_PIPE_INSTANCE;
  pipe = CreateNamedPipeW(l->name, open, mode, PIPE_UNLIMITED_INSTANCES,
                          PIPE_BUFFER, PIPE_BUFFER, 0, &l->sa);
  if (pipe == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    if (!l->made_first && (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY))
      return PROA_EADDRINUSE;
    return proa__translate_win32(e);
  }
  err = proa__backend_associate(l->be, pipe);
  if (err) {
    CloseHandle(pipe);
    return err;
  }
  l->made_first = true;
  *out = pipe;
  return 0;
}

/*
 * Starts waiting for a client on `in`. ERROR_PIPE_CONNECTED (a client came
 * before the call) is a success without a packet: it is posted.
 * ERROR_NO_DATA (a client came and went before the call) is no connection
 * at all: the instance is disconnected and waits again.
 */
static int instance_listen(instance *in) {
  int i;
  for (i = 0; i < NO_DATA_RETRIES; i++) {
    DWORD e;
    memset(&in->op.overlapped, 0, sizeof in->op.overlapped);
    if (ConnectNamedPipe(in->pipe, &in->op.overlapped))
      return 0; /* done at once: the port has the packet */
    e = GetLastError();
    if (e == ERROR_IO_PENDING)
      return 0;
    if (e == ERROR_PIPE_CONNECTED) {
      in->op.result = 0;
      proa__backend_post(in->l->be, &in->op);
      return 0;
    }
    if (e != ERROR_NO_DATA)
      return proa__translate_win32(e);
    DisconnectNamedPipe(in->pipe);
  }
  return PROA_EAGAIN; /* clients keep coming and going: try later */
}

/* Opens an instance in the free slot `in` and waits there for a client. */
static int instance_start(listener *l, instance *in) {
  int err = instance_open(l, &in->pipe);
  if (err)
    return err;
  err = instance_listen(in);
  if (err) {
    CloseHandle(in->pipe);
    in->pipe = INVALID_HANDLE_VALUE;
    return err;
  }
  in->busy = true;
  l->listening++;
  flight(l, 1);
  return 0;
}

/* Fills the backlog up again; the first error, if any. */
static int refill(listener *l) {
  int i, err = 0;
  for (i = 0; i < l->ninstances && !err; i++) {
    if (l->listening + l->nready >= l->ninstances)
      break;
    if (!l->instances[i].busy)
      err = instance_start(l, &l->instances[i]);
  }
  return err;
}

/* Ends an accept: the listener may go with it, then the caller is told
 * (who may close the listener: nothing is touched after). */
static void accept_end(accept_rec *r, intptr_t result) {
  listener *l = r->l;
  proa__accept_op *user = r->user;
  r->user = NULL;
  r->posted = false;
  flight(l, -1);
  maybe_free(l);
  user->op.result = result;
  user->op.complete(&user->op);
}

static void accept_posted(proa__op *op) {
  accept_rec *r = (accept_rec *)(void *)op;
  accept_end(r, op->result);
}

/* Ends `r` from a later poll: the caller is never told inside its call. */
static void accept_post(accept_rec *r, intptr_t result) {
  r->posted = true;
  r->op.result = result;
  proa__backend_post(r->l->be, &r->op);
}

/* Makes a connected instance the accept's handle; 0 or the error. */
static int accept_take(listener *l, accept_rec *r, HANDLE pipe) {
  int err = proa__iocp_pipe_wrap(l->be, pipe, true, &r->user->accepted);
  if (err)
    CloseHandle(pipe);
  return err;
}

/* The oldest accept waiting for a client, or NULL. */
static accept_rec *waiting_accept(listener *l) {
  int i;
  for (i = 0; i < ACCEPT_MAX; i++)
    if (l->accepts[i].user != NULL && !l->accepts[i].posted)
      return &l->accepts[i];
  return NULL;
}

/* A client connected: to a waiting accept, else into the backlog. */
static void hand_over(listener *l, HANDLE pipe) {
  accept_rec *r = waiting_accept(l);
  if (r != NULL)
    accept_end(r, accept_take(l, r, pipe));
  else
    l->ready[l->nready++] = pipe;
}

/* An instance's ConnectNamedPipe ended. Its flight ends last, so the
 * listener outlives whatever the accept's completion does. */
static void on_connected(proa__op *op) {
  instance *in = (instance *)(void *)op;
  listener *l = in->l;
  HANDLE pipe = in->pipe;
  accept_rec *r;
  in->pipe = INVALID_HANDLE_VALUE;
  in->busy = false;
  l->listening--;
  if (!l->closed && op->result == 0) {
    hand_over(l, pipe);
  } else if (!l->closed) {
    /* Gone already (EPIPE: ERROR_NO_DATA) or failed: no connection. A
     * failure is told to an accept, and the server backs off. */
    CloseHandle(pipe);
    r = op->result == PROA_EPIPE ? NULL : waiting_accept(l);
    if (r != NULL)
      accept_post(r, op->result);
  }
  if (!l->closed)
    refill(l); /* a failure here waits for the next accept */
  flight(l, -1);
  maybe_free(l);
}

static void listener_accept(proa__ioh *h, proa__accept_op *aop) {
  listener *l = of_ioh(h);
  accept_rec *r = NULL;
  int i, err;
  aop->accepted = NULL;
  for (i = 0; i < ACCEPT_MAX && r == NULL; i++)
    if (l->accepts[i].user == NULL)
      r = &l->accepts[i];
  PROA_ASSERT(r != NULL, "at most accept_max accepts in flight");
  if (r == NULL) {
    aop->op.result = PROA_EBUSY;
    proa__iocp_post_counted(l->be, &aop->op);
    return;
  }
  r->user = aop;
  flight(l, 1);
  if (l->nready > 0) {
    HANDLE pipe = l->ready[0];
    memmove(l->ready, l->ready + 1, (size_t)--l->nready * sizeof *l->ready);
    accept_post(r, accept_take(l, r, pipe));
    refill(l); /* room in the backlog again */
    return;
  }
  err = refill(l);
  if (err && l->listening == 0)
    accept_post(r, err); /* nothing to wait on: the server backs off */
}

/* Only an accept waiting for a client can be ended early. */
static void listener_cancel(proa__ioh *h, proa__op *op) {
  listener *l = of_ioh(h);
  int i;
  for (i = 0; i < ACCEPT_MAX; i++) {
    accept_rec *r = &l->accepts[i];
    if (r->user != NULL && &r->user->op == op && !r->posted)
      accept_post(r, PROA_ECANCELED);
  }
}

/*
 * Closes every instance at once, so that clients are refused from now on;
 * the ConnectNamedPipe calls in flight are cancelled and still complete,
 * and the last completion frees the listener. Connected instances that no
 * accept took are closed: their clients read the end of the stream.
 */
static void listener_close(proa__ioh *h) {
  listener *l = of_ioh(h);
  int i;
  PROA_ASSERT(waiting_accept(l) == NULL,
              "a handle is closed only once its ops completed or were "
              "cancelled");
  l->closed = true;
  for (i = 0; i < l->ninstances; i++) {
    instance *in = &l->instances[i];
    if (in->pipe == INVALID_HANDLE_VALUE)
      continue;
    CancelIoEx(in->pipe, &in->op.overlapped);
    CloseHandle(in->pipe);
    in->pipe = INVALID_HANDLE_VALUE;
  }
  for (i = 0; i < l->nready; i++)
    CloseHandle(l->ready[i]);
  l->nready = 0;
  for (i = 0; i < ACCEPT_MAX; i++) /* release builds: never orphaned */
    if (l->accepts[i].user != NULL && !l->accepts[i].posted)
      accept_post(&l->accepts[i], PROA_ECANCELED);
  maybe_free(l);
}

static int listener_security(listener *l, void *sd) {
  int err = 0;
  l->sa.nLength = sizeof l->sa;
  l->sa.bInheritHandle = FALSE;
  if (sd == NULL)
    err = default_sd(&l->own_sd);
  l->sa.lpSecurityDescriptor = sd != NULL ? sd : l->own_sd;
  return err;
}

static int listener_init(listener *l, const char *name,
                         const proa__pipe_listen_opts *o) {
  int n = o != NULL && o->instances > 0 ? o->instances : DEFAULT_INSTANCES;
  int i, err = pipe_name(name, &l->name);
  if (!err)
    err = listener_security(l, o != NULL ? o->security_descriptor : NULL);
  if (err)
    return err;
  l->instances = (instance *)calloc((size_t)n, sizeof *l->instances);
  l->ready = (HANDLE *)calloc((size_t)n, sizeof *l->ready);
  if (l->instances == NULL || l->ready == NULL)
    return PROA_ENOMEM;
  l->ninstances = n;
  for (i = 0; i < l->ninstances; i++) {
    l->instances[i].op.complete = on_connected;
    l->instances[i].l = l;
    l->instances[i].pipe = INVALID_HANDLE_VALUE;
  }
  for (i = 0; i < ACCEPT_MAX; i++) {
    l->accepts[i].op.complete = accept_posted;
    l->accepts[i].l = l;
  }
  return refill(l);
}

int proa__iocp_pipe_listen(proa__backend *be, const char *name,
                           const proa__pipe_listen_opts *o, proa__ioh **out) {
  listener *l = (listener *)calloc(1, sizeof *l);
  int err;
  if (l == NULL)
    return PROA_ENOMEM;
  l->h.ops = &listener_ops;
  l->h.os = -1; /* many OS handles, none of them the listener */
  l->h.kind = PROA__IOH_PIPE;
  l->be = be;
  proa__handles_count(1);
  err = listener_init(l, name, o);
  if (err) {
    listener_close(&l->h); /* instances already waiting drain as usual */
    return err;
  }
  *out = &l->h;
  return 0;
}

/* A listener accepts, is cancelled and closes; it neither reads nor
 * writes, and has nothing of the caller's to give back on detach. */
static const proa__backend_ops listener_ops = {
    .name = "iocp named pipe listener",
    .close = listener_close,
    .detach = listener_close,
    .cancel = listener_cancel,
    .accept = listener_accept,
    .accept_max = ACCEPT_MAX,
};

/* ---- clients ---- */

/*
 * Opens the client end, overlapped, in message read mode when the server
 * made a message-type pipe (see instance_open). The server may act
 * as the client only to identify it (SECURITY_IDENTIFICATION), never to
 * impersonate it. ERROR_PIPE_BUSY (every instance busy) gives PROA_EBUSY,
 * ERROR_FILE_NOT_FOUND PROA_ENOENT, ERROR_ACCESS_DENIED PROA_EACCES.
 */
int proa__iocp_pipe_connect(proa__backend *be, const char *name,
                            proa__ioh **out) {
  DWORD mode = PIPE_READMODE_MESSAGE, type = 0;
  HANDLE pipe;
  wchar_t *w = NULL;
  int err = pipe_name(name, &w);
  if (err)
    return err;
  pipe = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                     FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                         SECURITY_IDENTIFICATION,
                     NULL);
  free(w);
  if (pipe == INVALID_HANDLE_VALUE)
    return proa__translate_win32(GetLastError());
  /* A byte-type server (libuv's, say) stays in byte mode: message read
   * mode would be refused, and write_eof then reports PROA_ENOTSUP. */
  if (GetNamedPipeInfo(pipe, &type, NULL, NULL, NULL) &&
      (type & PIPE_TYPE_MESSAGE) != 0 &&
      !SetNamedPipeHandleState(pipe, &mode, NULL, NULL))
    err = proa__translate_win32(GetLastError());
  if (!err)
    err = proa__iocp_pipe_wrap(be, pipe, false, out);
  if (err)
    CloseHandle(pipe);
  return err;
}

/* ---- who is at the other end ---- */

int proa__iocp_peer_pid(proa__ioh *h, int64_t *pid) {
  HANDLE pipe = (HANDLE)h->os;
  DWORD flags = 0;
  ULONG id = 0;
  BOOL ok;
  if (h->kind != PROA__IOH_PIPE ||
      !GetNamedPipeInfo(pipe, &flags, NULL, NULL, NULL))
    return PROA_ENOTSUP; /* not a named pipe */
  ok = (flags & PIPE_SERVER_END) != 0 ? GetNamedPipeClientProcessId(pipe, &id)
                                      : GetNamedPipeServerProcessId(pipe, &id);
  if (!ok)
    return proa__translate_win32(GetLastError());
  *pid = (int64_t)id;
  return 0;
}
