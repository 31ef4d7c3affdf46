// Tests of local IPC (pipe.h): Unix-domain stream sockets by path, the
// portable pipe server and connection over them, the streams for tasks over
// both, and the AF_UNIX addresses of net.h. The fixture checks the protocol
// contract on every connection, as for TCP.
#include "task_test.h"

#include <atomic>
#include <cstdio>
#include <string>

#ifdef _WIN32
#include <afunix.h>
#include <process.h>
#else
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#endif

using namespace proa_net_test;
using proa_task_test::TaskFixture;

namespace {

// ---- the OS, for the tests' own sockets and files ----

long Pid() {
#ifdef _WIN32
  return static_cast<long>(GetCurrentProcessId());
#else
  return static_cast<long>(getpid());
#endif
}

bool Exists(const std::string &path) {
#ifdef _WIN32
  return GetFileAttributesA(path.c_str()) != INVALID_FILE_ATTRIBUTES;
#else
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
#endif
}

void Remove(const std::string &path) {
#ifdef _WIN32
  DeleteFileA(path.c_str());
#else
  unlink(path.c_str());
#endif
}

// An AF_UNIX socket of SOCK_STREAM or SOCK_DGRAM, or -1.
intptr_t RawUnixSocket(int type = SOCK_STREAM) {
  RawInit();
#ifdef _WIN32
  SOCKET s = socket(AF_UNIX, type, 0);
  return s == INVALID_SOCKET ? -1 : static_cast<intptr_t>(s);
#else
  return socket(AF_UNIX, type, 0);
#endif
}

// Whether `s` is still an open socket (a refused one must stay open).
bool IsOpenSocket(intptr_t s) {
  int type = 0;
#ifdef _WIN32
  int len = sizeof type;
  return getsockopt(static_cast<SOCKET>(s), SOL_SOCKET, SO_TYPE,
                    reinterpret_cast<char *>(&type), &len) == 0;
#else
  socklen_t len = sizeof type;
  return getsockopt(static_cast<int>(s), SOL_SOCKET, SO_TYPE, &type, &len) == 0;
#endif
}

// A socket bound to `path` and closed again: the file a dead server leaves.
void MakeStaleFile(const std::string &path) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, path.c_str()));
  intptr_t s = RawUnixSocket();
  ASSERT_NE(-1, s);
  ASSERT_EQ(0, RawBind(s, a));
  RawClose(s);
  ASSERT_TRUE(Exists(path));
}

std::string PathOf(const proa_sockaddr &a) {
  char buf[112];
  int n = proa_sockaddr_path(&a, buf, sizeof buf);
  return n < 0 ? std::string("<") + proa_err_name(n) + ">" : std::string(buf);
}

// FNV-1a, the checksum each side of the 100-client test keeps.
uint64_t Fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}
const uint64_t kFnvStart = 0xCBF29CE484222325ull;

// Wine 8 has no AF_UNIX (socket() fails with WSAEAFNOSUPPORT): the tests
// that need one skip there, and only there.
#define NEED_AF_UNIX()                                                         \
  do {                                                                         \
    if (proa_test_is_wine())                                                   \
      GTEST_SKIP() << "Wine has no AF_UNIX (Wine " << proa_test_wine_version() \
                   << ")";                                                     \
  } while (0)

class UnixSocket : public TaskFixture {
protected:
  void TearDown() override {
    TaskFixture::TearDown();
    for (const std::string &p : paths_)
      Remove(p);
  }

  // A fresh socket path in the temporary directory, removed at the end.
  std::string TempPath(const char *tag = "s") {
    static std::atomic<int> counter{0};
#ifdef _WIN32
    char dir[MAX_PATH + 1];
    DWORD n = GetTempPathA(sizeof dir, dir);
    std::string base = n > 0 && n < sizeof dir ? dir : ".\\";
#else
    std::string base = "/tmp/";
#endif
    std::string p = base + "proa-" + std::to_string(Pid()) + "-" +
                    std::to_string(counter++) + "-" + tag + ".sock";
    Remove(p);
    paths_.push_back(p);
    return p;
  }

  // create_unix_server on `path`, awaited: 0 (srv->s set) or the error.
  int ListenUnix(Server *srv, const char *path,
                 const proa_unix_server_options *opts = nullptr,
                 std::string *message = nullptr) {
    proa_future *f = nullptr;
    int rc =
        proa_create_unix_server(loop, Server::Factory, srv, path, opts, &f);
    if (rc != 0)
      return rc;
    return AwaitServer(srv, f, message);
  }

  int AwaitServer(Server *srv, proa_future *f, std::string *message) {
    int rc = Await(loop, f);
    if (message != nullptr) {
      const char *m = proa_future_error_message(f);
      *message = m != nullptr ? m : "";
    }
    void *v = nullptr;
    if (rc == 0 && proa_future_result(f, &v) == 0)
      srv->s = proa_server_ref(static_cast<proa_server *>(v));
    proa_future_unref(f);
    return rc;
  }

  // A server on a fresh path; each connection is set up by `configure`.
  Server *UnixServer(std::string *path,
                     const std::function<void(Conn &)> &configure = {},
                     const proa_unix_server_options *opts = nullptr) {
    *path = TempPath();
    Server *srv = NewServer();
    srv->configure = configure;
    int rc = ListenUnix(srv, path->c_str(), opts);
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    return srv;
  }

  int StartConnectUnix(Conn *c, const char *path,
                       const proa_unix_connect_options *opts = nullptr) {
    return proa_create_unix_connection(loop, c->Protocol(), c, path, opts,
                                       &c->connect_future);
  }

  // create_unix_connection, awaited: 0 (c->t set) or the error.
  int ConnectUnix(Conn *c, const char *path,
                  const proa_unix_connect_options *opts = nullptr,
                  std::string *message = nullptr) {
    int rc = StartConnectUnix(c, path, opts);
    if (rc != 0)
      return rc;
    rc = Await(loop, c->connect_future);
    if (message != nullptr) {
      const char *m = proa_future_error_message(c->connect_future);
      *message = m != nullptr ? m : "";
    }
    return rc;
  }

  // A connected pair over `path`: client `c` and the server's newest conn.
  Conn *UnixPair(Server *srv, Conn *c, const std::string &path) {
    size_t want = srv->conns.size() + 1;
    int rc = ConnectUnix(c, path.c_str());
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    if (rc != 0)
      return nullptr;
    EXPECT_TRUE(Until([&] {
      return srv->conns.size() >= want && srv->conns.back()->made;
    })) << "the server never saw the connection";
    return srv->conns.size() >= want ? srv->conns.back().get() : nullptr;
  }

  // Sends `n` pattern bytes from `c` through an echoing server and checks
  // that they all come back, in order.
  void ExpectEcho(Conn *c, uint64_t n) {
    c->verify = true;
    c->seed = c->send_seed = 7;
    c->send_total = n;
    c->eof_when_sent = true;
    c->Pump();
    EXPECT_TRUE(Until([c] { return c->lost != 0; }));
    EXPECT_EQ(n, c->received);
    EXPECT_EQ(0u, c->mismatches) << "first at " << c->first_mismatch;
    EXPECT_EQ(0, c->lost_error) << proa_err_name(c->lost_error);
  }

  static void Echo(Conn &c) {
    c.echo = true;
    c.echo_close_on_eof = true;
  }

  std::vector<std::string> paths_;
};

// ---- addresses ----

TEST(UnixAddress, PathRoundTrip) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, "/tmp/x.sock"));
  EXPECT_EQ(PROA_AF_UNIX, proa_sockaddr_family(&a));
  EXPECT_EQ("/tmp/x.sock", PathOf(a));
  char buf[112];
  EXPECT_EQ(11, proa_sockaddr_format(&a, buf, sizeof buf));
  EXPECT_STREQ("/tmp/x.sock", buf);
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_path(&a, buf, 11));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_port(&a));
  proa_sockaddr ip;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&ip, "127.0.0.1", 1));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_path(&ip, buf, sizeof buf));
}

TEST(UnixAddress, LongestPathFitsAndOneMoreIsTooLong) {
  proa_sockaddr a;
  std::string p = "/" + std::string(PROA_UNIX_PATH_MAX - 1, 'p');
#ifdef __APPLE__
  p.resize(103); // macOS's sun_path holds 104 bytes
#endif
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, p.c_str()));
  EXPECT_EQ(p, PathOf(a));
  p += "q";
  EXPECT_EQ(PROA_ENAMETOOLONG, proa_sockaddr_from_path(&a, p.c_str()));
}

TEST(UnixAddress, InvalidPaths) {
  proa_sockaddr a;
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_path(&a, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_path(&a, ""));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_path(nullptr, "/tmp/x"));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_path(nullptr, nullptr, 0));
}

TEST(UnixAddress, AbstractNamesOnLinuxOnly) {
  proa_sockaddr a;
#ifdef __linux__
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, "@proa"));
  EXPECT_EQ("@proa", PathOf(a));
  // No NUL is added: the name is exactly the bytes after the '@'.
  EXPECT_EQ(static_cast<int>(sizeof(sa_family_t) + 5), a.len);
#else
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_path(&a, "@proa"));
#endif
}

// The address an unnamed socket reports is its family alone (Linux), or a
// family with an empty path: both read as "".
TEST(UnixAddress, UnnamedAddressIsTheEmptyPath) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, "/x"));
  a.len = 2; // sizeof(sa_family_t) on Linux, sun_len + sun_family on BSD
  EXPECT_EQ(PROA_AF_UNIX, proa_sockaddr_family(&a));
  EXPECT_EQ("", PathOf(a));
}

// ---- connections ----

TEST_F(UnixSocket, EchoKeepsEveryByteInOrder) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path, Echo);
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(srv, c, path));
  ExpectEcho(c, 3 * 1024 * 1024 + 17);
}

// 100 clients at once, each sending one message of a random size up to
// 1 MiB; the server echoes and closes on EOF. Every client gets back what
// it sent (pattern and checksum), and every connection ends cleanly.
TEST_F(UnixSocket, HundredClientsRandomSizesNothingLost) {
  NEED_AF_UNIX();
  const int kClients = 100;
  proa_unix_server_options o = PROA_UNIX_SERVER_OPTIONS_INIT;
  o.backlog = 2 * kClients; // every connect is made before any accept
  std::string path;
  Server *srv = UnixServer(&path, Echo, &o);
  ASSERT_NE(nullptr, srv->s);
  Rng rng(20261203);
  std::vector<uint64_t> want_sum(kClients), got_sum(kClients, kFnvStart);
  for (int i = 0; i < kClients; i++) {
    Conn *c = NewConn("client#" + std::to_string(i));
    // Sizes spread over every order of magnitude from 1 byte to 1 MiB.
    uint64_t size = rng.Range(1, uint64_t{1} << rng.Range(0, 20));
    c->verify = true;
    c->seed = c->send_seed = 1000 + i;
    c->send_total = size;
    c->eof_when_sent = true;
    want_sum[i] = Fnv(kFnvStart, Pattern(c->seed, 0, size).data(), size);
    uint64_t *sum = &got_sum[i];
    c->on_data = [sum](Conn &, const uint8_t *p, size_t n) {
      *sum = Fnv(*sum, p, n);
    };
    ASSERT_EQ(0, StartConnectUnix(c, path.c_str()));
  }
  EXPECT_TRUE(Until(
      [this] {
        for (auto &c : clients)
          if (!c->lost)
            return false;
        return true;
      },
      50.0));
  for (int i = 0; i < kClients; i++) {
    Conn *c = clients[i].get();
    SCOPED_TRACE(c->name);
    EXPECT_EQ(0, proa_future_error(c->connect_future));
    EXPECT_EQ(c->send_total, c->received);
    EXPECT_EQ(0u, c->mismatches);
    EXPECT_EQ(want_sum[i], got_sum[i]);
    EXPECT_EQ(0, c->lost_error) << proa_err_name(c->lost_error);
    c->on_data = nullptr; // got_sum goes before the fixture's teardown
  }
  EXPECT_EQ(static_cast<size_t>(kClients), srv->conns.size());
}

TEST_F(UnixSocket, HalfCloseKeepsTheOtherDirectionOpen) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path, [](Conn &s) {
    s.keep_data = true;
    s.on_eof = [](Conn &me) {
      std::string reply = "got " + me.data;
      EXPECT_EQ(0, proa_transport_write(me.t, reply.data(), reply.size()));
      proa_transport_close(me.t);
      return true;
    };
  });
  Conn *c = NewConn();
  c->keep_data = true;
  Conn *peer = UnixPair(srv, c, path);
  ASSERT_NE(nullptr, peer);
  EXPECT_TRUE(proa_transport_can_write_eof(c->t));
  ASSERT_EQ(0, proa_transport_write(c->t, "ping", 4));
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  EXPECT_TRUE(Until([c] { return c->lost != 0; }));
  EXPECT_EQ(1, peer->eofs);
  EXPECT_EQ(1, c->eofs);
  EXPECT_EQ("got ping", c->data);
  EXPECT_EQ(0, c->lost_error);
}

TEST_F(UnixSocket, StaleSocketFileIsReplaced) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  MakeStaleFile(path);
  Server *srv = NewServer();
  srv->configure = Echo;
  ASSERT_EQ(0, ListenUnix(srv, path.c_str()));
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(srv, c, path));
  ExpectEcho(c, 1000);
}

TEST_F(UnixSocket, LiveSocketFileIsAddrInUse) {
  NEED_AF_UNIX();
  std::string path;
  Server *first = UnixServer(&path, Echo);
  Server *second = NewServer();
  std::string message;
  EXPECT_EQ(PROA_EADDRINUSE,
            ListenUnix(second, path.c_str(), nullptr, &message));
  EXPECT_NE(std::string::npos, message.find(path)) << message;
  EXPECT_EQ(nullptr, second->s);
  // The live server kept its file and still serves (the probe's connection
  // came and went).
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(first, c, path));
  ExpectEcho(c, 1000);
}

// A caller that gives up while the file's owner is probed gets nothing
// back, and the live server is untouched.
TEST_F(UnixSocket, CancelWhileProbing) {
  NEED_AF_UNIX();
  std::string path;
  Server *first = UnixServer(&path, Echo);
  Server *second = NewServer();
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_unix_server(loop, Server::Factory, second,
                                       path.c_str(), nullptr, &f));
  EXPECT_TRUE(proa_future_cancel(f, nullptr));
  EXPECT_EQ(PROA_ECANCELED, Await(loop, f));
  proa_future_unref(f);
  RunIterations(loop, 5); // the probe's completion frees the attempt
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(first, c, path));
  ExpectEcho(c, 1000);
}

// Closing the loop while a probe is out cancels it and frees everything.
TEST_F(UnixSocket, LoopCloseWhileProbing) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  proa_loop *own = nullptr;
  ASSERT_EQ(0, proa_loop_new(&own));
  Server live, late;
  proa_future *f = nullptr, *g = nullptr;
  ASSERT_EQ(0, proa_create_unix_server(own, Server::Factory, &live,
                                       path.c_str(), nullptr, &f));
  ASSERT_EQ(0, Await(own, f));
  ASSERT_EQ(0, proa_create_unix_server(own, Server::Factory, &late,
                                       path.c_str(), nullptr, &g));
  EXPECT_EQ(0, proa_loop_close(own));
  EXPECT_TRUE(proa_future_cancelled(g));
  proa_future_unref(g);
  proa_future_unref(f);
  EXPECT_EQ(0, proa_loop_free(own));
  EXPECT_FALSE(Exists(path)) << "the live server's file goes with it";
}

TEST_F(UnixSocket, SomethingElseAtThePathIsNeverRemoved) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  FILE *f = std::fopen(path.c_str(), "w");
  ASSERT_NE(nullptr, f);
  std::fclose(f);
  Server *srv = NewServer();
  EXPECT_EQ(PROA_EADDRINUSE, ListenUnix(srv, path.c_str()));
  EXPECT_TRUE(Exists(path));
}

TEST_F(UnixSocket, CloseRemovesTheSocketFile) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path);
  ASSERT_TRUE(Exists(path));
  proa_server_close(srv->s);
  EXPECT_FALSE(Exists(path));
}

TEST_F(UnixSocket, CloseKeepsAFileThatReplacedOurs) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path);
  // Another server's file now sits at the path (ours was removed under us).
  Remove(path);
  MakeStaleFile(path);
  proa_server_close(srv->s);
  EXPECT_TRUE(Exists(path)) << "the server removed a file it did not make";
}

TEST_F(UnixSocket, CleanupSocketFalseKeepsTheFile) {
  NEED_AF_UNIX();
  proa_unix_server_options o = PROA_UNIX_SERVER_OPTIONS_INIT;
  o.cleanup_socket = false;
  std::string path;
  Server *srv = UnixServer(&path, {}, &o);
  proa_server_close(srv->s);
  EXPECT_TRUE(Exists(path));
}

TEST_F(UnixSocket, LoopCloseRemovesTheSocketFile) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  proa_loop *own = nullptr;
  ASSERT_EQ(0, proa_loop_new(&own));
  Server srv;
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_unix_server(own, Server::Factory, &srv, path.c_str(),
                                       nullptr, &f));
  EXPECT_EQ(0, Await(own, f));
  proa_future_unref(f); // the server, left open: the loop's close closes it
  EXPECT_TRUE(Exists(path));
  EXPECT_EQ(0, proa_loop_close(own));
  EXPECT_FALSE(Exists(path));
  EXPECT_EQ(0, proa_loop_free(own));
}

#ifdef __linux__
TEST_F(UnixSocket, AbstractNameMakesNoFile) {
  std::string name = "@proa-test-" + std::to_string(Pid()) + "-abstract";
  Server *srv = NewServer();
  srv->configure = Echo;
  ASSERT_EQ(0, ListenUnix(srv, name.c_str()));
  EXPECT_FALSE(Exists(name.substr(1)));
  proa_sockaddr a;
  ASSERT_EQ(0, proa_server_sockname(srv->s, 0, &a));
  EXPECT_EQ(name, PathOf(a));
  // No file to probe: a second server on the name is refused at once.
  Server *second = NewServer();
  EXPECT_EQ(PROA_EADDRINUSE, ListenUnix(second, name.c_str()));
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(srv, c, name));
  ExpectEcho(c, 5000);
}
#else
TEST_F(UnixSocket, AbstractNamesAreRefusedOffLinux) {
  Server *srv = NewServer();
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_create_unix_server(loop, Server::Factory, srv,
                                                 "@proa", nullptr, &f));
  EXPECT_EQ(nullptr, f);
}
#endif

TEST_F(UnixSocket, TooLongPathIsRefusedAtOnce) {
  std::string path = "/" + std::string(PROA_UNIX_PATH_MAX, 'x');
  Server *srv = NewServer();
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ENAMETOOLONG,
            proa_create_unix_server(loop, Server::Factory, srv, path.c_str(),
                                    nullptr, &f));
  EXPECT_EQ(nullptr, f);
  Conn *c = NewConn();
  EXPECT_EQ(PROA_ENAMETOOLONG, StartConnectUnix(c, path.c_str()));
  EXPECT_EQ(nullptr, c->connect_future);
}

TEST_F(UnixSocket, InvalidArguments) {
  Server *srv = NewServer();
  proa_future *f = nullptr;
  proa_unix_server_options so = PROA_UNIX_SERVER_OPTIONS_INIT;
  const proa_protocol_factory factory = Server::Factory;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(loop, factory, srv, nullptr, nullptr, &f));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(loop, factory, srv, "", nullptr, &f));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(loop, nullptr, srv, "/x", nullptr, &f));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(nullptr, factory, srv, "/x", nullptr, &f));
  EXPECT_EQ(PROA_EINVAL, proa_create_unix_server(loop, factory, srv, "/x",
                                                 nullptr, nullptr));
  so.sock = 0; // together with a path
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(loop, factory, srv, "/x", &so, &f));
  so = PROA_UNIX_SERVER_OPTIONS_INIT;
  so.size = 1;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_unix_server(loop, factory, srv, "/x", &so, &f));
  so = PROA_UNIX_SERVER_OPTIONS_INIT;
  so.ssl = &so;
  EXPECT_EQ(PROA_ENOTSUP,
            proa_create_unix_server(loop, factory, srv, "/x", &so, &f));
  EXPECT_EQ(nullptr, f);

  Conn *c = NewConn();
  proa_unix_connect_options co = PROA_UNIX_CONNECT_OPTIONS_INIT;
  EXPECT_EQ(PROA_EINVAL, StartConnectUnix(c, nullptr));
  EXPECT_EQ(PROA_EINVAL, StartConnectUnix(c, ""));
  co.sock = 0;
  EXPECT_EQ(PROA_EINVAL, StartConnectUnix(c, "/x", &co));
  co = PROA_UNIX_CONNECT_OPTIONS_INIT;
  co.server_hostname = "x";
  EXPECT_EQ(PROA_ENOTSUP, StartConnectUnix(c, "/x", &co));
  EXPECT_EQ(PROA_EINVAL, proa_create_unix_connection(loop, c->Protocol(), c,
                                                     "/x", nullptr, nullptr));
  EXPECT_EQ(nullptr, c->connect_future);
}

TEST_F(UnixSocket, ConnectToAMissingPathIsEnoent) {
  NEED_AF_UNIX();
  Conn *c = NewConn();
  std::string message;
  std::string path = TempPath();
  EXPECT_EQ(PROA_ENOENT, ConnectUnix(c, path.c_str(), nullptr, &message));
  EXPECT_NE(std::string::npos, message.find(path)) << message;
  EXPECT_EQ(0, c->made);
}

TEST_F(UnixSocket, ConnectToADeadPathIsRefused) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  MakeStaleFile(path);
  Conn *c = NewConn();
  EXPECT_EQ(PROA_ECONNREFUSED, ConnectUnix(c, path.c_str()));
  EXPECT_EQ(0, c->made);
}

TEST_F(UnixSocket, ServerAdoptsABoundSocket) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, path.c_str()));
  intptr_t s = RawUnixSocket();
  ASSERT_NE(-1, s);
  ASSERT_EQ(0, RawBind(s, a));
  proa_unix_server_options o = PROA_UNIX_SERVER_OPTIONS_INIT;
  o.sock = s;
  Server *srv = NewServer();
  srv->configure = Echo;
  ASSERT_EQ(0, ListenUnix(srv, nullptr, &o));
  EXPECT_EQ(s, proa_server_socket(srv->s, 0));
  Conn *c = NewConn();
  ASSERT_NE(nullptr, UnixPair(srv, c, path));
  ExpectEcho(c, 1000);
  proa_server_close(srv->s);
  EXPECT_FALSE(Exists(path)) << "an adopted socket's file is cleaned up too";
}

TEST_F(UnixSocket, AdoptionRefusesOtherSocketsAndLeavesThemOpen) {
  NEED_AF_UNIX();
  intptr_t tcp = RawSocket(PROA_AF_INET);
  intptr_t dgram = RawUnixSocket(SOCK_DGRAM);
  ASSERT_NE(-1, tcp);
  for (intptr_t s : {tcp, dgram}) {
    if (s == -1)
      continue; // Windows has no AF_UNIX datagrams
    proa_unix_server_options so = PROA_UNIX_SERVER_OPTIONS_INIT;
    so.sock = s;
    proa_future *f = nullptr;
    Server *srv = NewServer();
    EXPECT_EQ(PROA_EINVAL, proa_create_unix_server(loop, Server::Factory, srv,
                                                   nullptr, &so, &f));
    proa_unix_connect_options co = PROA_UNIX_CONNECT_OPTIONS_INIT;
    co.sock = s;
    Conn *c = NewConn();
    EXPECT_EQ(PROA_EINVAL, StartConnectUnix(c, nullptr, &co));
    EXPECT_TRUE(IsOpenSocket(s)) << "a refused socket must stay open";
    RawClose(s);
  }
}

TEST_F(UnixSocket, ConnectionWrapsAConnectedSocket) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path, Echo);
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_path(&a, path.c_str()));
  intptr_t s = RawUnixSocket();
  ASSERT_NE(-1, s);
  ASSERT_EQ(0, RawConnect(s, a));
  proa_unix_connect_options o = PROA_UNIX_CONNECT_OPTIONS_INIT;
  o.sock = s;
  Conn *c = NewConn();
  ASSERT_EQ(0, ConnectUnix(c, nullptr, &o));
  EXPECT_EQ(s, proa_transport_socket(c->t));
  ASSERT_TRUE(Until([srv] { return !srv->conns.empty(); }));
  ExpectEcho(c, 1000);
}

TEST_F(UnixSocket, PeerCredentialsAreOurOwn) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path);
  Conn *c = NewConn();
  Conn *peer = UnixPair(srv, c, path);
  ASSERT_NE(nullptr, peer);
  for (Conn *side : {c, peer}) {
    proa_peer_cred cred = {0, 0, 0};
    ASSERT_EQ(0, proa_transport_peer_cred(side->t, &cred)) << side->name;
    EXPECT_EQ(Pid(), cred.pid) << side->name;
#ifdef _WIN32
    EXPECT_EQ(-1, cred.uid); // Windows says the pid only
#else
    EXPECT_EQ(static_cast<int64_t>(getuid()), cred.uid);
    EXPECT_EQ(static_cast<int64_t>(getgid()), cred.gid);
#endif
  }
  EXPECT_EQ(PROA_EINVAL, proa_transport_peer_cred(c->t, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_transport_peer_cred(nullptr, nullptr));
}

TEST_F(UnixSocket, PeerCredentialsOfTcpAreNotSupported) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  proa_peer_cred cred;
  EXPECT_EQ(PROA_ENOTSUP, proa_transport_peer_cred(c->t, &cred));
}

// The server end is named by the path; a client that never bound is
// unnamed, and reads as the empty path.
TEST_F(UnixSocket, PeernameAndSockname) {
  NEED_AF_UNIX();
  std::string path;
  Server *srv = UnixServer(&path);
  Conn *c = NewConn();
  Conn *peer = UnixPair(srv, c, path);
  ASSERT_NE(nullptr, peer);
  proa_sockaddr a;
  ASSERT_EQ(0, proa_server_sockname(srv->s, 0, &a));
  EXPECT_EQ(path, PathOf(a));
  ASSERT_EQ(0, proa_transport_peername(c->t, &a));
  EXPECT_EQ(PROA_AF_UNIX, proa_sockaddr_family(&a));
  EXPECT_EQ(path, PathOf(a));
  ASSERT_EQ(0, proa_transport_sockname(peer->t, &a));
  EXPECT_EQ(path, PathOf(a));
  ASSERT_EQ(0, proa_transport_sockname(c->t, &a));
  EXPECT_EQ(PROA_AF_UNIX, proa_sockaddr_family(&a));
  EXPECT_EQ("", PathOf(a));
  ASSERT_EQ(0, proa_transport_peername(peer->t, &a));
  EXPECT_EQ(PROA_AF_UNIX, proa_sockaddr_family(&a));
  EXPECT_EQ("", PathOf(a));
}

#ifdef _WIN32
// Where Windows has no AF_UNIX (Wine 8, Windows before 10 1803) the calls
// say so at once, clearly. Every Unix has AF_UNIX: nothing to test there.
TEST_F(UnixSocket, NotSupportedWithoutAfUnix) {
  if (!proa_test_is_wine())
    GTEST_SKIP() << "this Windows has AF_UNIX";
  std::string path = TempPath();
  Server *srv = NewServer();
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ENOTSUP, proa_create_unix_server(loop, Server::Factory, srv,
                                                  path.c_str(), nullptr, &f));
  Conn *c = NewConn();
  EXPECT_EQ(PROA_ENOTSUP, StartConnectUnix(c, path.c_str()));
}
#endif

// ---- streams for tasks ----

TEST_F(UnixSocket, StreamsEcho) {
  NEED_AF_UNIX();
  std::string path = TempPath();
  proa_server *srv = StartServerWith(
      [this, &path](proa_stream_handler h, void *arg, proa_future **f) {
        return proa_start_unix_server(loop, h, arg, path.c_str(), nullptr, 0,
                                      f);
      },
      [](proa_stream *s) {
        std::string line;
        int rc = proa_task_test::ReadLine(s, &line);
        return rc != 0 ? rc : proa_task_test::WriteDrain(s, "echo " + line);
      });
  ASSERT_NE(nullptr, srv);
  proa_stream *s = OpenWith([this, &path](proa_future **f) {
    return proa_open_unix_connection(loop, path.c_str(), nullptr, 0, f);
  });
  ASSERT_NE(nullptr, s);
  std::string got;
  proa_future *t = SpawnV([s, &got] {
    EXPECT_EQ(0, proa_task_test::WriteDrain(s, "hello\n"));
    EXPECT_EQ(0, proa_task_test::ReadLine(s, &got));
  });
  EXPECT_EQ(0, Finish(t));
  proa_future_unref(t);
  EXPECT_EQ("echo hello\n", got);
}

// ---- the portable pipe server, over Unix sockets ----

class PipeOverUnix : public UnixSocket {
protected:
  // A name for proa_create_pipe_*: a socket path on Unix, a pipe name on
  // Windows.
  std::string PipeName() {
#ifdef _WIN32
    static std::atomic<int> counter{0};
    return "proa-test-" + std::to_string(Pid()) + "-" +
           std::to_string(counter++);
#else
    return TempPath("pipe");
#endif
  }

  // Connects to a name nobody serves: PROA_ENOENT through the future, or
  // PROA_ENOTSUP at once where this build has no named pipes.
  int ConnectToNobody() {
    Conn *c = NewConn("nobody's");
    std::string name = PipeName();
    int rc = proa_create_pipe_connection(loop, c->Protocol(), c, name.c_str(),
                                         nullptr, &c->connect_future);
    return rc != 0 ? rc : Await(loop, c->connect_future);
  }
};

TEST_F(PipeOverUnix, ServerAndConnectionEcho) {
  std::string name = PipeName();
  Server *srv = NewServer();
  srv->configure = Echo;
  proa_future *f = nullptr;
  int rc = proa_create_pipe_server(loop, Server::Factory, srv, name.c_str(),
                                   nullptr, &f);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_EQ(0, AwaitServer(srv, f, nullptr));
  Conn *c = NewConn();
  ASSERT_EQ(0, proa_create_pipe_connection(loop, c->Protocol(), c, name.c_str(),
                                           nullptr, &c->connect_future));
  ASSERT_EQ(0, Await(loop, c->connect_future));
  ExpectEcho(c, 100000);
#ifndef _WIN32
  proa_server_close(srv->s);
  EXPECT_FALSE(Exists(name)) << "the socket file is cleaned up";
#endif
}

// A caller that cancels its pipe connection once it is made, either at once
// from connection_made or a moment later, gets no connection: the client
// is lost (its transport freed: ASan would see a leak) and the server
// sees its connection go. (A cancel that comes after the future already
// has its transport changes nothing: the caller closes it.)
TEST_F(PipeOverUnix, CancelledOnceMadeLeavesNoConnection) {
  std::string name = PipeName();
  Server *srv = NewServer();
  srv->configure = Echo;
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_pipe_server(loop, Server::Factory, srv, name.c_str(),
                                       nullptr, &f));
  ASSERT_EQ(0, AwaitServer(srv, f, nullptr));
  for (bool later : {false, true}) {
    SCOPED_TRACE(later ? "cancelled from a callback after made" : "in made");
    Conn *c = NewConn();
    c->on_made = [this, later](Conn &conn) {
      if (!later) {
        proa_future_cancel(conn.connect_future, "no longer wanted");
        return;
      }
      proa_call_soon(
          loop,
          [](void *arg) {
            proa_future_cancel(static_cast<proa_future *>(arg), "changed mind");
          },
          conn.connect_future, nullptr);
    };
    ASSERT_EQ(0,
              proa_create_pipe_connection(loop, c->Protocol(), c, name.c_str(),
                                          nullptr, &c->connect_future));
    int rc = Await(loop, c->connect_future);
    if (later && rc == 0) // handed over before the cancel (named pipes):
      proa_transport_close(c->t); // the caller's, as asyncio has it
    else
      EXPECT_EQ(PROA_ECANCELED, rc) << proa_err_name(rc);
    ASSERT_TRUE(Until([&] { return c->lost == 1; }))
        << "the cancelled connection stayed open";
  }
  size_t n = srv->conns.size();
  ASSERT_TRUE(Until([&] {
    size_t gone = 0;
    for (auto &conn : srv->conns)
      gone += conn->lost == 1;
    return gone == n;
  })) << "the server still holds a cancelled connection";
}

TEST_F(PipeOverUnix, ConnectionWithoutAServerIsEnoent) {
  int rc = ConnectToNobody();
  EXPECT_EQ(PROA_ENOENT, rc) << proa_err_name(rc);
}

TEST_F(PipeOverUnix, BadNames) {
  Server *srv = NewServer();
  proa_future *f = nullptr;
  const proa_protocol_factory factory = Server::Factory;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_pipe_server(loop, factory, srv, nullptr, nullptr, &f));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_pipe_server(loop, factory, srv, "", nullptr, &f));
  std::string longname(300, 'n');
  EXPECT_EQ(PROA_ENAMETOOLONG,
            proa_create_pipe_server(loop, factory, srv, longname.c_str(),
                                    nullptr, &f));
  Conn *c = NewConn();
  EXPECT_EQ(PROA_ENAMETOOLONG, proa_create_pipe_connection(
                                   loop, c->Protocol(), c, longname.c_str(),
                                   nullptr, &c->connect_future));
  proa_pipe_connect_options co = PROA_PIPE_CONNECT_OPTIONS_INIT;
  co.busy_timeout = -1;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_pipe_connection(loop, c->Protocol(), c, "x", &co,
                                        &c->connect_future));
#ifdef _WIN32
  EXPECT_EQ(PROA_EINVAL,
            proa_create_pipe_server(loop, factory, srv, "a\\b", nullptr, &f));
#endif
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(nullptr, c->connect_future);
}

TEST_F(PipeOverUnix, StreamsEcho) {
  std::string name = PipeName();
  proa_server *srv = StartServerWith(
      [this, &name](proa_stream_handler h, void *arg, proa_future **f) {
        return proa_start_pipe_server(loop, h, arg, name.c_str(), nullptr, 0,
                                      f);
      },
      [](proa_stream *s) {
        std::string data;
        int rc2 = proa_task_test::ReadExactly(s, 5, &data);
        return rc2 != 0 ? rc2 : proa_task_test::WriteDrain(s, data + "!");
      });
  ASSERT_NE(nullptr, srv);
  proa_stream *s = OpenWith([this, &name](proa_future **f) {
    return proa_open_pipe_connection(loop, name.c_str(), nullptr, 0, f);
  });
  ASSERT_NE(nullptr, s);
  std::string got;
  proa_future *t = SpawnV([s, &got] {
    EXPECT_EQ(0, proa_task_test::WriteDrain(s, "hello"));
    EXPECT_EQ(0, proa_task_test::ReadExactly(s, 6, &got));
  });
  EXPECT_EQ(0, Finish(t));
  proa_future_unref(t);
  EXPECT_EQ("hello!", got);
}

} // namespace
