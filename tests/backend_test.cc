// The backend contract itself (src/common/backend.h), driven directly on
// every backend: handles of each kind, reads that complete with data in
// each buffer mode, the one-op-per-direction rule, cancel, the count of
// ops in flight, the run-time table, and closing a loop that has work in
// flight without leaking a handle.
#include "proa_test.h"

extern "C" {
#include "internal.h"
}

#include <string>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#include <unistd.h>
#endif

using namespace proa_test;

namespace {

// An op that records its completion.
struct Done {
  proa__read_op rop; // first: also used as a plain op or a write op
  proa__write_op wop;
  int calls = 0;
  intptr_t result = 0;
  std::string data;
  int allocs = 0;
  char buf[256];
};

Done *DoneOfRead(proa__op *op) {
  return reinterpret_cast<Done *>(reinterpret_cast<char *>(op) -
                                  offsetof(Done, rop.op));
}

void OnRead(proa__op *op) {
  Done *d = DoneOfRead(op);
  d->calls++;
  d->result = op->result;
  if (op->result > 0)
    d->data.assign(static_cast<const char *>(d->rop.data),
                   static_cast<size_t>(op->result));
}

void OnWrite(proa__op *op) {
  Done *d = reinterpret_cast<Done *>(reinterpret_cast<char *>(op) -
                                     offsetof(Done, wop.op));
  d->calls++;
  d->result = op->result;
}

void *AllocFromDone(proa__read_op *op, size_t *len) {
  Done *d = DoneOfRead(&op->op);
  d->allocs++;
  *len = sizeof d->buf;
  return d->buf;
}

void *AllocNothing(proa__read_op *, size_t *len) {
  *len = 0;
  return nullptr;
}

// Two connected OS handles: [0] reads, [1] writes (a pipe), or both ends
// of a stream socket pair.
struct OsPair {
  intptr_t h[2] = {-1, -1};
  bool socket = false;
  void CloseOne(int i) {
    if (h[i] == -1)
      return;
#ifdef _WIN32
    if (socket)
      closesocket(static_cast<SOCKET>(h[i]));
    else
      CloseHandle(reinterpret_cast<HANDLE>(h[i]));
#else
    close(static_cast<int>(h[i]));
#endif
    h[i] = -1;
  }
};

#ifdef _WIN32
// An overlapped named pipe, server end reading: CreatePipe cannot do
// overlapped I/O.
bool MakePipe(OsPair *p) {
  static int serial;
  wchar_t name[128];
  swprintf(name, 128, L"\\\\.\\pipe\\proa-backend-test-%lu-%d",
           GetCurrentProcessId(), ++serial);
  HANDLE server =
      CreateNamedPipeW(name,
                       PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED |
                           FILE_FLAG_FIRST_PIPE_INSTANCE,
                       PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1,
                       65536, 65536, 0, nullptr);
  if (server == INVALID_HANDLE_VALUE)
    return false;
  HANDLE client = CreateFileW(name, GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                              FILE_FLAG_OVERLAPPED, nullptr);
  if (client == INVALID_HANDLE_VALUE) {
    CloseHandle(server);
    return false;
  }
  OVERLAPPED ov = {};
  ov.hEvent = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  BOOL ok = ConnectNamedPipe(server, &ov);
  DWORD err = ok ? 0 : GetLastError();
  if (err == ERROR_IO_PENDING) {
    DWORD n;
    ok = GetOverlappedResult(server, &ov, &n, TRUE);
    err = ok ? 0 : GetLastError();
  }
  CloseHandle(ov.hEvent);
  if (err != 0 && err != ERROR_PIPE_CONNECTED) {
    CloseHandle(server);
    CloseHandle(client);
    return false;
  }
  p->h[0] = reinterpret_cast<intptr_t>(server);
  p->h[1] = reinterpret_cast<intptr_t>(client);
  return true;
}

// A loopback TCP pair made with blocking calls (the loop has started
// Winsock already).
bool MakeSocketPair(OsPair *p) {
  SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof a;
  if (l == INVALID_SOCKET ||
      bind(l, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      listen(l, 1) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr *>(&a), &len) != 0)
    return false;
  SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
    return false;
  SOCKET s = accept(l, nullptr, nullptr);
  closesocket(l);
  p->socket = true;
  p->h[0] = static_cast<intptr_t>(s);
  p->h[1] = static_cast<intptr_t>(c);
  return s != INVALID_SOCKET;
}
#else
bool MakePipe(OsPair *p) {
  int fds[2];
  if (pipe(fds) != 0)
    return false;
  p->h[0] = fds[0];
  p->h[1] = fds[1];
  return true;
}

bool MakeSocketPair(OsPair *p) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
    return false;
  p->socket = true;
  p->h[0] = fds[0];
  p->h[1] = fds[1];
  return true;
}
#endif

class Backend : public LoopTest {
protected:
  void TearDown() override {
    for (proa__ioh *h : handles_)
      proa__ioh_close(h);
    handles_.clear();
    LoopTest::TearDown();
  }
  const proa__backend_ops *ops() { return loop->be_ops; }
  size_t Inflight() { return ops()->inflight(loop->backend); }
  // Adopts both ends; the handles are closed at the end of the test.
  void Adopt(OsPair *p, proa__ioh **r, proa__ioh **w) {
    ASSERT_EQ(0, proa__ioh_adopt(loop, p->h[0], r));
    ASSERT_EQ(0, proa__ioh_adopt(loop, p->h[1], w));
    handles_.push_back(*r);
    handles_.push_back(*w);
  }
  void Forget(proa__ioh *h) {
    handles_.erase(std::find(handles_.begin(), handles_.end(), h));
  }
  // Polls until `d` completed, at most a few seconds.
  void WaitFor(const Done &d, int calls = 1) {
    for (int i = 0; i < 500 && d.calls < calls; i++)
      ASSERT_EQ(0, ops()->poll(loop->backend, 10));
    ASSERT_EQ(calls, d.calls) << "the op never completed";
  }
  void Write(proa__ioh *w, Done *d, const char *a, const char *b) {
    static proa_buf bufs[2];
    bufs[0] = {a, strlen(a)};
    bufs[1] = {b, strlen(b)};
    d->wop.op.complete = OnWrite;
    d->wop.bufs = bufs;
    d->wop.count = 2;
    proa__ioh_write(w, &d->wop);
  }
  // Writes a and b whole, submitting what a write left (a write may take
  // fewer bytes than offered: a Windows pipe takes one buffer a time).
  void WriteAll(proa__ioh *w, const char *a, const char *b) {
    std::string rest = std::string(a) + b;
    Done wr;
    Write(w, &wr, a, b);
    for (int calls = 1;; calls++) {
      WaitFor(wr, calls);
      ASSERT_GT(wr.result, 0);
      rest.erase(0, static_cast<size_t>(wr.result));
      if (rest.empty())
        return;
      Write(w, &wr, rest.c_str(), "");
    }
  }
  void StartRead(proa__ioh *r, Done *d,
                 void *(*alloc)(proa__read_op *, size_t *) = nullptr,
                 bool own_buffer = false) {
    d->rop.op.complete = OnRead;
    d->rop.alloc = alloc;
    d->rop.buf = own_buffer ? d->buf : nullptr;
    d->rop.len = own_buffer ? sizeof d->buf : 0;
    proa__ioh_read(r, &d->rop);
  }
  // Break the rules (in a death test's child).
  void TwoReads() {
    OsPair p;
    MakeSocketPair(&p);
    proa__ioh *r = nullptr;
    proa__ioh_adopt(loop, p.h[0], &r);
    Done a, b;
    StartRead(r, &a);
    StartRead(r, &b);
  }
  void CloseWhileReading() {
    OsPair p;
    MakeSocketPair(&p);
    proa__ioh *r = nullptr;
    proa__ioh_adopt(loop, p.h[0], &r);
    Done a;
    StartRead(r, &a);
    proa__ioh_close(r);
  }
  std::vector<proa__ioh *> handles_;
};

TEST_F(Backend, TheLoopRunsOnANamedTableThatListsItself) {
  bool found = false;
  for (size_t i = 0; proa__backends[i]; i++)
    found = found || ops() == proa__backends[i];
  EXPECT_TRUE(found);
  EXPECT_STREQ(ops()->name, proa_loop_backend(loop));
  EXPECT_EQ(0u, Inflight());
}

int FailInit(proa_loop *, proa__backend **) { return PROA_ENOTSUP; }

TEST_F(Backend, ATableThatCannotStartFallsBack) {
  proa__backend_ops failing = {};
  failing.name = "never";
  failing.init = FailInit;
  failing.fallback = ops();
  const proa__backend_ops *used = nullptr;
  proa__backend *be = nullptr;
  ASSERT_EQ(0, proa__backend_start(loop, &failing, &used, &be));
  EXPECT_EQ(ops(), used);
  used->free(be);
  failing.fallback = nullptr;
  EXPECT_EQ(PROA_ENOTSUP, proa__backend_start(loop, &failing, &used, &be));
}

TEST_F(Backend, AdoptTellsSocketsFromPipes) {
  OsPair p, s;
  ASSERT_TRUE(MakePipe(&p));
  ASSERT_TRUE(MakeSocketPair(&s));
  proa__ioh *pr, *pw, *sr, *sw;
  Adopt(&p, &pr, &pw);
  Adopt(&s, &sr, &sw);
  EXPECT_EQ(PROA__IOH_PIPE, pr->kind);
  EXPECT_EQ(PROA__IOH_PIPE, pw->kind);
  EXPECT_EQ(PROA__IOH_SOCKET, sr->kind);
  EXPECT_EQ(p.h[0], proa__ioh_os(pr));
}

// A read into the backend's memory, the caller's, or what alloc gives; on
// a pipe and on a socket; the write is vectored.
TEST_F(Backend, ReadsCompleteWithTheBytesInEachBufferMode) {
  for (int kind = 0; kind < 2; kind++) {
    OsPair p;
    ASSERT_TRUE(kind == 0 ? MakePipe(&p) : MakeSocketPair(&p));
    proa__ioh *r, *w;
    Adopt(&p, &r, &w);
    for (int mode = 0; mode < 3; mode++) {
      SCOPED_TRACE("kind " + std::to_string(kind) + " mode " +
                   std::to_string(mode));
      Done rd, wr;
      StartRead(r, &rd, mode == 2 ? AllocFromDone : nullptr, mode == 1);
      EXPECT_EQ(0, rd.calls) << "a completion ran inside the submission";
      Write(w, &wr, "hello, ", "backend");
      EXPECT_EQ(0, wr.calls) << "a completion ran inside the submission";
      WaitFor(wr);
      ASSERT_GE(wr.result, 7) << "not even the first buffer went";
      if (wr.result < 14)
        WriteAll(w, "backend" + (wr.result - 7), "");
      std::string got;
      for (int calls = 1; got.size() < 14; calls++) {
        WaitFor(rd, calls);
        ASSERT_GT(rd.result, 0);
        got += rd.data;
        if (mode == 1) {
          EXPECT_EQ(rd.buf, rd.rop.data);
        }
        if (mode == 2) {
          EXPECT_EQ(calls, rd.allocs);
          EXPECT_EQ(rd.buf, rd.rop.data);
        }
        if (got.size() < 14)
          StartRead(r, &rd, mode == 2 ? AllocFromDone : nullptr, mode == 1);
      }
      EXPECT_EQ("hello, backend", got);
      EXPECT_EQ(0u, Inflight());
    }
  }
}

TEST_F(Backend, ASocketReadAsksForItsBufferOnlyOnceDataIsThere) {
  OsPair p;
  ASSERT_TRUE(MakeSocketPair(&p));
  proa__ioh *r, *w;
  Adopt(&p, &r, &w);
  Done rd, wr;
  StartRead(r, &rd, AllocFromDone);
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(0, ops()->poll(loop->backend, 0));
  EXPECT_EQ(0, rd.allocs) << "an idle socket pinned a buffer";
  Write(w, &wr, "x", "y");
  WaitFor(rd);
  EXPECT_EQ(1, rd.allocs);
  EXPECT_EQ("xy", rd.data);
}

TEST_F(Backend, AnAllocThatGivesNothingFailsTheReadWithEnobufs) {
  OsPair p;
  ASSERT_TRUE(MakeSocketPair(&p));
  proa__ioh *r, *w;
  Adopt(&p, &r, &w);
  Done rd, wr;
  StartRead(r, &rd, AllocNothing);
  Write(w, &wr, "a", "b");
  WaitFor(rd);
  EXPECT_EQ(PROA_ENOBUFS, rd.result);
}

TEST_F(Backend, EndOfStreamIsAReadOfZero) {
  for (int kind = 0; kind < 2; kind++) {
    OsPair p;
    ASSERT_TRUE(kind == 0 ? MakePipe(&p) : MakeSocketPair(&p));
    proa__ioh *r, *w;
    Adopt(&p, &r, &w);
    Forget(w);
    proa__ioh_close(w);
    Done rd;
    StartRead(r, &rd);
    WaitFor(rd);
    EXPECT_EQ(0, rd.result) << "kind " << kind;
  }
}

TEST_F(Backend, CancelEndsInACompletionAndLosesNoData) {
  for (int kind = 0; kind < 2; kind++) {
    OsPair p;
    ASSERT_TRUE(kind == 0 ? MakePipe(&p) : MakeSocketPair(&p));
    proa__ioh *r, *w;
    Adopt(&p, &r, &w);
    Done rd, again;
    StartRead(r, &rd, nullptr, true);
    EXPECT_EQ(1u, Inflight());
    proa__ioh_cancel(r, &rd.rop.op);
    EXPECT_EQ(0, rd.calls) << "cancel completed inside the call";
    WaitFor(rd);
    EXPECT_EQ(PROA_ECANCELED, rd.result) << "kind " << kind;
    proa__ioh_cancel(r, &rd.rop.op); // not in flight: nothing happens
    WriteAll(w, "after ", "cancel");
    std::string got;
    for (int calls = 1; got.size() < 12; calls++) {
      StartRead(r, &again);
      WaitFor(again, calls);
      ASSERT_GT(again.result, 0);
      got += again.data;
    }
    EXPECT_EQ("after cancel", got) << "kind " << kind;
    EXPECT_EQ(1, rd.calls) << "a second cancel completed again";
    EXPECT_EQ(0u, Inflight());
  }
}

// Closing at once after a cancel is allowed (a server refuses connections
// the moment it closes); the cancelled op still completes, after the close.
TEST_F(Backend, AHandleClosedAfterACancelStillCompletesTheOp) {
  for (int kind = 0; kind < 2; kind++) {
    OsPair p;
    ASSERT_TRUE(kind == 0 ? MakePipe(&p) : MakeSocketPair(&p));
    proa__ioh *r, *w;
    Adopt(&p, &r, &w);
    long alive = proa__handles_alive();
    Done rd;
    StartRead(r, &rd, nullptr, true);
    proa__ioh_cancel(r, &rd.rop.op);
    Forget(r);
    proa__ioh_close(r);
    EXPECT_EQ(0, rd.calls);
    WaitFor(rd);
    EXPECT_EQ(PROA_ECANCELED, rd.result) << "kind " << kind;
    EXPECT_EQ(0u, Inflight());
    EXPECT_EQ(alive - 1, proa__handles_alive()) << "the state was not freed";
  }
}

TEST_F(Backend, WaitsComplete) {
  OsPair p;
  ASSERT_TRUE(MakeSocketPair(&p));
  proa__ioh *r, *w;
  Adopt(&p, &r, &w);
  Done writable, readable, wr;
  writable.rop.op.complete = OnRead;
  readable.rop.op.complete = OnRead;
  proa__ioh_wait_writable(w, &writable.rop.op);
  WaitFor(writable);
  EXPECT_EQ(0, writable.result);
  proa__ioh_wait_readable(r, &readable.rop.op);
  Write(w, &wr, "r", "");
  WaitFor(readable);
  EXPECT_EQ(0, readable.result);
}

#if !defined(_WIN32) && !defined(NDEBUG)
extern "C" int proa__fault_send_errno; // src/unix/handle.c, debug builds

// A full buffer reported as ENOBUFS (Linux, BSD) is retried like EAGAIN,
// not taken for a broken connection; macOS's EPROTOTYPE from a send to a
// socket being torn down is a reset.
TEST_F(Backend, EnobufsFromASendIsWouldBlock) {
  OsPair p;
  ASSERT_TRUE(MakeSocketPair(&p));
  proa__ioh *r, *w;
  Adopt(&p, &r, &w);
  proa_buf one = {"x", 1}, two[2] = {{"a", 1}, {"b", 1}};
  proa__fault_send_errno = ENOBUFS;
  EXPECT_EQ(PROA_EAGAIN, proa__ioh_try_write(w, &one, 1));
  proa__fault_send_errno = ENOBUFS;
  EXPECT_EQ(PROA_EAGAIN, proa__ioh_try_write(w, two, 2));
  EXPECT_EQ(1, proa__ioh_try_write(w, &one, 1)) << "the fault lasted";
  proa__fault_send_errno = EPROTOTYPE;
#ifdef __APPLE__
  EXPECT_EQ(PROA_ECONNRESET, proa__ioh_try_write(w, &one, 1));
#else
  EXPECT_EQ(PROA_EPROTOTYPE, proa__ioh_try_write(w, &one, 1));
#endif
}
#endif

#if GTEST_HAS_DEATH_TEST && !defined(NDEBUG) && !defined(_WIN32)
// Debug builds check the contract's rules: breaking one fails loudly
// instead of losing a completion. (Windows death tests start the whole
// program again, which Wine makes too slow to be worth it; the same checks
// run there and fail any test that breaks them.)
TEST_F(Backend, ASecondReadOnOneHandleBreaksTheContract) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(TwoReads(), "one operation per direction per handle");
}

TEST_F(Backend, ClosingAHandleWithAReadInFlightBreaksTheContract) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(CloseWhileReading(),
               "closed only once its ops completed or were cancelled");
}
#endif

// ---- closing the loop with work in flight ----

#ifdef _WIN32
// ---- named pipes (Windows): pipe_listen, accept, pipe_connect ----

// A pipe name of this process that no other test uses.
std::string PipeName() {
  static int serial;
  return "proa-backend-pipe-" + std::to_string(GetCurrentProcessId()) + "-" +
         std::to_string(++serial);
}

struct Accept {
  proa__accept_op aop; // first
  int calls = 0;
  intptr_t result = 1;
};

void OnAccept(proa__op *op) {
  Accept *a = reinterpret_cast<Accept *>(op);
  a->calls++;
  a->result = op->result;
}

class NamedPipe : public Backend {
protected:
  // A listener on a fresh name, closed at the end of the test.
  proa__ioh *Listen(int instances = 0) {
    proa__pipe_listen_opts o = {instances, nullptr};
    proa__ioh *l = nullptr;
    name_ = PipeName();
    EXPECT_EQ(0, ops()->pipe_listen(loop->backend, name_.c_str(), &o, &l));
    if (l != nullptr)
      listeners_.push_back(l);
    return l;
  }
  void StartAccept(proa__ioh *l, Accept *a) {
    a->aop.op.complete = OnAccept;
    proa__socket_accept(l, &a->aop);
  }
  // Polls until `a` completed.
  void WaitFor(const Accept &a) {
    for (int i = 0; i < 500 && a.calls == 0; i++)
      ASSERT_EQ(0, ops()->poll(loop->backend, 10));
    ASSERT_EQ(1, a.calls) << "the accept never completed";
  }
  using Backend::WaitFor;
  int Connect(proa__ioh **out) {
    int err = ops()->pipe_connect(loop->backend, name_.c_str(), out);
    if (err == 0)
      handles_.push_back(*out);
    return err;
  }
  // A connected pair: the server's end (accepted) and the client's.
  void Pair(proa__ioh *l, proa__ioh **server, proa__ioh **client) {
    Accept a;
    StartAccept(l, &a);
    ASSERT_EQ(0, Connect(client));
    WaitFor(a);
    ASSERT_EQ(0, a.result) << proa_err_name(static_cast<int>(a.result));
    ASSERT_NE(nullptr, a.aop.accepted);
    EXPECT_EQ(PROA__IOH_PIPE, a.aop.accepted->kind);
    *server = a.aop.accepted;
    handles_.push_back(*server);
  }
  // A connected pair on a listener of its own.
  void Connected(proa__ioh **server, proa__ioh **client) {
    proa__ioh *l = Listen();
    ASSERT_NE(nullptr, l);
    Pair(l, server, client);
  }
  // Reads `n` bytes: a read takes one message (one write) at most.
  std::string ReadAll(proa__ioh *h, size_t n) {
    std::string got;
    while (got.size() < n) {
      Done d;
      StartRead(h, &d);
      WaitFor(d);
      EXPECT_GT(d.result, 0) << proa_err_name(static_cast<int>(d.result));
      if (d.result <= 0)
        break;
      got += d.data;
    }
    return got;
  }
  void TearDown() override {
    for (proa__ioh *l : listeners_)
      proa__ioh_close(l);
    listeners_.clear();
    Backend::TearDown();
  }
  std::string name_;
  std::vector<proa__ioh *> listeners_;
};

TEST_F(NamedPipe, AcceptConnectReadAndWrite) {
  proa__ioh *server = nullptr, *client = nullptr;
  Connected(&server, &client);
  WriteAll(client, "ping ", "from the client");
  EXPECT_EQ("ping from the client", ReadAll(server, 20));
  WriteAll(server, "pong", "");
  EXPECT_EQ("pong", ReadAll(client, 4));
}

TEST_F(NamedPipe, AWriteLongerThanTheReadBufferIsReadInParts) {
  // A write is one message; a read into a smaller buffer takes part of it
  // (ERROR_MORE_DATA) and the next read the rest.
  proa__ioh *server = nullptr, *client = nullptr;
  Connected(&server, &client);
  std::string big(sizeof(Done::buf) + 44, 'x');
  big[sizeof(Done::buf)] = 'y';
  WriteAll(client, big.c_str(), "");
  Done first, rest;
  StartRead(server, &first, nullptr, true);
  WaitFor(first);
  ASSERT_EQ(static_cast<intptr_t>(sizeof first.buf), first.result);
  StartRead(server, &rest, nullptr, true);
  WaitFor(rest);
  ASSERT_EQ(44, rest.result);
  EXPECT_EQ(big, first.data + rest.data);
}

TEST_F(NamedPipe, ShutdownWriteIsAReadOfZeroAfterTheDataAndTheOtherWayGoesOn) {
  proa__ioh *server = nullptr, *client = nullptr;
  Connected(&server, &client);
  WriteAll(client, "last words", "");
  ASSERT_EQ(0, proa__ioh_shutdown_write(client));
  ASSERT_EQ("last words", ReadAll(server, 10));
  Done eof;
  StartRead(server, &eof);
  WaitFor(eof);
  EXPECT_EQ(0, eof.result) << "the end of the stream is a read of 0";
  WriteAll(server, "still ", "heard");
  EXPECT_EQ("still heard", ReadAll(client, 11));
}

TEST_F(NamedPipe, PeerPidIsThisProcessOnBothEnds) {
  proa__ioh *server = nullptr, *client = nullptr;
  Connected(&server, &client);
  int64_t pid = -1;
  ASSERT_EQ(0, proa__ioh_peer_pid(server, &pid));
  EXPECT_EQ(static_cast<int64_t>(GetCurrentProcessId()), pid);
  pid = -1;
  ASSERT_EQ(0, proa__ioh_peer_pid(client, &pid));
  EXPECT_EQ(static_cast<int64_t>(GetCurrentProcessId()), pid);
}

TEST_F(NamedPipe, ClientsConnectBeforeAnyAcceptUpToTheInstances) {
  // The instances wait for clients while nobody accepts (a backlog); one
  // more client finds them all busy.
  proa__ioh *l = Listen(2), *c = nullptr;
  ASSERT_NE(nullptr, l);
  ASSERT_EQ(0, Connect(&c));
  ASSERT_EQ(0, ops()->poll(loop->backend, 10));
  ASSERT_EQ(0, Connect(&c));
  ASSERT_EQ(0, ops()->poll(loop->backend, 10));
  EXPECT_EQ(PROA_EBUSY, Connect(&c));
  Accept a; // takes the oldest, and an instance waits again
  StartAccept(l, &a);
  WaitFor(a);
  ASSERT_EQ(0, a.result);
  handles_.push_back(a.aop.accepted);
  EXPECT_EQ(0, Connect(&c));
}

TEST_F(NamedPipe, ConnectWithNoServerIsEnoent) {
  name_ = PipeName();
  proa__ioh *c = nullptr;
  EXPECT_EQ(PROA_ENOENT, Connect(&c));
}

TEST_F(NamedPipe, NamesAreCheckedAndNeverTruncated) {
  proa__ioh *h = nullptr;
  proa__pipe_listen_opts o = {1, nullptr};
  std::string fits(256 - 9, 'n'); // \\.\pipe\ and 247 characters: 256
  EXPECT_EQ(PROA_EINVAL, ops()->pipe_listen(loop->backend, nullptr, &o, &h));
  EXPECT_EQ(PROA_EINVAL, ops()->pipe_listen(loop->backend, "", &o, &h));
  EXPECT_EQ(PROA_EINVAL, ops()->pipe_listen(loop->backend, "a\\b", &o, &h));
  EXPECT_EQ(PROA_EINVAL,
            ops()->pipe_listen(loop->backend, "\\\\.\\pipe\\", &o, &h));
  EXPECT_EQ(PROA_EINVAL, ops()->pipe_listen(loop->backend, "\xff", &o, &h));
  EXPECT_EQ(PROA_ENAMETOOLONG,
            ops()->pipe_listen(loop->backend, (fits + "n").c_str(), &o, &h));
  EXPECT_EQ(PROA_ENAMETOOLONG,
            ops()->pipe_connect(loop->backend, (fits + "n").c_str(), &h));
  EXPECT_EQ(PROA_EINVAL, ops()->pipe_connect(loop->backend, "a\\b", &h));
  // A name given whole, and the longest one, are taken as they are.
  std::string unique = PipeName();
  fits.replace(0, unique.size(), unique);
  ASSERT_EQ(0, ops()->pipe_listen(loop->backend, fits.c_str(), &o, &h));
  listeners_.push_back(h);
  name_ = "\\\\.\\pipe\\" + fits;
  EXPECT_EQ(0, Connect(&h));
}

TEST_F(NamedPipe, ClosingWithAcceptsWaitingDrainsAndFreesEverything) {
  long alive = proa__handles_alive();
  proa__ioh *l = Listen(3);
  ASSERT_NE(nullptr, l);
  proa__ioh *c = nullptr;
  ASSERT_EQ(0, Connect(&c)); // a connected instance nobody accepted
  Accept a[2];
  StartAccept(l, &a[0]);
  WaitFor(a[0]);
  handles_.push_back(a[0].aop.accepted);
  StartAccept(l, &a[1]);
  EXPECT_GT(Inflight(), 0u);
  proa__ioh_cancel(l, &a[1].aop.op);
  listeners_.clear();
  proa__ioh_close(l);
  WaitFor(a[1]);
  EXPECT_EQ(PROA_ECANCELED, a[1].result);
  for (int i = 0; i < 500 && Inflight() > 0; i++)
    ASSERT_EQ(0, ops()->poll(loop->backend, 10));
  EXPECT_EQ(0u, Inflight()) << "the cancelled ConnectNamedPipe calls ended";
  EXPECT_EQ(alive + 2, proa__handles_alive()) << "the listener was freed";
  // The pipe lives on in the connection the listener handed out, with no
  // instance waiting; once that is gone, so is the name.
  proa__ioh *late = nullptr;
  EXPECT_EQ(PROA_EBUSY, Connect(&late));
  proa__ioh_close(a[0].aop.accepted);
  Forget(a[0].aop.accepted);
  EXPECT_EQ(PROA_ENOENT, Connect(&late));
}
#endif // _WIN32

int QuietFactory(void *, const proa_protocol **proto, void **self) {
  static const proa_protocol p = {};
  *proto = &p;
  *self = nullptr;
  return 0;
}

TEST(BackendClose, IdleConnectionsAndAListenerLeaveNoHandleBehind) {
  long before = proa__handles_alive();
  {
    Loop loop;
    ASSERT_EQ(0, loop.rc());
    proa_server_options so = PROA_SERVER_OPTIONS_INIT;
    proa_future *sf = nullptr;
    ASSERT_EQ(0, proa_create_server(loop, QuietFactory, nullptr, "127.0.0.1", 0,
                                    &so, &sf));
    while (!proa_future_done(sf))
      ASSERT_EQ(0, RunOnce(loop));
    void *v = nullptr;
    ASSERT_EQ(0, proa_future_result(sf, &v));
    proa_server *server = static_cast<proa_server *>(v);
    proa_sockaddr addr;
    ASSERT_EQ(0, proa_server_sockname(server, 0, &addr));
    int port = proa_sockaddr_port(&addr);
    static const proa_protocol quiet = {};
    std::vector<proa_future *> conns;
    for (int i = 0; i < 5; i++) {
      proa_future *f = nullptr;
      ASSERT_EQ(0, proa_create_connection(loop, &quiet, nullptr, "127.0.0.1",
                                          port, nullptr, &f));
      conns.push_back(f);
    }
    for (int i = 0; i < 200; i++) {
      bool all = true;
      for (proa_future *f : conns)
        all = all && proa_future_done(f);
      if (all)
        break;
      ASSERT_EQ(0, RunOnce(loop));
    }
    for (proa_future *f : conns) {
      EXPECT_TRUE(proa_future_done(f));
      proa_future_unref(f);
    }
    // Reads and accepts are in flight now; closing must wait for them.
    EXPECT_GT(loop.get()->be_ops->inflight(loop.get()->backend), 0u);
    proa_future_unref(sf);
    EXPECT_EQ(0, proa_loop_close(loop));
  }
  EXPECT_EQ(before, proa__handles_alive())
      << "closing the loop leaked handle state";
}

} // namespace
