// Tests of the portable local servers (pipe.h): proa_create_pipe_server and
// proa_create_pipe_connection, named pipes on Windows, Unix sockets
// elsewhere, with the protocols and checks of the TCP tests (net_test.h).
#include "net_test.h"

extern "C" {
#include "internal.h"
}

#include <string>

#ifdef _WIN32
#include <aclapi.h>
#include <sddl.h>
#else
#include <unistd.h>
#endif

using namespace proa_net_test;

namespace {

int64_t OwnPid() {
#ifdef _WIN32
  return static_cast<int64_t>(GetCurrentProcessId());
#else
  return static_cast<int64_t>(getpid());
#endif
}

// A name of this process that no other test uses: a pipe name on Windows,
// a socket path elsewhere.
std::string FreshName() {
  static int serial;
  std::string n = "proa-pipe-test-" + std::to_string(OwnPid()) + "-" +
                  std::to_string(++serial);
#ifdef _WIN32
  return n;
#else
  return "/tmp/" + n + ".sock";
#endif
}

class pipe_server : public NetTest {
protected:
  // proa_create_pipe_server, awaited: 0 with srv->s set, or the error.
  int ServePipe(Server *srv, const std::string &name,
                const proa_pipe_server_options *opts = nullptr) {
    proa_future *f = nullptr;
    int rc = proa_create_pipe_server(loop, Server::Factory, srv, name.c_str(),
                                     opts, &f);
    if (rc != 0)
      return rc;
    rc = Await(loop, f);
    if (rc == 0) {
      void *v = nullptr;
      EXPECT_EQ(0, proa_future_result(f, &v));
      srv->s = proa_server_ref(static_cast<proa_server *>(v));
    }
    proa_future_unref(f);
    return rc;
  }

  int StartPipeConnect(Conn *c, const std::string &name,
                       const proa_pipe_connect_options *opts = nullptr) {
    return proa_create_pipe_connection(loop, c->Protocol(), c, name.c_str(),
                                       opts, &c->connect_future);
  }

  // proa_create_pipe_connection, awaited: 0 (c->t set) or the error.
  int ConnectPipe(Conn *c, const std::string &name,
                  const proa_pipe_connect_options *opts = nullptr) {
    int rc = StartPipeConnect(c, name, opts);
    return rc != 0 ? rc : Await(loop, c->connect_future);
  }

  // An echo server on a fresh name: each connection echoes until EOF,
  // then closes once the echo is flushed.
  int EchoServer(Server **out) {
    Server *srv = NewServer();
    srv->configure = [](Conn &c) {
      c.echo = true;
      c.echo_close_on_eof = true;
    };
    name = FreshName();
    *out = srv;
    return ServePipe(srv, name);
  }

  // A client that sends `n` pattern bytes (seed), then write_eof, and
  // checks that the echo is the same bytes.
  Conn *EchoClient(uint64_t seed, uint64_t n) {
    Conn *c = NewConn("client#" + std::to_string(seed));
    c->verify = true;
    c->seed = c->send_seed = seed;
    c->send_total = n;
    c->eof_when_sent = true;
    return c;
  }

  std::string name;
};

TEST_F(pipe_server, EchoesWithHalfClose) {
  // The client's write_eof reaches the server after all the data, as over
  // TCP, and the server still writes its echo back, then closes.
  Server *srv = nullptr;
  int rc = EchoServer(&srv);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  Conn *c = EchoClient(7, 256 * 1024 + 5);
  ASSERT_EQ(0, ConnectPipe(c, name));
  ASSERT_TRUE(Until([&] { return c->lost != 0 && srv->Lost() == 1; }));
  ExpectEchoedWithHalfClose(*c, *srv);
}

TEST_F(pipe_server, TwoHundredClientsAtOnceAllConnectAndEcho) {
  // Every client is started in one go, before the loop runs at all: none
  // sees PROA_EBUSY (the instances waiting and the client's retries absorb
  // the burst), and every echo comes back whole.
  Server *srv = nullptr;
  int rc = EchoServer(&srv);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  Rng rng(42);
  std::vector<Conn *> cs;
  for (uint64_t i = 1; i <= 200; i++) {
    cs.push_back(EchoClient(i, rng.Range(1, 64 * 1024)));
    ASSERT_EQ(0, StartPipeConnect(cs.back(), name));
  }
  ASSERT_TRUE(Until(
      [&] {
        for (Conn *c : cs)
          if (!proa_future_done(c->connect_future) || (c->made && !c->lost))
            return false;
        return true;
      },
      30.0));
  for (Conn *c : cs) {
    SCOPED_TRACE(c->name);
    EXPECT_EQ(0, proa_future_error(c->connect_future))
        << proa_err_name(proa_future_error(c->connect_future));
    EXPECT_EQ(c->send_total, c->received);
    EXPECT_EQ(0u, c->mismatches);
  }
  EXPECT_EQ(200u, srv->conns.size());
}

TEST_F(pipe_server, ASecondServerOnTheSameNameFails) {
  PROA_SKIP_UNDER_WINE("FILE_FLAG_FIRST_PIPE_INSTANCE is ignored, so a "
                       "second server shares the name");
  Server *srv = nullptr;
  int rc = EchoServer(&srv);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  EXPECT_EQ(PROA_EADDRINUSE, ServePipe(NewServer(), name));
}

TEST_F(pipe_server, BadNamesFailAtOnce) {
  proa_future *f = nullptr;
  Conn *c = NewConn();
  std::string too_long(300, 'n');
  std::vector<std::pair<const char *, int>> bad = {
      {nullptr, PROA_EINVAL},
      {"", PROA_EINVAL},
      {too_long.c_str(), PROA_ENAMETOOLONG},
#ifdef _WIN32
      {"a\\b", PROA_EINVAL},
#endif
  };
  for (const auto &b : bad) {
    SCOPED_TRACE(b.first ? b.first : "(null)");
    EXPECT_EQ(b.second,
              proa_create_pipe_server(loop, Server::Factory, NewServer(),
                                      b.first, nullptr, &f));
    EXPECT_EQ(nullptr, f);
    EXPECT_EQ(b.second, proa_create_pipe_connection(loop, c->Protocol(), c,
                                                    b.first, nullptr, &f));
    EXPECT_EQ(nullptr, f);
  }
}

TEST_F(pipe_server, ConnectingWithNoServerIsEnoent) {
  Conn *c = NewConn();
  int rc = ConnectPipe(c, FreshName());
  EXPECT_EQ(PROA_ENOENT, rc);
}

#ifdef _WIN32
// Instances are a Windows notion: a Unix socket's backlog is the kernel's.
TEST_F(pipe_server, EveryInstanceBusyForBusyTimeoutIsEbusy) {
  // One instance and a server that does not accept: the first client takes
  // the instance, the second finds none for busy_timeout.
  proa_pipe_server_options so = PROA_PIPE_SERVER_OPTIONS_INIT;
  so.backlog = 1;
  so.start_serving = false;
  Server *srv = NewServer();
  name = FreshName();
  ASSERT_EQ(0, ServePipe(srv, name, &so));
  ASSERT_EQ(0, ConnectPipe(NewConn("first"), name));
  proa_pipe_connect_options co = PROA_PIPE_CONNECT_OPTIONS_INIT;
  co.busy_timeout = 0.2;
  double start = proa_loop_time(loop);
  EXPECT_EQ(PROA_EBUSY, ConnectPipe(NewConn("second"), name, &co));
  EXPECT_GE(proa_loop_time(loop) - start, 0.2);
}

// The SID of this process's user, in `buf`.
PSID TokenUserSid(std::vector<char> *buf) {
  HANDLE token = nullptr;
  DWORD len = 0;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return nullptr;
  GetTokenInformation(token, TokenUser, nullptr, 0, &len);
  buf->resize(len);
  BOOL ok = GetTokenInformation(token, TokenUser, buf->data(), len, &len);
  CloseHandle(token);
  return ok ? reinterpret_cast<TOKEN_USER *>(buf->data())->User.Sid : nullptr;
}

TEST_F(pipe_server, ByDefaultOnlyTheUserAndSystemAreAdmitted) {
  // The DACL on the pipe (read back from the server's end of a
  // connection): protected, and one entry for each of the two.
  Server *srv = nullptr;
  ASSERT_EQ(0, EchoServer(&srv));
  ASSERT_EQ(0, ConnectPipe(NewConn(), name));
  ASSERT_TRUE(Until([&] { return !srv->conns.empty(); }));
  HANDLE h = reinterpret_cast<HANDLE>(proa_transport_socket(srv->conns[0]->t));
  PACL dacl = nullptr;
  PSECURITY_DESCRIPTOR sd = nullptr;
  ASSERT_EQ(static_cast<DWORD>(ERROR_SUCCESS),
            GetSecurityInfo(h, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION,
                            nullptr, nullptr, &dacl, nullptr, &sd));
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  ASSERT_TRUE(GetSecurityDescriptorControl(sd, &control, &revision));
  EXPECT_NE(0, control & SE_DACL_PROTECTED);
  ASSERT_NE(nullptr, dacl);
  ASSERT_EQ(2, dacl->AceCount);
  std::vector<char> user_buf;
  PSID user = TokenUserSid(&user_buf);
  ASSERT_NE(nullptr, user);
  BYTE system_buf[SECURITY_MAX_SID_SIZE];
  DWORD system_len = sizeof system_buf;
  ASSERT_TRUE(
      CreateWellKnownSid(WinLocalSystemSid, nullptr, system_buf, &system_len));
  bool saw_user = false, saw_system = false;
  for (DWORD i = 0; i < dacl->AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace = nullptr;
    ASSERT_TRUE(GetAce(dacl, i, reinterpret_cast<void **>(&ace)));
    ASSERT_EQ(ACCESS_ALLOWED_ACE_TYPE, ace->Header.AceType);
    PSID sid = &ace->SidStart;
    saw_user = saw_user || EqualSid(sid, user);
    saw_system = saw_system || EqualSid(sid, system_buf);
  }
  EXPECT_TRUE(saw_user);
  EXPECT_TRUE(saw_system);
  LocalFree(sd);
}

TEST_F(pipe_server, TheCallersSecurityDescriptorDecidesWhoConnects) {
  // An empty DACL admits nobody, the server's own user included; one
  // instance, since making another needs FILE_CREATE_PIPE_INSTANCE.
  PSECURITY_DESCRIPTOR sd = nullptr;
  ASSERT_TRUE(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      L"D:P", SDDL_REVISION_1, &sd, nullptr));
  proa_pipe_server_options so = PROA_PIPE_SERVER_OPTIONS_INIT;
  so.security_descriptor = sd;
  so.backlog = 1;
  name = FreshName();
  int rc = ServePipe(NewServer(), name, &so);
  LocalFree(sd);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  rc = ConnectPipe(NewConn(), name);
  if (rc == 0)
    PROA_SKIP_UNDER_WINE("a named pipe's DACL is not checked on open");
  EXPECT_EQ(PROA_EACCES, rc) << proa_err_name(rc);
}

// The limit is 256 UTF-16 units, not bytes: 200 two-byte characters (400
// bytes of UTF-8) make a name that serves and connects.
TEST_F(pipe_server, TheNameLimitCountsCharactersNotBytes) {
  std::string wide;
  for (int i = 0; i < 200; i++)
    wide += "\xc3\xa9"; // U+00E9
  name = FreshName() + wide;
  Server *srv = NewServer();
  ASSERT_EQ(0, ServePipe(srv, name));
  EXPECT_EQ(0, ConnectPipe(NewConn(), name));
  std::string over = wide + std::string(60, 'x'); // 260 units with the prefix
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ENAMETOOLONG,
            proa_create_pipe_server(loop, Server::Factory, NewServer(),
                                    over.c_str(), nullptr, &f));
  EXPECT_EQ(nullptr, f);
}

// A server that is not proa's and makes byte-type pipes (libuv's do): the
// client connects in byte mode and the bytes go both ways.
TEST_F(pipe_server, ConnectsToAByteTypeServer) {
  name = FreshName();
  std::wstring wname =
      L"\\\\.\\pipe\\" + std::wstring(name.begin(), name.end());
  HANDLE srv = CreateNamedPipeW(wname.c_str(), PIPE_ACCESS_DUPLEX,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                                1, 4096, 4096, 0, NULL);
  ASSERT_NE(INVALID_HANDLE_VALUE, srv);
  Conn *c = NewConn();
  c->keep_data = true;
  int rc = ConnectPipe(c, name);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  EXPECT_TRUE(ConnectNamedPipe(srv, NULL) ||
              GetLastError() == ERROR_PIPE_CONNECTED);
  ASSERT_EQ(0, proa_transport_write(c->t, "ping", 4));
  RunIterations(loop, 3);
  char buf[8] = {0};
  DWORD n = 0;
  ASSERT_TRUE(ReadFile(srv, buf, 4, &n, NULL));
  EXPECT_EQ(std::string("ping"), std::string(buf, n));
  ASSERT_TRUE(WriteFile(srv, "pong", 4, &n, NULL));
  EXPECT_TRUE(Until([&] { return c->data == "pong"; })) << c->data;
  proa_transport_close(c->t);
  RunIterations(loop, 3);
  CloseHandle(srv);
}

TEST_F(pipe_server, SocknameIsNotSupported) {
  Server *srv = nullptr;
  ASSERT_EQ(0, EchoServer(&srv));
  proa_sockaddr a;
  EXPECT_EQ(PROA_ENOTSUP, proa_server_sockname(srv->s, 0, &a));
}
#endif

TEST_F(pipe_server, PeerPidIsOurOwnOnBothEnds) {
  Server *srv = nullptr;
  int rc = EchoServer(&srv);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  Conn *c = NewConn();
  ASSERT_EQ(0, ConnectPipe(c, name));
  ASSERT_TRUE(Until([&] { return !srv->conns.empty(); }));
  proa_peer_cred cred;
  ASSERT_EQ(0, proa_transport_peer_cred(c->t, &cred));
  EXPECT_EQ(OwnPid(), cred.pid);
  ASSERT_EQ(0, proa_transport_peer_cred(srv->conns[0]->t, &cred));
  EXPECT_EQ(OwnPid(), cred.pid);
  EXPECT_EQ(PROA_EINVAL, proa_transport_peer_cred(c->t, nullptr));
}

TEST_F(pipe_server, AClosedServerRefusesNewClients) {
  Server *srv = nullptr;
  int rc = EchoServer(&srv);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_EQ(0, ConnectPipe(EchoClient(1, 10), name));
  ASSERT_TRUE(Until([&] { return srv->Lost() == 1; }));
  proa_server_close(srv->s);
  rc = ConnectPipe(NewConn("late"), name);
  EXPECT_TRUE(rc == PROA_ENOENT || rc == PROA_ECONNREFUSED)
      << proa_err_name(rc);
}

int QuietFactory(void *, const proa_protocol **proto, void **self) {
  static const proa_protocol p = {};
  *proto = &p;
  *self = nullptr;
  return 0;
}

TEST(PipeServerClose, TheLoopClosedWithAListenerAndConnectionsLeaksNothing) {
  long before = proa__handles_alive();
  {
    proa_test::Loop loop;
    ASSERT_EQ(0, loop.rc());
    std::string name = FreshName();
    proa_future *sf = nullptr;
    int rc = proa_create_pipe_server(loop, QuietFactory, nullptr, name.c_str(),
                                     nullptr, &sf);
    ASSERT_EQ(0, rc);
    ASSERT_EQ(0, Await(loop, sf));
    static const proa_protocol quiet = {};
    std::vector<proa_future *> conns;
    for (int i = 0; i < 5; i++) {
      proa_future *f = nullptr;
      ASSERT_EQ(0, proa_create_pipe_connection(loop, &quiet, nullptr,
                                               name.c_str(), nullptr, &f));
      conns.push_back(f);
    }
    for (proa_future *f : conns) {
      EXPECT_EQ(0, Await(loop, f));
      proa_future_unref(f);
    }
    RunIterations(loop, 3); // the server sees them
    // Reads and ConnectNamedPipe calls are in flight: closing waits.
    EXPECT_GT(loop.get()->be_ops->inflight(loop.get()->backend), 0u);
    proa_future_unref(sf);
    EXPECT_EQ(0, proa_loop_close(loop));
  }
  EXPECT_EQ(before, proa__handles_alive())
      << "closing the loop leaked handle state";
}

} // namespace
