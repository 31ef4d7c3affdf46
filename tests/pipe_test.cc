// Tests of pipe handles as transports (proa_connect_read_pipe /
// proa_connect_write_pipe) and of proa_pipe: data and EOF, flow control,
// a reader that goes away under a writer, keep_open, the handles refused,
// each flag of proa_pipe, and handles not opened for overlapped I/O
// (anonymous pipes, served by helper threads on Windows). The fixture
// checks the protocol contract on every transport, as in tcp_test.cc.
#include "alloc_fail.h"
#include "net_test.h"

extern "C" {
#include "internal.h"
}

#include <cstdio>
#include <thread>

#ifdef _WIN32
#include <winternl.h>
#else
#include <csignal>
#include <fcntl.h>
#include <unistd.h>
#endif

using namespace proa_net_test;

namespace {

// ---- plain handles: blocking calls the test makes itself ----

// A pipe whose ends are blocking and not opened for overlapped I/O:
// CreatePipe on Windows, pipe(2) elsewhere. [0] reads, [1] writes.
void AnonymousPipe(intptr_t out[2]) {
#ifdef _WIN32
  HANDLE r = nullptr, w = nullptr;
  ASSERT_TRUE(CreatePipe(&r, &w, nullptr, 0));
  out[0] = reinterpret_cast<intptr_t>(r);
  out[1] = reinterpret_cast<intptr_t>(w);
#else
  int fds[2];
  ASSERT_EQ(0, pipe(fds));
  out[0] = fds[0];
  out[1] = fds[1];
#endif
}

// Writes all of `len` bytes, blocking; false on an error.
bool RawWrite(intptr_t h, const void *data, size_t len) {
  const char *p = static_cast<const char *>(data);
  while (len > 0) {
#ifdef _WIN32
    DWORD n = 0;
    if (!WriteFile(reinterpret_cast<HANDLE>(h), p, static_cast<DWORD>(len), &n,
                   nullptr))
      return false;
#else
    ssize_t n = write(static_cast<int>(h), p, len);
    if (n <= 0)
      return false;
#endif
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// One blocking read: the bytes, 0 at the end, -1 on an error.
long RawRead(intptr_t h, void *buf, size_t len) {
#ifdef _WIN32
  DWORD n = 0;
  if (!ReadFile(reinterpret_cast<HANDLE>(h), buf, static_cast<DWORD>(len), &n,
                nullptr))
    return GetLastError() == ERROR_BROKEN_PIPE ? 0 : -1;
  return static_cast<long>(n);
#else
  return static_cast<long>(read(static_cast<int>(h), buf, len));
#endif
}

// Whether `h` is an open handle of this process.
bool HandleOpen(intptr_t h) {
#ifdef _WIN32
  DWORD flags = 0;
  return GetHandleInformation(reinterpret_cast<HANDLE>(h), &flags) != 0;
#else
  return fcntl(static_cast<int>(h), F_GETFD) != -1;
#endif
}

bool Inherited(intptr_t h) {
#ifdef _WIN32
  DWORD flags = 0;
  EXPECT_TRUE(GetHandleInformation(reinterpret_cast<HANDLE>(h), &flags));
  return (flags & HANDLE_FLAG_INHERIT) != 0;
#else
  return (fcntl(static_cast<int>(h), F_GETFD) & FD_CLOEXEC) == 0;
#endif
}

// Non-blocking on Unix; opened for overlapped I/O on Windows.
bool NonBlocking(intptr_t h) {
#ifdef _WIN32
  typedef LONG(NTAPI * query_fn)(HANDLE, IO_STATUS_BLOCK *, void *, ULONG, int);
  query_fn query = reinterpret_cast<query_fn>(reinterpret_cast<void *>(
      GetProcAddress(GetModuleHandleA("ntdll.dll"), "NtQueryInformationFile")));
  IO_STATUS_BLOCK io;
  ULONG mode = 0;
  EXPECT_NE(nullptr, query);
  EXPECT_LE(0, query(reinterpret_cast<HANDLE>(h), &io, &mode, sizeof mode,
                     16 /* FileModeInformation */));
  return (mode & 0x30) == 0; // neither FILE_SYNCHRONOUS_IO_(NON)ALERT
#else
  return (fcntl(static_cast<int>(h), F_GETFL) & O_NONBLOCK) != 0;
#endif
}

// A regular file, open for reading and writing, removed at the end.
struct TempFile {
  intptr_t h = -1;
  std::string path;
  TempFile() {
    char name[64];
    std::snprintf(name, sizeof name, "proa_pipe_test_%u.tmp",
                  static_cast<unsigned>(proa_test::WallSeconds() * 1000));
    path = name;
#ifdef _WIN32
    HANDLE f = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, nullptr,
                           CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, nullptr);
    h = f == INVALID_HANDLE_VALUE ? -1 : reinterpret_cast<intptr_t>(f);
#else
    h = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
#endif
  }
  ~TempFile() {
    if (h != -1)
      proa_pipe_close(h);
    std::remove(path.c_str());
  }
};

// Reads `h` to its end on a thread of its own, checking the bytes against
// Pattern(seed); a closed `gate` holds it back until the test opens it.
struct Drain {
  intptr_t h;
  uint64_t seed;
  std::atomic<bool> gate{true};
  std::atomic<uint64_t> received{0};
  std::atomic<size_t> mismatches{0};
  std::atomic<bool> done{false};
  std::thread thread;
  Drain(intptr_t handle, uint64_t s, bool start_open = true)
      : h(handle), seed(s), gate(start_open) {
    thread = std::thread([this] { Run(); });
  }
  ~Drain() {
    gate = true;
    if (thread.joinable())
      thread.join();
  }
  void Run() {
    std::vector<uint8_t> buf(8192);
    while (!gate)
      proa_test::SleepMs(1);
    for (;;) {
      long n = RawRead(h, buf.data(), buf.size());
      if (n <= 0)
        break;
      std::vector<uint8_t> want = Pattern(seed, received, size_t(n));
      if (std::memcmp(want.data(), buf.data(), size_t(n)) != 0)
        mismatches++;
      received += uint64_t(n);
    }
    done = true;
  }
};

class pipes : public NetTest {
protected:
  void TearDown() override {
    NetTest::TearDown();
    for (intptr_t h : handles)
      proa_pipe_close(h);
  }

  // proa_pipe; the test closes the ends it did not give away (Forget).
  void MakePipe(intptr_t fds[2], unsigned read_flags, unsigned write_flags) {
    ASSERT_EQ(0, proa_pipe(fds, read_flags, write_flags));
    handles.push_back(fds[0]);
    handles.push_back(fds[1]);
  }
  void Anonymous(intptr_t fds[2]) {
    AnonymousPipe(fds);
    handles.push_back(fds[0]);
    handles.push_back(fds[1]);
  }
  // `h` is the transport's now, or closed by the test itself.
  void Forget(intptr_t h) {
    handles.erase(std::remove(handles.begin(), handles.end(), h),
                  handles.end());
  }
  void CloseEnd(intptr_t h) {
    Forget(h);
    EXPECT_EQ(0, proa_pipe_close(h));
  }

  // connect_read_pipe / connect_write_pipe, awaited: 0 once connected.
  int Connect(Conn *c, intptr_t h, bool write, bool keep_open = false) {
    proa_pipe_options o = PROA_PIPE_OPTIONS_INIT;
    o.keep_open = keep_open;
    proa_future *f = nullptr;
    int rc = write ? proa_connect_write_pipe(loop, c->Protocol(), c, h, &o, &f)
                   : proa_connect_read_pipe(loop, c->Protocol(), c, h, &o, &f);
    if (rc != 0)
      return rc;
    if (!keep_open)
      Forget(h);
    c->connect_future = f;
    return Await(loop, f);
  }

  // Runs the loop until connection_lost, then checks what it said.
  void ExpectLost(Conn *c, int error) {
    ASSERT_TRUE(Until([&] { return c->lost != 0; }));
    EXPECT_EQ(error, c->lost_error) << proa_err_name(c->lost_error);
  }

  std::vector<intptr_t> handles;
};

// ---- read pipes ----

TEST_F(pipes, ReadPipeDeliversDataThenEof) {
  intptr_t fds[2];
  MakePipe(fds, PROA_PIPE_NONBLOCK, 0);
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, fds[0], false));
  EXPECT_TRUE(proa_transport_is_reading(c->t));
  EXPECT_FALSE(proa_transport_can_write_eof(c->t));
  EXPECT_EQ(PROA_ENOTSUP, proa_transport_write(c->t, "x", 1));
  EXPECT_EQ(PROA_ENOTSUP, proa_transport_write_eof(c->t));
  EXPECT_EQ(fds[0], proa_transport_socket(c->t));

  ASSERT_TRUE(RawWrite(fds[1], "hello", 5));
  ASSERT_TRUE(Until([&] { return c->data == "hello"; })) << c->data;
  CloseEnd(fds[1]);
  ExpectLost(c, 0);
  EXPECT_EQ("MDEL", c->events);
}

TEST_F(pipes, ReadPipeClosesAtEofEvenIfEofReceivedKeepsItOpen) {
  intptr_t fds[2];
  MakePipe(fds, PROA_PIPE_NONBLOCK, 0);
  Conn *c = NewConn();
  c->eof_keep_open = true;
  ASSERT_EQ(0, Connect(c, fds[0], false));
  CloseEnd(fds[1]);
  ExpectLost(c, 0);
  EXPECT_EQ("MEL", c->events);
}

TEST_F(pipes, ReadPipePauseAndResumeLoseNothing) {
  intptr_t fds[2];
  MakePipe(fds, PROA_PIPE_NONBLOCK, 0);
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, fds[0], false));
  c->PauseReading();
  EXPECT_FALSE(proa_transport_is_reading(c->t));
  ASSERT_TRUE(RawWrite(fds[1], "abc", 3));
  RunIterations(loop, 5);
  EXPECT_EQ(0u, c->data_while_paused);
  c->ResumeReading();
  ASSERT_TRUE(Until([&] { return c->data == "abc"; })) << c->data;
}

// ---- write pipes ----

TEST_F(pipes, WritePipeWritesAndWriteEofClosesOnceFlushed) {
  intptr_t fds[2];
  MakePipe(fds, 0, PROA_PIPE_NONBLOCK);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  EXPECT_TRUE(proa_transport_can_write_eof(c->t));
  EXPECT_FALSE(proa_transport_is_reading(c->t));
  EXPECT_EQ(PROA_ENOTSUP, proa_transport_pause_reading(c->t));
  EXPECT_EQ(PROA_ENOTSUP, proa_transport_resume_reading(c->t));

  std::vector<uint8_t> all = Pattern(5, 0, 300000);
  ASSERT_EQ(0, proa_transport_write(c->t, all.data(), 100000));
  ASSERT_EQ(0, proa_transport_write(c->t, all.data() + 100000, 200000));
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  EXPECT_TRUE(proa_transport_is_closing(c->t));
  Drain d(fds[0], 5);
  ASSERT_TRUE(Until([&] { return c->lost != 0 && d.done; }));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(300000u, d.received.load());
  EXPECT_EQ(0u, d.mismatches.load());
}

TEST_F(pipes, WritePipeFlowControlWithASlowReader) {
  intptr_t fds[2];
  MakePipe(fds, 0, PROA_PIPE_NONBLOCK);
  Conn *c = NewConn();
  c->send_total = 4 * 1024 * 1024;
  c->send_seed = 9;
  c->eof_when_sent = true;
  Drain d(fds[0], 9, false); // held back until the writer had to pause
  ASSERT_EQ(0, Connect(c, fds[1], true));
  ASSERT_TRUE(Until([&] { return c->pauses > 0; }));
  d.gate = true;
  ASSERT_TRUE(Until([&] { return c->lost != 0 && d.done; }, 30.0));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_GE(c->resumes, 1);
  EXPECT_EQ(c->send_total, d.received.load());
  EXPECT_EQ(0u, d.mismatches.load());
}

// ---- the reader goes away ----

#ifndef _WIN32
// The process survives a write to a pipe whose reader is gone, and its
// SIGPIPE disposition, mask and pending set are as they were.
void ExpectSigpipeUntouched() {
  struct sigaction sa;
  ASSERT_EQ(0, sigaction(SIGPIPE, nullptr, &sa));
  EXPECT_EQ(SIG_DFL, sa.sa_handler) << "SIGPIPE is no longer SIG_DFL";
  sigset_t set;
  ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, nullptr, &set));
  EXPECT_FALSE(sigismember(&set, SIGPIPE)) << "SIGPIPE left blocked";
  ASSERT_EQ(0, sigpending(&set));
  EXPECT_FALSE(sigismember(&set, SIGPIPE)) << "a SIGPIPE left pending";
}
#endif

TEST_F(pipes, ReaderGoneWithNoWriteInFlightIsEpipe) {
  intptr_t fds[2];
  MakePipe(fds, 0, PROA_PIPE_NONBLOCK);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  CloseEnd(fds[0]);
  ExpectLost(c, PROA_EPIPE);
  EXPECT_EQ("ML", c->events);
}

TEST_F(pipes, ReaderGoneWithWritesInFlightIsEpipe) {
  intptr_t fds[2];
  MakePipe(fds, 0, PROA_PIPE_NONBLOCK);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  std::vector<uint8_t> big(1024 * 1024, 'x'); // more than the pipe holds
  ASSERT_EQ(0, proa_transport_write(c->t, big.data(), big.size()));
  RunIterations(loop, 3);
  EXPECT_GT(proa_transport_get_write_buffer_size(c->t), 0u);
  CloseEnd(fds[0]);
  ExpectLost(c, PROA_EPIPE);
#ifndef _WIN32
  ExpectSigpipeUntouched();
#endif
}

// A write made on the spot (try_write, no queue) to a pipe whose reader is
// gone: the error reaches connection_lost and no signal kills the process.
TEST_F(pipes, ReaderGoneUnderAnImmediateWriteIsEpipe) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  CloseEnd(fds[0]);
  int rc = proa_transport_write(c->t, "x", 1);
  EXPECT_TRUE(rc == 0 || rc == PROA_ECLOSED) << proa_err_name(rc);
  ExpectLost(c, PROA_EPIPE);
#ifndef _WIN32
  ExpectSigpipeUntouched();
#endif
}

#ifdef _WIN32
// The documented limit (pipe.h): a handle not opened for overlapped I/O
// cannot be watched without a write, so its reader's going away is told at
// the next write.
TEST_F(pipes, ReaderGoneOnASynchronousHandleIsToldAtTheNextWrite) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  CloseEnd(fds[0]);
  RunIterations(loop, 10);
  EXPECT_EQ(0, c->lost) << "told without a write: update pipe.h";
  ASSERT_EQ(0, proa_transport_write(c->t, "x", 1));
  ExpectLost(c, PROA_EPIPE);
}
#endif

// ---- keep_open, and which handles are taken ----

TEST_F(pipes, KeepOpenLeavesTheHandleOpenAsItWas) {
  intptr_t fds[2];
  Anonymous(fds); // blocking: the transport makes it non-blocking meanwhile
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[0], false, true));
  proa_transport_close(c->t);
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  ASSERT_TRUE(HandleOpen(fds[0]));
  EXPECT_FALSE(NonBlocking(fds[0])) << "detach did not restore the flags";
  ASSERT_TRUE(RawWrite(fds[1], "k", 1));
  char ch = 0;
  EXPECT_EQ(1, RawRead(fds[0], &ch, 1));
  EXPECT_EQ('k', ch);
}

TEST_F(pipes, WritePipeKeepOpenLeavesTheHandleOpen) {
  intptr_t fds[2];
  MakePipe(fds, 0, PROA_PIPE_NONBLOCK);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true, true));
  ASSERT_EQ(0, proa_transport_write(c->t, "kept", 4));
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  ExpectLost(c, 0);
  ASSERT_TRUE(HandleOpen(fds[1]));
  char buf[8] = {0};
  EXPECT_EQ(4, RawRead(fds[0], buf, sizeof buf));
  EXPECT_STREQ("kept", buf);
}

TEST_F(pipes, CloseClosesTheHandle) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[1], true));
  proa_transport_close(c->t);
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  // The reader sees the end: the last write end was closed.
  char ch;
  EXPECT_EQ(0, RawRead(fds[0], &ch, 1));
}

TEST_F(pipes, RegularFileIsRefusedAndStaysOpen) {
  TempFile f;
  ASSERT_NE(-1, f.h);
  proa_future *fut = reinterpret_cast<proa_future *>(1);
  EXPECT_EQ(PROA_EINVAL, proa_connect_read_pipe(loop, &kConnProtocol, nullptr,
                                                f.h, nullptr, &fut));
  EXPECT_EQ(nullptr, fut);
  EXPECT_EQ(PROA_EINVAL, proa_connect_write_pipe(loop, &kConnProtocol, nullptr,
                                                 f.h, nullptr, &fut));
  ASSERT_TRUE(HandleOpen(f.h));
  EXPECT_TRUE(RawWrite(f.h, "still mine", 10));
}

#ifndef _WIN32
// Out of memory after adopt made the fd non-blocking and close-on-exec: the
// refused fd goes back to the caller as it came (blocking, inherited).
TEST_F(pipes, AHandleRefusedForWantOfMemoryKeepsItsFlags) {
  PROA_NEED_ALLOC_FAIL();
  intptr_t fds[2];
  AnonymousPipe(fds); // blocking, not close-on-exec
  int fl = fcntl(static_cast<int>(fds[0]), F_GETFL);
  int fd_fl = fcntl(static_cast<int>(fds[0]), F_GETFD);
  proa_future *fut = nullptr;
  proa_alloc_fail::FailNth(2); // the future's, then the handle's state
  int rc = proa_connect_read_pipe(loop, &kConnProtocol, nullptr, fds[0],
                                  nullptr, &fut);
  proa_alloc_fail::FailNth(0);
  EXPECT_EQ(PROA_ENOMEM, rc) << proa_err_name(rc);
  EXPECT_EQ(nullptr, fut);
  EXPECT_EQ(fl, fcntl(static_cast<int>(fds[0]), F_GETFL));
  EXPECT_EQ(fd_fl, fcntl(static_cast<int>(fds[0]), F_GETFD));
  proa_pipe_close(fds[0]);
  proa_pipe_close(fds[1]);
}
#endif

TEST_F(pipes, BadHandleIsEbadf) {
  intptr_t fds[2];
  AnonymousPipe(fds);
  proa_pipe_close(fds[0]);
  proa_pipe_close(fds[1]); // closed: no handle of this process any more
  proa_future *fut = nullptr;
  EXPECT_EQ(PROA_EBADF, proa_connect_read_pipe(loop, &kConnProtocol, nullptr,
                                               fds[0], nullptr, &fut));
  EXPECT_EQ(PROA_EBADF, proa_connect_write_pipe(loop, &kConnProtocol, nullptr,
                                                -1, nullptr, &fut));
  EXPECT_EQ(PROA_EINVAL, proa_connect_read_pipe(nullptr, &kConnProtocol,
                                                nullptr, 0, nullptr, &fut));
  EXPECT_EQ(PROA_EINVAL, proa_connect_read_pipe(loop, &kConnProtocol, nullptr,
                                                0, nullptr, nullptr));
  EXPECT_EQ(PROA_EBADF, proa_pipe_close(-1));
}

// ---- proa_pipe ----

class pipe_flags
    : public ::testing::TestWithParam<std::tuple<unsigned, unsigned>> {};

TEST_P(pipe_flags, EachEndHasItsFlags) {
  unsigned rf = std::get<0>(GetParam()), wf = std::get<1>(GetParam());
  intptr_t fds[2] = {-1, -1};
  ASSERT_EQ(0, proa_pipe(fds, rf, wf));
  EXPECT_EQ((rf & PROA_PIPE_NONBLOCK) != 0, NonBlocking(fds[0]));
  EXPECT_EQ((wf & PROA_PIPE_NONBLOCK) != 0, NonBlocking(fds[1]));
  EXPECT_EQ((rf & PROA_PIPE_INHERIT) != 0, Inherited(fds[0]));
  EXPECT_EQ((wf & PROA_PIPE_INHERIT) != 0, Inherited(fds[1]));
  if (!(rf & PROA_PIPE_NONBLOCK) && !(wf & PROA_PIPE_NONBLOCK)) {
    EXPECT_TRUE(RawWrite(fds[1], "ok", 2)); // the pipe holds two bytes
    char buf[2];
    EXPECT_EQ(2, RawRead(fds[0], buf, 2));
  }
  EXPECT_EQ(0, proa_pipe_close(fds[0]));
  EXPECT_EQ(0, proa_pipe_close(fds[1]));
}

INSTANTIATE_TEST_SUITE_P(
    all, pipe_flags,
    ::testing::Combine(
        ::testing::Values(0u, PROA_PIPE_NONBLOCK, PROA_PIPE_INHERIT,
                          PROA_PIPE_NONBLOCK | PROA_PIPE_INHERIT),
        ::testing::Values(0u, PROA_PIPE_NONBLOCK, PROA_PIPE_INHERIT,
                          PROA_PIPE_NONBLOCK | PROA_PIPE_INHERIT)));

TEST(pipe_args, BadArgumentsAreEinval) {
  intptr_t fds[2];
  EXPECT_EQ(PROA_EINVAL, proa_pipe(nullptr, 0, 0));
  EXPECT_EQ(PROA_EINVAL, proa_pipe(fds, 4, 0));
  EXPECT_EQ(PROA_EINVAL, proa_pipe(fds, 0, 0x100));
}

// ---- handles not opened for overlapped I/O (helper threads on Windows)
// ----

TEST_F(pipes, ReadPipeOverAnAnonymousPipe) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, fds[0], false));
  ASSERT_TRUE(RawWrite(fds[1], "one", 3));
  ASSERT_TRUE(Until([&] { return c->data == "one"; })) << c->data;
  c->PauseReading();
  ASSERT_TRUE(RawWrite(fds[1], "two", 3));
  RunIterations(loop, 5);
  EXPECT_EQ(0u, c->data_while_paused);
  c->ResumeReading();
  ASSERT_TRUE(Until([&] { return c->data == "onetwo"; })) << c->data;
  CloseEnd(fds[1]);
  ExpectLost(c, 0);
  EXPECT_EQ("MDEL", c->events);
}

TEST_F(pipes, WritePipeOverAnAnonymousPipe) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  c->send_total = 1024 * 1024;
  c->send_seed = 3;
  c->eof_when_sent = true;
  Drain d(fds[0], 3);
  ASSERT_EQ(0, Connect(c, fds[1], true));
  ASSERT_TRUE(Until([&] { return c->lost != 0 && d.done; }, 30.0));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(c->send_total, d.received.load());
  EXPECT_EQ(0u, d.mismatches.load());
}

// A read blocked in the kernel (a helper thread's ReadFile on Windows) is
// interrupted by close: connection_lost comes, the handle's state is
// freed, and the loop closes without waiting.
TEST_F(pipes, CloseWhileAReadIsBlocked) {
  intptr_t fds[2];
  Anonymous(fds);
  long alive = proa__handles_alive();
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, fds[0], false));
  RunIterations(loop, 3); // the read is submitted and blocks
  proa_transport_close(c->t);
  ExpectLost(c, 0);
  ASSERT_TRUE(Until([&] { return proa__handles_alive() == alive; }))
      << "the handle's state was not freed";
}

TEST_F(pipes, PauseWhileAReadIsBlockedThenResume) {
  intptr_t fds[2];
  Anonymous(fds);
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, fds[0], false));
  RunIterations(loop, 3);
  c->PauseReading();
  RunIterations(loop, 3);
  ASSERT_TRUE(RawWrite(fds[1], "late", 4));
  RunIterations(loop, 3);
  EXPECT_EQ(0u, c->data_while_paused);
  c->ResumeReading();
  ASSERT_TRUE(Until([&] { return c->data == "late"; })) << c->data;
}

// ---- large transfers through both transports ----

class pipe_transfer : public pipes,
                      public ::testing::WithParamInterface<unsigned> {};

TEST_P(pipe_transfer, SixtyFourMiBArriveInOrder) {
  intptr_t fds[2];
  MakePipe(fds, GetParam(), GetParam());
  Conn *w = NewConn("writer"), *r = NewConn("reader");
  w->send_total = 64ull * 1024 * 1024;
  w->send_seed = 64;
  w->piece = 65536;
  w->eof_when_sent = true;
  r->verify = true;
  r->seed = 64;
  ASSERT_EQ(0, Connect(r, fds[0], false));
  ASSERT_EQ(0, Connect(w, fds[1], true));
  ASSERT_TRUE(Until([&] { return w->lost != 0 && r->lost != 0; }, 50.0));
  EXPECT_EQ(0, w->lost_error);
  EXPECT_EQ(0, r->lost_error);
  EXPECT_EQ(w->send_total, r->received);
  EXPECT_EQ(0u, r->mismatches) << "first bad byte at " << r->first_mismatch;
  EXPECT_EQ(1, r->eofs);
}

INSTANTIATE_TEST_SUITE_P(modes, pipe_transfer,
                         ::testing::Values(PROA_PIPE_NONBLOCK, 0u),
                         [](const ::testing::TestParamInfo<unsigned> &i) {
                           return i.param ? "nonblocking" : "blocking";
                         });

} // namespace
