// Helpers for the network tests (TCP, resolver, executor): running the loop
// until a condition holds, a recording stream protocol, a test server, byte
// patterns that expose loss and reordering, and a few plain-socket calls.
#ifndef PROA_NET_TEST_H
#define PROA_NET_TEST_H

#include "proa_test.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace proa_net_test {

// ---- running the loop ----

struct Until {
  proa_loop *loop;
  const std::function<bool()> *pred;
  proa_handle *h;
  bool met;
};

inline void UntilCheck(void *arg) {
  Until *u = static_cast<Until *>(arg);
  proa_handle_unref(u->h);
  u->h = nullptr;
  if ((*u->pred)()) {
    u->met = true;
    proa_loop_stop(u->loop);
    return;
  }
  // Checked every millisecond; the loop sleeps in its poller meanwhile.
  EXPECT_EQ(0, proa_call_later(u->loop, 0.001, UntilCheck, u, &u->h));
}

// Runs the loop until pred() holds (true) or `seconds` pass (false; the
// caller reports what it was waiting for).
inline bool RunUntil(proa_loop *loop, const std::function<bool()> &pred,
                     double seconds = 10.0) {
  if (pred())
    return true;
  Until u = {loop, &pred, nullptr, false};
  if (proa_call_soon(loop, UntilCheck, &u, &u.h) != 0)
    return false;
  bool fired = false;
  proa_test::RunWithWatchdog(loop, seconds, &fired);
  if (u.h != nullptr) {
    proa_handle_cancel(u.h);
    proa_handle_unref(u.h);
  }
  return u.met || pred();
}

// Runs the loop until `f` is done; returns its error (0 for a result), or
// PROA_ETIMEDOUT when it is still pending after `seconds`.
inline int Await(proa_loop *loop, proa_future *f, double seconds = 10.0) {
  if (!RunUntil(
          loop, [f] { return proa_future_done(f); }, seconds))
    return PROA_ETIMEDOUT;
  return proa_future_error(f);
}

// Runs `n` loop iterations (each polls once without blocking).
inline void RunIterations(proa_loop *loop, int n) {
  for (int i = 0; i < n; i++)
    ASSERT_EQ(0, proa_test::RunOnce(loop));
}

// ---- byte patterns ----

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The bytes [pos, pos + n) of the stream named `seed`: every byte depends
// on its position, so a lost, repeated or reordered byte shows.
inline void FillPattern(uint64_t seed, uint64_t pos, uint8_t *out, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t p = pos + i;
    uint64_t block = SplitMix64(seed * 0x100000001B3ull ^ (p >> 3));
    unsigned k = static_cast<unsigned>(p & 7);
    for (; k < 8 && i < n; k++, i++)
      out[i] = static_cast<uint8_t>(block >> (8 * k));
  }
}

inline std::vector<uint8_t> Pattern(uint64_t seed, uint64_t pos, size_t n) {
  std::vector<uint8_t> v(n);
  FillPattern(seed, pos, v.data(), n);
  return v;
}

// A small deterministic generator for sizes (not for security).
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t Next() { return SplitMix64(state++); }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) {
    return lo + Next() % (hi - lo + 1);
  }
};

// ---- a recording stream protocol ----

enum Ev : char {
  kMade = 'M',
  kData = 'D', // consecutive deliveries are recorded once
  kEof = 'E',
  kLost = 'L',
  kPause = 'P',
  kResume = 'R'
};

// One side of a connection: records every callback, checks the bytes
// against a pattern, and can echo, produce a pattern stream with flow
// control, or run hooks. The transport is referenced from connection_made
// until the Conn is destroyed.
struct Conn {
  std::string name;
  proa_loop *loop = nullptr;

  // ---- behaviour ----
  bool eof_keep_open = false;     // eof_received's answer (unless on_eof)
  bool echo = false;              // write back everything that arrives
  bool echo_close_on_eof = false; // echo: on EOF keep open, then close()
  bool keep_data = false;         // store what arrives in `data`
  bool verify = false;            // compare arrivals with Pattern(seed)
  uint64_t seed = 0;
  bool buffered = false;  // get_buffer/buffer_updated instead of data
  size_t buffer_size = 0; // the buffered protocol's buffer (0: the hint)
  std::function<void(Conn &, const uint8_t *, size_t)> on_data;
  std::function<bool(Conn &)> on_eof;
  std::function<void(Conn &)> on_made, on_lost, on_pause, on_resume;

  // ---- the producer: sends Pattern(send_seed) in pieces, with flow
  // control (stops above the high-water mark, goes on after
  // resume_writing) ----
  uint64_t send_total = 0, sent = 0, send_seed = 0;
  size_t piece = 16384;
  bool eof_when_sent = false;   // write_eof once everything is queued
  bool close_when_sent = false; // close once everything is queued
  bool producer_done = false;
  int write_error = 0; // the first write error the producer saw

  // ---- what happened ----
  proa_transport *t = nullptr; // referenced in connection_made
  std::string events;
  int made = 0, eofs = 0, lost = 0, pauses = 0, resumes = 0;
  int lost_error = 1;  // 1: not lost yet
  int after_lost = 0;  // callbacks after connection_lost (must stay 0)
  int before_made = 0; // callbacks before connection_made (must stay 0)
  uint64_t received = 0;
  size_t deliveries = 0;
  size_t mismatches = 0; // deliveries that differed from the pattern
  uint64_t first_mismatch = UINT64_MAX;
  std::string data;
  bool user_paused_reading = false;
  size_t data_while_paused = 0; // deliveries between pause and resume
  bool write_paused = false;    // between pause_writing and resume_writing
  size_t wbuf_at_pause = 0, wbuf_at_resume = SIZE_MAX;
  bool bad_flow_order = false;           // pause while paused, resume while not
  proa_future *connect_future = nullptr; // set by the test before made
  bool future_done_at_made = false;
  std::vector<uint8_t> buf; // the buffered protocol's buffer
  size_t last_buffer_size = 0;
  size_t buffer_overruns = 0; // buffer_updated(n) with n > the size

  ~Conn() {
    if (connect_future != nullptr) {
      proa_future_error(connect_future); // retrieved: nothing to report
      proa_future_unref(connect_future);
    }
    if (t != nullptr)
      proa_transport_unref(t);
  }

  const proa_protocol *Protocol() const;

  void Record(Ev e) {
    if (e == kData && !events.empty() && events.back() == kData)
      return;
    events += static_cast<char>(e);
  }
  void Enter() {
    if (lost)
      after_lost++;
  }

  void PauseReading() {
    user_paused_reading = true;
    EXPECT_EQ(0, proa_transport_pause_reading(t));
  }
  void ResumeReading() {
    user_paused_reading = false;
    EXPECT_EQ(0, proa_transport_resume_reading(t));
  }

  void Bytes(const uint8_t *p, size_t n) {
    if (!made)
      before_made++;
    Record(kData);
    deliveries++;
    if (user_paused_reading)
      data_while_paused++;
    if (verify) {
      std::vector<uint8_t> want = Pattern(seed, received, n);
      if (std::memcmp(want.data(), p, n) != 0) {
        mismatches++;
        if (first_mismatch == UINT64_MAX)
          for (size_t i = 0; i < n; i++)
            if (want[i] != p[i]) {
              first_mismatch = received + i;
              break;
            }
      }
    }
    if (keep_data)
      data.append(reinterpret_cast<const char *>(p), n);
    received += n;
    if (echo) {
      int rc = proa_transport_write(t, p, n);
      if (rc != 0 && write_error == 0)
        write_error = rc;
    }
    if (on_data)
      on_data(*this, p, n);
  }

  size_t High() const {
    size_t low = 0, high = 0;
    proa_transport_get_write_buffer_limits(t, &low, &high);
    return high;
  }

  static void RepumpCb(void *arg) { static_cast<Conn *>(arg)->Pump(); }

  // Queues pattern bytes until done, paused, or above the high-water mark.
  // pause_writing is scheduled, never called from inside write, so above
  // the mark the producer yields once: if pause_writing was on its way it
  // has run by then (FIFO), otherwise the buffer drained and it goes on.
  void Pump() {
    if (t == nullptr || lost || producer_done || write_error != 0)
      return;
    std::vector<uint8_t> chunk;
    while (sent < send_total && !write_paused) {
      size_t n =
          static_cast<size_t>(std::min<uint64_t>(piece, send_total - sent));
      chunk.resize(n);
      FillPattern(send_seed, sent, chunk.data(), n);
      int rc = proa_transport_write(t, chunk.data(), n);
      if (rc != 0) {
        write_error = rc;
        return;
      }
      sent += n;
      if (sent < send_total &&
          proa_transport_get_write_buffer_size(t) > High()) {
        EXPECT_EQ(0, proa_call_soon(loop, RepumpCb, this, nullptr));
        return;
      }
    }
    if (sent == send_total) {
      producer_done = true;
      if (eof_when_sent) {
        EXPECT_EQ(0, proa_transport_write_eof(t));
      }
      if (close_when_sent)
        proa_transport_close(t);
    }
  }

  // ---- the callbacks ----

  static void OnMade(void *self, proa_transport *tr) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    c->Record(kMade);
    c->made++;
    if (c->t == nullptr)
      c->t = proa_transport_ref(tr);
    c->loop = proa_transport_loop(tr);
    if (c->connect_future != nullptr)
      c->future_done_at_made = proa_future_done(c->connect_future);
    if (c->on_made)
      c->on_made(*c);
    if (c->send_total > 0)
      c->Pump();
  }
  static void OnData(void *self, const void *data, size_t len) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    c->Bytes(static_cast<const uint8_t *>(data), len);
  }
  static bool OnEof(void *self) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    if (!c->made)
      c->before_made++;
    c->Record(kEof);
    c->eofs++;
    if (c->on_eof)
      return c->on_eof(*c);
    if (c->echo_close_on_eof) {
      proa_transport_close(c->t); // flushes the echo first
      return true;
    }
    return c->eof_keep_open;
  }
  static void OnLost(void *self, int error) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    if (!c->made)
      c->before_made++;
    c->Record(kLost);
    c->lost++;
    c->lost_error = error;
    if (c->on_lost)
      c->on_lost(*c);
  }
  static void OnPause(void *self) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    c->Record(kPause);
    c->pauses++;
    if (c->write_paused)
      c->bad_flow_order = true;
    c->write_paused = true;
    c->wbuf_at_pause = proa_transport_get_write_buffer_size(c->t);
    if (c->echo) // back-pressure: stop reading what we cannot send
      proa_transport_pause_reading(c->t);
    if (c->on_pause)
      c->on_pause(*c);
  }
  static void OnResume(void *self) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    c->Record(kResume);
    c->resumes++;
    if (!c->write_paused)
      c->bad_flow_order = true;
    c->write_paused = false;
    c->wbuf_at_resume = proa_transport_get_write_buffer_size(c->t);
    if (c->echo && !c->user_paused_reading)
      proa_transport_resume_reading(c->t);
    if (c->on_resume)
      c->on_resume(*c);
    if (c->send_total > 0)
      c->Pump();
  }
  static void *OnGetBuffer(void *self, size_t hint, size_t *size) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    size_t n = c->buffer_size != 0 ? c->buffer_size : hint;
    if (c->buf.size() < n)
      c->buf.resize(n);
    c->last_buffer_size = n;
    *size = n;
    return c->buf.data();
  }
  static void OnBufferUpdated(void *self, size_t n) {
    Conn *c = static_cast<Conn *>(self);
    c->Enter();
    if (n > c->last_buffer_size)
      c->buffer_overruns++;
    c->Bytes(c->buf.data(), n);
  }
};

inline const proa_protocol kConnProtocol = {
    Conn::OnMade,  Conn::OnData,   Conn::OnEof, Conn::OnLost,
    Conn::OnPause, Conn::OnResume, nullptr,     nullptr};

inline const proa_protocol kConnBufferedProtocol = {
    Conn::OnMade,  nullptr,        Conn::OnEof,       Conn::OnLost,
    Conn::OnPause, Conn::OnResume, Conn::OnGetBuffer, Conn::OnBufferUpdated};

inline const proa_protocol *Conn::Protocol() const {
  return buffered ? &kConnBufferedProtocol : &kConnProtocol;
}

// The contract of stream.h on one connection: connection_made first and
// once, at most one EOF, exactly one connection_lost and nothing after it,
// pause/resume_writing alternating.
inline void ExpectWellOrdered(const Conn &c) {
  SCOPED_TRACE("connection " + c.name + ", events " + c.events);
  EXPECT_EQ(1, c.made);
  EXPECT_EQ(1, c.lost);
  EXPECT_EQ(0, c.after_lost);
  EXPECT_EQ(0, c.before_made);
  EXPECT_LE(c.eofs, 1);
  EXPECT_FALSE(c.bad_flow_order);
  EXPECT_LE(c.resumes, c.pauses);
  EXPECT_GE(c.resumes + 1, c.pauses);
  if (!c.events.empty()) {
    EXPECT_EQ(kMade, c.events.front());
    EXPECT_EQ(kLost, c.events.back());
  }
  size_t eof = c.events.find(kEof);
  if (eof != std::string::npos) {
    EXPECT_EQ(std::string::npos, c.events.find(kData, eof))
        << "data after eof_received";
  }
}

// ---- a test server: one Conn per accepted connection ----

struct Server;

// A client that sent a pattern and then write_eof, to a server that echoed
// everything and closed on EOF: the whole echo, then EOF, on both ends.
inline void ExpectEchoedWithHalfClose(const Conn &c, const Server &srv);

struct Server {
  std::function<void(Conn &)> configure; // called for each new Conn
  int factory_error = 0;                 // the factory refuses with this
  int factory_calls = 0;
  std::vector<std::unique_ptr<Conn>> conns;
  proa_server *s = nullptr; // referenced
  int port = 0;             // of the first listening socket

  ~Server() {
    if (s != nullptr)
      proa_server_unref(s);
  }

  static int Factory(void *arg, const proa_protocol **protocol, void **self) {
    Server *srv = static_cast<Server *>(arg);
    srv->factory_calls++;
    if (srv->factory_error != 0)
      return srv->factory_error;
    srv->conns.emplace_back(new Conn);
    Conn *c = srv->conns.back().get();
    c->name = "server#" + std::to_string(srv->conns.size());
    if (srv->configure)
      srv->configure(*c);
    *protocol = c->Protocol();
    *self = c;
    return 0;
  }

  size_t Lost() const {
    size_t n = 0;
    for (const auto &c : conns)
      n += c->lost != 0;
    return n;
  }
};

inline void ExpectEchoedWithHalfClose(const Conn &c, const Server &srv) {
  EXPECT_EQ(c.send_total, c.received);
  EXPECT_EQ(0u, c.mismatches);
  EXPECT_EQ("MDEL", c.events);
  EXPECT_EQ(0, c.lost_error);
  ASSERT_EQ(1u, srv.conns.size());
  EXPECT_EQ("MDEL", srv.conns[0]->events);
  EXPECT_EQ(0, srv.conns[0]->lost_error);
}

// ---- plain sockets (for opts.sock, SO_LINGER resets, buffer sizes) ----

inline void RawInit() {
#ifdef _WIN32
  static bool done = [] {
    WSADATA d;
    return WSAStartup(MAKEWORD(2, 2), &d) == 0;
  }();
  (void)done;
#endif
}

// A TCP socket of PROA_AF_* `family`, or -1.
inline intptr_t RawSocket(int family) {
  RawInit();
#ifdef _WIN32
  SOCKET s = socket(family == PROA_AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM,
                    IPPROTO_TCP);
  return s == INVALID_SOCKET ? -1 : static_cast<intptr_t>(s);
#else
  return socket(family == PROA_AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
#endif
}

inline void RawClose(intptr_t s) {
#ifdef _WIN32
  closesocket(static_cast<SOCKET>(s));
#else
  close(static_cast<int>(s));
#endif
}

inline const sockaddr *RawAddr(const proa_sockaddr &a) {
  return reinterpret_cast<const sockaddr *>(a.storage);
}

inline int RawBind(intptr_t s, const proa_sockaddr &a) {
#ifdef _WIN32
  return bind(static_cast<SOCKET>(s), RawAddr(a), a.len);
#else
  return bind(static_cast<int>(s), RawAddr(a), static_cast<socklen_t>(a.len));
#endif
}

inline int RawConnect(intptr_t s, const proa_sockaddr &a) {
#ifdef _WIN32
  return connect(static_cast<SOCKET>(s), RawAddr(a), a.len);
#else
  return connect(static_cast<int>(s), RawAddr(a),
                 static_cast<socklen_t>(a.len));
#endif
}

inline int RawSockname(intptr_t s, proa_sockaddr *out) {
#ifdef _WIN32
  int len = static_cast<int>(sizeof out->storage);
  int rc = getsockname(static_cast<SOCKET>(s),
                       reinterpret_cast<sockaddr *>(out->storage), &len);
#else
  socklen_t len = sizeof out->storage;
  int rc = getsockname(static_cast<int>(s),
                       reinterpret_cast<sockaddr *>(out->storage), &len);
#endif
  out->len = static_cast<int>(len);
  return rc;
}

inline int RawSetInt(intptr_t s, int level, int name, int value) {
#ifdef _WIN32
  return setsockopt(static_cast<SOCKET>(s), level, name,
                    reinterpret_cast<const char *>(&value), sizeof value);
#else
  return setsockopt(static_cast<int>(s), level, name, &value, sizeof value);
#endif
}

// SO_LINGER {1, 0}: closing the socket sends a reset instead of a FIN.
inline int RawSetLingerReset(intptr_t s) {
  linger l;
  l.l_onoff = 1;
  l.l_linger = 0;
#ifdef _WIN32
  return setsockopt(static_cast<SOCKET>(s), SOL_SOCKET, SO_LINGER,
                    reinterpret_cast<const char *>(&l), sizeof l);
#else
  return setsockopt(static_cast<int>(s), SOL_SOCKET, SO_LINGER, &l, sizeof l);
#endif
}

// Small kernel buffers, so that a few hundred KiB fill a connection.
inline void RawSmallBuffers(intptr_t s) {
  RawSetInt(s, SOL_SOCKET, SO_SNDBUF, 32 * 1024);
  RawSetInt(s, SOL_SOCKET, SO_RCVBUF, 32 * 1024);
}

// Whether this host has an IPv6 loopback (::1 can be bound).
inline bool HaveIPv6Loopback() {
  static const bool have = [] {
    proa_sockaddr a;
    if (proa_sockaddr_from_ip(&a, "::1", 0) != 0)
      return false;
    intptr_t s = RawSocket(PROA_AF_INET6);
    if (s == -1)
      return false;
    bool ok = RawBind(s, a) == 0;
    RawClose(s);
    return ok;
  }();
  return have;
}

inline std::string Format(const proa_sockaddr &a) {
  char buf[64];
  int n = proa_sockaddr_format(&a, buf, sizeof buf);
  return n < 0 ? std::string("<") + proa_err_name(n) + ">" : std::string(buf);
}

// ---- the fixture ----

// A loop with an exception handler that records every report (a report
// the test did not expect fails it), and helpers for servers and clients.
// TearDown closes the servers, aborts what is still connected, waits for
// every connection_lost, then frees everything before the loop.
class NetTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(0, proa_loop_new(&loop));
    exc.Attach(loop);
  }

  void TearDown() override {
    if (loop == nullptr)
      return;
    for (auto &srv : servers)
      if (srv->s != nullptr)
        proa_server_close(srv->s);
    for (auto &c : clients)
      if (c->connect_future != nullptr && !proa_future_done(c->connect_future))
        proa_future_cancel(c->connect_future, nullptr);
    auto abort_open = [](Conn &c) {
      if (c.t != nullptr && !c.lost)
        proa_transport_abort(c.t);
    };
    for (auto &c : clients)
      abort_open(*c);
    for (auto &srv : servers)
      for (auto &c : srv->conns)
        abort_open(*c);
    EXPECT_TRUE(RunUntil(
        loop,
        [this] {
          for (auto &c : clients)
            if ((c->t != nullptr && !c->lost) ||
                (c->connect_future != nullptr &&
                 !proa_future_done(c->connect_future)))
              return false;
          for (auto &srv : servers)
            if (srv->Lost() != srv->conns.size())
              return false;
          return true;
        },
        10.0))
        << "connections still open at the end of the test";
    RunIterations(loop, 3); // listeners close once their accept completed
    auto check = [](const Conn &c) {
      if (c.made != 0)
        ExpectWellOrdered(c);
      else
        EXPECT_EQ("", c.events) << c.name
                                << ": callbacks without "
                                   "connection_made";
    };
    for (auto &c : clients)
      check(*c);
    for (auto &srv : servers)
      for (auto &c : srv->conns)
        check(*c);
    if (!allow_exceptions) {
      for (const auto &ctx : exc.Calls())
        ADD_FAILURE() << "unexpected report to the exception handler: "
                      << ctx.message << " (" << proa_err_name(ctx.error) << ": "
                      << ctx.error_message << ")";
    }
    clients.clear();
    servers.clear();
    // Everything was closed and released above: a close in debug mode,
    // which names every socket owner still registered, must log nothing.
    // (A connection attempt or a server the library forgot to free shows
    // up here rather than as a leak, since the close frees it.)
    proa_test::LogCapture log;
    log.Attach(loop);
    proa_loop_set_debug(loop, true);
    EXPECT_EQ(0, proa_loop_close(loop));
    EXPECT_EQ(0u, log.Entries().size()) << "left open when the loop closed:\n"
                                        << log.Dump();
    proa_loop_set_log_sink(loop, nullptr, nullptr);
    EXPECT_EQ(0, proa_loop_free(loop));
    loop = nullptr;
  }

  Conn *NewConn(const std::string &name = "client") {
    clients.emplace_back(new Conn);
    clients.back()->name = name;
    clients.back()->loop = loop;
    return clients.back().get();
  }

  Server *NewServer() {
    servers.emplace_back(new Server);
    return servers.back().get();
  }

  // create_server, awaited: 0 and srv->s / srv->port set, or the error.
  int Listen(Server *srv, const char *host, int port,
             const proa_server_options *opts = nullptr,
             std::string *message = nullptr) {
    proa_future *f = nullptr;
    int rc =
        proa_create_server(loop, Server::Factory, srv, host, port, opts, &f);
    if (rc != 0)
      return rc;
    rc = Await(loop, f);
    if (message != nullptr) {
      const char *m = proa_future_error_message(f);
      *message = m != nullptr ? m : "";
    }
    if (rc == 0) {
      void *v = nullptr;
      EXPECT_EQ(0, proa_future_result(f, &v));
      srv->s = proa_server_ref(static_cast<proa_server *>(v));
      proa_sockaddr a;
      if (proa_server_socket_count(srv->s) > 0 &&
          proa_server_sockname(srv->s, 0, &a) == 0)
        srv->port = proa_sockaddr_port(&a);
    }
    proa_future_unref(f);
    return rc;
  }

  // An echo-less server on 127.0.0.1 with a free port.
  Server *LocalServer(const std::function<void(Conn &)> &configure = {}) {
    Server *srv = NewServer();
    srv->configure = configure;
    int rc = Listen(srv, "127.0.0.1", 0);
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    EXPECT_GT(srv->port, 0);
    return srv;
  }

  // Starts create_connection; c->connect_future is the future.
  int StartConnect(Conn *c, const char *host, int port,
                   const proa_connect_options *opts = nullptr) {
    return proa_create_connection(loop, c->Protocol(), c, host, port, opts,
                                  &c->connect_future);
  }

  // create_connection, awaited. Returns 0 (c->t is the transport) or the
  // error; *message receives the future's message.
  int Connect(Conn *c, const char *host, int port,
              const proa_connect_options *opts = nullptr,
              std::string *message = nullptr) {
    int rc = StartConnect(c, host, port, opts);
    if (rc != 0)
      return rc;
    rc = Await(loop, c->connect_future);
    if (message != nullptr) {
      const char *m = proa_future_error_message(c->connect_future);
      *message = m != nullptr ? m : "";
    }
    if (rc == 0) {
      void *v = nullptr;
      EXPECT_EQ(0, proa_future_result(c->connect_future, &v));
      EXPECT_EQ(c->t, v) << "the future's transport is not the one given "
                            "to connection_made";
    }
    return rc;
  }

  // Connects to host:port, where nothing should listen. A TCP self-connect
  // (the kernel chose `port` as the source port as well: about one connect
  // in 28,000 to a closed loopback port) reaches nobody else, so it is
  // aborted and tried again, twice at most. Returns the last attempt's
  // result; *last (if given) is its Conn.
  int ConnectToClosedPort(const char *host, int port,
                          std::string *message = nullptr,
                          Conn **last = nullptr) {
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
      Conn *c = NewConn("closed-port");
      if (last != nullptr)
        *last = c;
      rc = Connect(c, host, port, nullptr, message);
      if (rc != 0 || !SelfConnected(c->t))
        return rc;
      proa_transport_abort(c->t);
    }
    return rc;
  }

  static bool SelfConnected(proa_transport *t) {
    proa_sockaddr a, b;
    return proa_transport_sockname(t, &a) == 0 &&
           proa_transport_peername(t, &b) == 0 && a.len == b.len &&
           memcmp(a.storage, b.storage, static_cast<size_t>(a.len)) == 0;
  }

  // A connected pair over 127.0.0.1: client `c` and the server's conns[0].
  Conn *Pair(Server *srv, Conn *c) {
    size_t want = srv->conns.size() + 1;
    int rc = Connect(c, "127.0.0.1", srv->port);
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    if (rc != 0)
      return nullptr;
    EXPECT_TRUE(RunUntil(loop, [&] {
      return srv->conns.size() >= want && srv->conns.back()->made;
    })) << "the server never saw the connection";
    return srv->conns.size() >= want ? srv->conns.back().get() : nullptr;
  }

  bool Until(const std::function<bool()> &pred, double seconds = 10.0) {
    return RunUntil(loop, pred, seconds);
  }

  proa_loop *loop = nullptr;
  proa_test::ExceptionCapture exc;
  bool allow_exceptions = false;
  std::vector<std::unique_ptr<Conn>> clients;
  std::vector<std::unique_ptr<Server>> servers;
};

} // namespace proa_net_test

#endif // PROA_NET_TEST_H
