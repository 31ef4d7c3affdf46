// TCP under load: a thousand concurrent connections exchanging checksummed
// streams of random sizes, repeated flow-control cycles, and many short
// connections that must not leak descriptors.
#include "net_test.h"

#include <cmath>

#if defined(__linux__)
#include <dirent.h>
#endif
#ifndef _WIN32
#include <sys/resource.h>
#endif

using namespace proa_net_test;

namespace {

class tcpStress : public NetTest {};

#ifndef _WIN32
// Raises the soft descriptor limit to `want` (at most the hard limit) and
// returns the limit now in force.
rlim_t RaiseFdLimit(rlim_t want) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur < want) {
    rl.rlim_cur =
        rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}
#endif

#if defined(__linux__)
int OpenFds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr)
    return -1;
  while (struct dirent *e = readdir(d))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; // the directory's own descriptor
}
#endif

TEST_F(tcpStress, ThousandConcurrentConnections) {
  size_t n = 1000;
#ifndef _WIN32
  // Two descriptors per connection (both ends live in this process).
  rlim_t limit = RaiseFdLimit(2 * n + 256);
  if (limit < 2 * n + 256) {
    n = limit > 356 ? static_cast<size_t>((limit - 256) / 2) : 50;
    std::printf("note: RLIMIT_NOFILE hard limit %llu: %zu connections\n",
                static_cast<unsigned long long>(limit), n);
  }
#endif
  Server *srv = NewServer();
  srv->configure = [](Conn &c) {
    c.echo = true;              // with back-pressure: pause reading while
    c.echo_close_on_eof = true; // the echo is above the high-water mark
  };
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.backlog = static_cast<int>(n) + 64; // no SYN is dropped and retried
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0, &o));

  // Sizes from 1 byte to 1 MiB, log-uniform (mean about 75 KiB), so that
  // the total stays near 75 MiB each way; fixed seed, same run every time.
  Rng rng(20240601);
  uint64_t total = 0;
  std::vector<Conn *> cs;
  for (size_t i = 0; i < n; i++) {
    double u = static_cast<double>(rng.Next() >> 11) / 9007199254740992.0;
    uint64_t size = static_cast<uint64_t>(std::exp(u * std::log(1048576.0)));
    size = std::max<uint64_t>(1, std::min<uint64_t>(size, 1048576));
    Conn *c = NewConn("client#" + std::to_string(i));
    c->verify = true;
    c->seed = c->send_seed = i + 1;
    c->send_total = size;
    c->piece = static_cast<size_t>(rng.Range(1, 65536));
    c->eof_when_sent = true;
    total += size;
    cs.push_back(c);
  }
  ASSERT_LE(total, 200u * 1024 * 1024);
  for (Conn *c : cs)
    ASSERT_EQ(0, StartConnect(c, "127.0.0.1", srv->port));
  bool done = Until(
      [&] {
        for (Conn *c : cs)
          if (!c->lost && !(c->connect_future != nullptr &&
                            proa_future_done(c->connect_future) &&
                            proa_future_error(c->connect_future) != 0))
            return false;
        return true;
      },
      50.0);
  size_t finished = 0;
  for (Conn *c : cs)
    finished += c->lost != 0;
  ASSERT_TRUE(done) << finished << " of " << n << " connections finished";

  size_t bad = 0;
  uint64_t echoed = 0;
  for (Conn *c : cs) {
    int err = proa_future_error(c->connect_future);
    bool ok = err == 0 && c->received == c->send_total && c->mismatches == 0 &&
              c->eofs == 1 && c->lost_error == 0 && c->write_error == 0;
    if (!ok && bad++ < 5)
      ADD_FAILURE() << c->name << ": connect " << proa_err_name(err)
                    << ", sent " << c->send_total << ", received "
                    << c->received << ", mismatches " << c->mismatches
                    << " (first at " << c->first_mismatch << "), eofs "
                    << c->eofs << ", lost " << proa_err_name(c->lost_error)
                    << ", write " << proa_err_name(c->write_error)
                    << ", events " << c->events;
    echoed += c->received;
  }
  EXPECT_EQ(0u, bad) << "connections with lost, extra or reordered bytes";
  EXPECT_EQ(total, echoed);
  ASSERT_TRUE(Until([&] { return srv->Lost() == n; }));
  ASSERT_EQ(n, srv->conns.size());
  uint64_t server_received = 0;
  for (auto &sc : srv->conns) {
    server_received += sc->received;
    EXPECT_EQ(0, sc->lost_error) << sc->name;
    EXPECT_EQ(0, sc->write_error) << sc->name;
  }
  EXPECT_EQ(total, server_received);
  std::printf("%zu connections, %.1f MiB each way\n", n,
              static_cast<double>(total) / 1048576.0);
}

TEST_F(tcpStress, FlowControlCycles) {
  // A reader that keeps stopping for a moment: the writer is paused and
  // resumed many times, always in pairs, and no byte is lost.
  struct Stops {
    uint64_t next = 256 * 1024;
    int count = 0;
  };
  auto stops = std::make_shared<Stops>();
  Server *srv = LocalServer([stops](Conn &c) {
    c.verify = true;
    c.seed = 4;
    c.on_made = [](Conn &s) {
      RawSmallBuffers(proa_transport_socket(s.t));
      s.PauseReading(); // the first pause is certain
      EXPECT_EQ(0, proa_call_later(
                       s.loop, 0.02,
                       [](void *arg) {
                         Conn *self = static_cast<Conn *>(arg);
                         if (!self->lost)
                           self->ResumeReading();
                       },
                       &s, nullptr));
    };
    c.on_data = [stops](Conn &s, const uint8_t *, size_t) {
      if (s.received < stops->next || s.user_paused_reading)
        return;
      stops->next += 256 * 1024;
      stops->count++;
      s.PauseReading();
      EXPECT_EQ(0, proa_call_later(
                       s.loop, 0.002,
                       [](void *arg) {
                         Conn *self = static_cast<Conn *>(arg);
                         if (!self->lost)
                           self->ResumeReading();
                       },
                       &s, nullptr));
    };
  });
  Conn *c = NewConn();
  c->send_seed = 4;
  c->send_total = 8 * 1024 * 1024;
  c->piece = 32 * 1024;
  c->on_made = [](Conn &self) {
    RawSmallBuffers(proa_transport_socket(self.t));
  };
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(
      Until([&] { return srv->conns.size() == 1 && srv->conns[0]->eofs == 1; },
            40.0));
  Conn *s = srv->conns[0].get();
  EXPECT_EQ(c->send_total, s->received);
  EXPECT_EQ(0u, s->mismatches) << "first bad byte at " << s->first_mismatch;
  EXPECT_EQ(0u, s->data_while_paused);
  EXPECT_GE(c->pauses, 1);
  EXPECT_EQ(c->pauses, c->resumes);
  EXPECT_FALSE(c->bad_flow_order) << c->events;
  EXPECT_GT(stops->count, 0);
  std::printf("%d pause/resume pairs, %d reader stops\n", c->pauses,
              stops->count);
}

TEST_F(tcpStress, ManyShortConnectionsLeakNoDescriptors) {
  Server *srv = LocalServer([](Conn &c) { c.echo = true; });
#if defined(__linux__)
  int before = OpenFds();
  ASSERT_GT(before, 0);
#endif
  const int rounds = 100;
  for (int i = 0; i < rounds; i++) {
    Conn *c = NewConn("client#" + std::to_string(i));
    c->keep_data = true;
    ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
    std::string msg = "round " + std::to_string(i);
    ASSERT_EQ(0, proa_transport_write(c->t, msg.data(), msg.size()));
    ASSERT_TRUE(Until([&] { return c->data == msg; }));
    // Alternate the closing side, and close with and without flushing.
    if (i % 3 == 0)
      proa_transport_close(c->t);
    else if (i % 3 == 1)
      proa_transport_abort(c->t);
    else
      proa_transport_close(srv->conns.back()->t);
    ASSERT_TRUE(Until([&] {
      return c->lost && srv->conns.size() == static_cast<size_t>(i + 1) &&
             srv->conns.back()->lost;
    }));
  }
  RunIterations(loop, 3);
#if defined(__linux__)
  EXPECT_EQ(before, OpenFds()) << "descriptors leaked by closed connections";
#endif
}

} // namespace
