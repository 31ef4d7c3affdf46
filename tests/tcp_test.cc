// Tests of TCP: stream transports and protocols (stream.h), create_connection
// and create_server, over the loopback interface. The fixture checks the
// protocol contract on every connection at the end of each test: made first,
// at most one EOF, exactly one connection_lost and nothing after it.
#include "net_test.h"

#include <cstring>
#include <set>

#ifndef _WIN32
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#endif
#ifdef __linux__
#include <sched.h>
#endif

using namespace proa_net_test;

namespace {

// ---- helpers ----

// A loopback port nobody listens on. The socket stays bound (without
// listening) until the end of the scope, so that the port cannot become
// the source port of the connection under test: a connect to a free port
// can otherwise connect to itself (TCP simultaneous open).
struct UnusedPort {
  intptr_t s = -1;
  int port = 0;
  UnusedPort() {
    proa_sockaddr a;
    EXPECT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 0));
    s = RawSocket(PROA_AF_INET);
    EXPECT_NE(-1, s);
    EXPECT_EQ(0, RawBind(s, a));
    proa_sockaddr bound;
    EXPECT_EQ(0, RawSockname(s, &bound));
    port = proa_sockaddr_port(&bound);
  }
  ~UnusedPort() {
    if (s != -1)
      RawClose(s);
  }
};

int Write(Conn *c, const std::string &s) {
  return proa_transport_write(c->t, s.data(), s.size());
}

bool IsResetOrPipe(int err) {
  return err == PROA_ECONNRESET || err == PROA_EPIPE;
}

class tcp : public NetTest {
protected:
  // A server whose connections (small kernel buffers) do not read until
  // the test resumes them, and a client with small buffers connected to it:
  // a few MiB written by the client stay in its write queue.
  Conn *StalledPair(Conn *client, Server **out_srv = nullptr) {
    Server *srv = LocalServer([](Conn &c) {
      c.verify = true;
      c.seed = 1;
      c.on_made = [](Conn &s) {
        RawSmallBuffers(proa_transport_socket(s.t));
        s.PauseReading();
      };
    });
    if (out_srv != nullptr)
      *out_srv = srv;
    Conn *peer = Pair(srv, client);
    if (peer != nullptr)
      RawSmallBuffers(proa_transport_socket(client->t));
    return peer;
  }

  // Queues `n` pattern bytes (seed 1) on the client in 64 KiB writes.
  void WritePattern(Conn *c, size_t n) {
    std::vector<uint8_t> all = Pattern(1, 0, n);
    for (size_t off = 0; off < n; off += 65536) {
      size_t len = std::min<size_t>(65536, n - off);
      ASSERT_EQ(0, proa_transport_write(c->t, all.data() + off, len));
    }
  }
};

// ---- connection set-up ----

TEST_F(tcp, ConnectionMadeBeforeTheFutureCompletes) {
  Server *srv = LocalServer([](Conn &c) { c.keep_data = true; });
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  EXPECT_EQ(1, c->made);
  EXPECT_FALSE(c->future_done_at_made)
      << "the future completed before connection_made ran";
  ASSERT_TRUE(Until(
      [&] { return srv->conns.size() == 1 && srv->conns[0]->made == 1; }));
  EXPECT_EQ(loop, proa_transport_loop(c->t));
  EXPECT_EQ(c, proa_transport_get_protocol(c->t));
  EXPECT_TRUE(proa_transport_is_reading(c->t));
  EXPECT_FALSE(proa_transport_is_closing(c->t));
  EXPECT_TRUE(proa_transport_can_write_eof(c->t));

  ASSERT_EQ(0, Write(c, "hello"));
  Conn *s = srv->conns[0].get();
  ASSERT_TRUE(Until([&] { return s->data == "hello"; })) << s->data;
  proa_transport_close(c->t);
  // The server sees EOF, answers false, and closes: lost(0) on both sides.
  ASSERT_TRUE(Until([&] { return c->lost && s->lost; }));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(0, s->lost_error);
  EXPECT_EQ("MDEL", s->events);
  EXPECT_EQ("ML", c->events);
}

TEST_F(tcp, CloseInsideConnectionMade) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  c->on_made = [](Conn &self) {
    proa_transport_close(self.t);
    EXPECT_TRUE(proa_transport_is_closing(self.t));
  };
  // The future still completes with the (closing) transport.
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ("ML", c->events);
}

TEST_F(tcp, EchoKeepsEveryByteInOrder) {
  Server *srv = LocalServer([](Conn &c) {
    c.echo = true;
    c.echo_close_on_eof = true;
  });
  Conn *c = NewConn();
  c->verify = true;
  c->seed = 77;
  c->send_seed = 77;
  c->send_total = 3 * 1024 * 1024 + 17;
  c->piece = 10007; // not a power of two: pieces straddle the chunks
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return c->lost != 0; }, 30.0));
  EXPECT_EQ(c->send_total, c->received);
  EXPECT_EQ(0u, c->mismatches) << "first bad byte at " << c->first_mismatch;
  EXPECT_EQ(1, c->eofs);
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(0, c->write_error);
  ASSERT_EQ(1u, srv->conns.size());
  ASSERT_TRUE(Until([&] { return srv->conns[0]->lost != 0; }));
  EXPECT_EQ(c->send_total, srv->conns[0]->received);
  EXPECT_EQ(0, srv->conns[0]->lost_error);
}

// ---- EOF and half-close ----

TEST_F(tcp, EofReceivedFalseCloses) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  c->keep_data = true;
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  ASSERT_EQ(0, Write(s, "bye"));
  ASSERT_EQ(0, proa_transport_write_eof(s->t));
  // The client answers false: its transport closes, and the server (still
  // reading) then sees the client's EOF.
  ASSERT_TRUE(Until([&] { return c->lost && s->lost; }));
  EXPECT_EQ("bye", c->data);
  EXPECT_EQ("MDEL", c->events);
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(1, s->eofs);
  EXPECT_EQ(0, s->lost_error);
}

TEST_F(tcp, EofReceivedNullCallbackCloses) {
  Server *srv = LocalServer();
  static const proa_protocol nothing = {nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, nullptr, nullptr};
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_connection(loop, &nothing, nullptr, "127.0.0.1",
                                      srv->port, nullptr, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  proa_transport *t = proa_transport_ref(static_cast<proa_transport *>(v));
  proa_future_unref(f);
  ASSERT_TRUE(Until([&] { return srv->conns.size() == 1; }));
  Conn *s = srv->conns[0].get();
  ASSERT_TRUE(Until([&] { return s->made != 0; }));
  EXPECT_EQ(0, proa_transport_write(t, "x", 1));
  ASSERT_TRUE(Until([&] { return s->received == 1; }));
  proa_transport_close(s->t);
  // Without eof_received the client closes on EOF by itself.
  ASSERT_TRUE(Until([&] { return proa_transport_socket(t) == -1; }))
      << "a transport without eof_received stayed open after EOF";
  EXPECT_TRUE(proa_transport_is_closing(t));
  proa_transport_unref(t);
}

TEST_F(tcp, EofReceivedTrueKeepsTheConnectionHalfOpen) {
  Server *srv = LocalServer([](Conn &c) { c.keep_data = true; });
  Conn *c = NewConn();
  c->keep_data = true;
  c->eof_keep_open = true;
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  ASSERT_EQ(0, Write(s, "question"));
  ASSERT_EQ(0, proa_transport_write_eof(s->t));
  ASSERT_TRUE(Until([&] { return c->eofs == 1; }));
  EXPECT_EQ("question", c->data);
  RunIterations(loop, 5);
  EXPECT_FALSE(proa_transport_is_closing(c->t))
      << "eof_received returned true but the transport closed";
  EXPECT_EQ(0, c->lost);
  // Half-open: the client can still write, and the server receives it.
  ASSERT_EQ(0, Write(c, "answer"));
  ASSERT_TRUE(Until([&] { return s->data == "answer"; })) << s->data;
  EXPECT_EQ(0, s->eofs);
  proa_transport_close(c->t);
  ASSERT_TRUE(Until([&] { return c->lost && s->lost; }));
  EXPECT_EQ(1, s->eofs);
  EXPECT_EQ("MDEL", c->events);
  EXPECT_EQ("MDEL", s->events);
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(0, s->lost_error);
}

TEST_F(tcp, HalfCloseClientFirst) {
  // The client sends everything and shuts down its side; the server echoes
  // until EOF, then closes; the client reads the whole echo, then EOF.
  Server *srv = LocalServer([](Conn &c) {
    c.echo = true;
    c.echo_close_on_eof = true;
  });
  Conn *c = NewConn();
  c->verify = true;
  c->seed = c->send_seed = 9;
  c->send_total = 512 * 1024 + 3;
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return c->lost != 0 && srv->Lost() == 1; }));
  ExpectEchoedWithHalfClose(*c, *srv);
}

TEST_F(tcp, HalfCloseServerFirst) {
  // The server sends a stream and shuts down its side; the client keeps
  // the connection open on EOF, replies, and closes.
  Server *srv = LocalServer([](Conn &c) {
    c.keep_data = true;
    c.send_seed = 21;
    c.send_total = 300 * 1024;
    c.eof_when_sent = true;
  });
  Conn *c = NewConn();
  c->verify = true;
  c->seed = 21;
  c->on_eof = [](Conn &self) {
    EXPECT_EQ(0, proa_transport_write(self.t, "thanks", 6));
    proa_transport_close(self.t);
    return true;
  };
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] {
    return c->lost && srv->conns.size() == 1 && srv->conns[0]->lost;
  }));
  Conn *s = srv->conns[0].get();
  EXPECT_EQ(300u * 1024, c->received);
  EXPECT_EQ(0u, c->mismatches);
  EXPECT_EQ("thanks", s->data);
  EXPECT_EQ(1, s->eofs);
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(0, s->lost_error);
}

TEST_F(tcp, WriteEofFlushesTheBufferFirst) {
  Conn *c = NewConn();
  Server *srv = nullptr;
  Conn *s = StalledPair(c, &srv);
  ASSERT_NE(nullptr, s);
  const size_t n = 2 * 1024 * 1024;
  WritePattern(c, n);
  ASSERT_GT(proa_transport_get_write_buffer_size(c->t), 0u);
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  EXPECT_EQ(0, proa_transport_write_eof(c->t)) << "write_eof twice";
  EXPECT_FALSE(proa_transport_is_closing(c->t));
  EXPECT_TRUE(proa_transport_is_reading(c->t)) << "reading goes on";
  RunIterations(loop, 5);
  EXPECT_EQ(0, s->eofs);
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return s->eofs == 1; }));
  EXPECT_EQ(n, s->received) << "EOF before the whole buffer arrived";
  EXPECT_EQ(0u, s->mismatches);
  // The server closes on EOF; the client sees its EOF and closes too.
  ASSERT_TRUE(Until([&] { return c->lost && s->lost; }));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(1, c->eofs);
}

// ---- write errors and states ----

TEST_F(tcp, WriteAfterWriteEofIsEpipe) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  EXPECT_EQ(PROA_EPIPE, Write(c, "late"));
  proa_buf b = {"late", 4};
  EXPECT_EQ(PROA_EPIPE, proa_transport_writelines(c->t, &b, 1));
  EXPECT_TRUE(proa_transport_can_write_eof(c->t));
  EXPECT_EQ(0u, proa_transport_get_write_buffer_size(c->t));
}

TEST_F(tcp, WriteAfterCloseIsEclosed) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  EXPECT_FALSE(proa_transport_is_closing(c->t));
  proa_transport_close(c->t);
  EXPECT_TRUE(proa_transport_is_closing(c->t));
  EXPECT_FALSE(proa_transport_is_reading(c->t));
  EXPECT_EQ(PROA_ECLOSED, Write(c, "late"));
  proa_buf b = {"late", 4};
  EXPECT_EQ(PROA_ECLOSED, proa_transport_writelines(c->t, &b, 1));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_write_eof(c->t));
  proa_transport_close(c->t); // idempotent
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(PROA_ECLOSED, Write(c, "lost"));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_write_eof(c->t));
  proa_transport_close(c->t);
  proa_transport_abort(c->t);
  EXPECT_TRUE(proa_transport_is_closing(c->t));
  RunIterations(loop, 3);
  EXPECT_EQ(1, c->lost);
}

TEST_F(tcp, WriteBadArgumentsAndEmptyWrites) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  EXPECT_EQ(PROA_EINVAL, proa_transport_write(c->t, nullptr, 5));
  EXPECT_EQ(PROA_EINVAL, proa_transport_writelines(c->t, nullptr, 2));
  EXPECT_EQ(0, proa_transport_write(c->t, nullptr, 0));
  EXPECT_EQ(0, proa_transport_write(c->t, "x", 0));
  EXPECT_EQ(0, proa_transport_writelines(c->t, nullptr, 0));
  EXPECT_EQ(0u, proa_transport_get_write_buffer_size(c->t));
  RunIterations(loop, 3);
  EXPECT_EQ(0u, srv->conns[0]->received);
}

TEST_F(tcp, WritelinesSendsTheBuffersInOrder) {
  Server *srv = LocalServer([](Conn &c) { c.keep_data = true; });
  Conn *c = NewConn();
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  // More buffers than one vectored send takes, with empty ones among them.
  std::vector<std::string> parts;
  std::string want;
  for (int i = 0; i < 40; i++) {
    parts.push_back(i % 7 == 3
                        ? std::string()
                        : "<" + std::to_string(i) + ":" +
                              std::string(static_cast<size_t>(i * 37),
                                          static_cast<char>('a' + i % 26)) +
                              ">");
    want += parts.back();
  }
  std::vector<proa_buf> bufs;
  for (const std::string &p : parts)
    bufs.push_back({p.data(), p.size()});
  ASSERT_EQ(0, proa_transport_writelines(c->t, bufs.data(), bufs.size()));
  // The caller's buffers may go at once: the data was copied or sent.
  for (std::string &p : parts)
    std::fill(p.begin(), p.end(), '#');
  ASSERT_TRUE(Until([&] { return s->data.size() >= want.size(); }));
  EXPECT_EQ(want, s->data);
}

TEST_F(tcp, WritelinesLargeBuffersToAStalledPeer) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  std::vector<uint8_t> all = Pattern(1, 0, 3 * 1024 * 1024);
  std::vector<proa_buf> bufs;
  for (size_t off = 0; off < all.size(); off += 100000)
    bufs.push_back(
        {all.data() + off, std::min<size_t>(100000, all.size() - off)});
  ASSERT_EQ(0, proa_transport_writelines(c->t, bufs.data(), bufs.size()));
  EXPECT_GT(proa_transport_get_write_buffer_size(c->t), 0u);
  std::fill(all.begin(), all.end(), 0); // copied: the caller may reuse it
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return s->received == 3u * 1024 * 1024; }));
  EXPECT_EQ(0u, s->mismatches);
  ASSERT_TRUE(
      Until([&] { return proa_transport_get_write_buffer_size(c->t) == 0; }));
}

// ---- close and abort ----

TEST_F(tcp, CloseDeliversTheWholeBufferBeforeEof) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  const size_t n = 4 * 1024 * 1024;
  WritePattern(c, n);
  size_t queued = proa_transport_get_write_buffer_size(c->t);
  ASSERT_GT(queued, 0u) << "the kernel took everything: nothing to flush";
  proa_transport_close(c->t);
  EXPECT_TRUE(proa_transport_is_closing(c->t));
  RunIterations(loop, 5);
  // The peer reads nothing, so the queue cannot drain: no connection_lost.
  EXPECT_EQ(0, c->lost) << "connection_lost before the buffer was sent";
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return s->lost && c->lost; }, 20.0));
  EXPECT_EQ(n, s->received) << "the peer did not get every byte";
  EXPECT_EQ(0u, s->mismatches) << "first bad byte at " << s->first_mismatch;
  EXPECT_EQ(1, s->eofs);
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ(0, s->lost_error);
}

TEST_F(tcp, AbortDropsTheBuffer) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  const size_t n = 4 * 1024 * 1024;
  WritePattern(c, n);
  ASSERT_GT(proa_transport_get_write_buffer_size(c->t), 0u);
  proa_transport_abort(c->t);
  EXPECT_TRUE(proa_transport_is_closing(c->t));
  EXPECT_EQ(PROA_ECLOSED, Write(c, "more"));
  // connection_lost(0) comes although the peer never read.
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(0, c->lost_error);
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return s->lost != 0; }));
  EXPECT_LT(s->received, n) << "abort delivered the whole buffer";
  EXPECT_EQ(0u, s->mismatches);
  EXPECT_TRUE(s->lost_error == 0 || s->lost_error == PROA_ECONNRESET)
      << proa_err_name(s->lost_error);
}

// ---- reading: pause and resume ----

TEST_F(tcp, PauseReadingBeforeDataArrives) {
  Server *srv = LocalServer([](Conn &c) {
    c.keep_data = true;
    c.on_made = [](Conn &s) { s.PauseReading(); };
  });
  Conn *c = NewConn();
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  EXPECT_FALSE(proa_transport_is_reading(s->t));
  ASSERT_EQ(0, Write(c, "waiting"));
  ASSERT_EQ(0, proa_transport_write_eof(c->t));
  // Give the data every chance to arrive: none may be delivered.
  ASSERT_TRUE(
      Until([&] { return proa_transport_get_write_buffer_size(c->t) == 0; }));
  RunIterations(loop, 10);
  EXPECT_EQ(0u, s->received) << "data delivered while paused";
  EXPECT_EQ(0, s->eofs) << "EOF delivered while paused";
  s->ResumeReading();
  EXPECT_TRUE(proa_transport_is_reading(s->t));
  ASSERT_TRUE(Until([&] { return s->eofs == 1; }));
  EXPECT_EQ("waiting", s->data);
  EXPECT_EQ(0u, s->data_while_paused);
}

TEST_F(tcp, PauseAndResumeReadingAreIdempotentAndLoseNothing) {
  struct Toggle {
    int deliveries = 0;
    int toggles = 0;
  };
  auto toggle = std::make_shared<Toggle>();
  Server *srv = LocalServer([toggle](Conn &c) {
    c.verify = true;
    c.seed = 5;
    c.on_data = [toggle](Conn &s, const uint8_t *, size_t) {
      if (++toggle->deliveries % 3 != 0 || s.user_paused_reading)
        return;
      s.PauseReading();
      s.PauseReading(); // twice: no effect
      EXPECT_FALSE(proa_transport_is_reading(s.t));
      toggle->toggles++;
      EXPECT_EQ(0, proa_call_later(
                       s.loop, 0.001,
                       [](void *arg) {
                         Conn *self = static_cast<Conn *>(arg);
                         if (self->lost)
                           return;
                         self->ResumeReading();
                         self->ResumeReading(); // twice: no effect
                         EXPECT_TRUE(proa_transport_is_reading(self->t));
                       },
                       &s, nullptr));
    };
  });
  Conn *c = NewConn();
  c->send_seed = 5;
  c->send_total = 2 * 1024 * 1024 + 1;
  c->piece = 3000;
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(
      Until([&] { return srv->conns.size() == 1 && srv->conns[0]->eofs == 1; },
            30.0));
  Conn *s = srv->conns[0].get();
  EXPECT_GT(toggle->toggles, 0);
  EXPECT_EQ(c->send_total, s->received);
  EXPECT_EQ(0u, s->mismatches) << "first bad byte at " << s->first_mismatch;
  EXPECT_EQ(0u, s->data_while_paused) << "data delivered while paused";
}

TEST_F(tcp, PauseReadingAfterCloseDoesNothing) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  proa_transport_close(c->t);
  int rc = proa_transport_pause_reading(c->t);
  EXPECT_TRUE(rc == 0 || rc == PROA_ECLOSED) << proa_err_name(rc);
  rc = proa_transport_resume_reading(c->t);
  EXPECT_TRUE(rc == 0 || rc == PROA_ECLOSED) << proa_err_name(rc);
  EXPECT_FALSE(proa_transport_is_reading(c->t));
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(0, c->lost_error);
}

// ---- the buffered protocol ----

TEST_F(tcp, BufferedProtocolReceivesEveryByte) {
  Server *srv = LocalServer([](Conn &c) {
    c.buffered = true;
    c.buffer_size = 1000; // much smaller than the hint
    c.verify = true;
    c.seed = 3;
  });
  Conn *c = NewConn();
  c->send_seed = 3;
  c->send_total = 1024 * 1024 + 7;
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until(
      [&] { return srv->conns.size() == 1 && srv->conns[0]->eofs == 1; }));
  Conn *s = srv->conns[0].get();
  EXPECT_EQ(c->send_total, s->received);
  EXPECT_EQ(0u, s->mismatches) << "first bad byte at " << s->first_mismatch;
  EXPECT_EQ(0u, s->buffer_overruns);
  EXPECT_GE(s->deliveries, static_cast<size_t>(c->send_total / 1000));
}

TEST_F(tcp, BufferedProtocolEchoWithTheHintSize) {
  Server *srv = LocalServer([](Conn &c) {
    c.buffered = true; // buffer_size 0: takes the transport's hint
    c.echo = true;
    c.echo_close_on_eof = true;
  });
  Conn *c = NewConn();
  c->buffered = true;
  c->buffer_size = 4093;
  c->verify = true;
  c->seed = c->send_seed = 8;
  c->send_total = 777777;
  c->eof_when_sent = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(c->send_total, c->received);
  EXPECT_EQ(0u, c->mismatches);
  ASSERT_EQ(1u, srv->conns.size());
  EXPECT_GT(srv->conns[0]->last_buffer_size, 0u) << "a zero-sized hint";
  EXPECT_EQ(0u, srv->conns[0]->buffer_overruns);
}

// ---- flow control ----

TEST_F(tcp, WriteBufferLimits) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_NE(nullptr, Pair(srv, c));
  size_t low = 1, high = 1;
  proa_transport_get_write_buffer_limits(c->t, &low, &high);
  EXPECT_EQ(16384u, low);
  EXPECT_EQ(65536u, high);
  EXPECT_EQ(PROA_EINVAL,
            proa_transport_set_write_buffer_limits(c->t, 1000, 2000))
      << "low > high accepted";
  proa_transport_get_write_buffer_limits(c->t, &low, &high);
  EXPECT_EQ(16384u, low) << "a refused call changed the limits";
  EXPECT_EQ(65536u, high);
  EXPECT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 1000, SIZE_MAX));
  proa_transport_get_write_buffer_limits(c->t, &low, &high);
  EXPECT_EQ(250u, low) << "SIZE_MAX must mean high / 4";
  EXPECT_EQ(1000u, high);
  EXPECT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 500, 500));
  proa_transport_get_write_buffer_limits(c->t, &low, &high);
  EXPECT_EQ(500u, low);
  EXPECT_EQ(500u, high);
  EXPECT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 0, 0));
  EXPECT_EQ(0u, proa_transport_get_write_buffer_size(c->t));
  RunIterations(loop, 3);
  EXPECT_EQ(0, c->pauses) << "an empty buffer is not above any mark";
}

TEST_F(tcp, PauseAndResumeWritingComeInPairs) {
  Conn *c = NewConn();
  c->send_seed = 1;
  c->piece = 65536;
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  size_t low = 0, high = 0;
  proa_transport_get_write_buffer_limits(c->t, &low, &high);
  c->send_total = 6 * 1024 * 1024;
  c->Pump();
  ASSERT_TRUE(Until([&] { return c->pauses == 1; }))
      << "pause_writing never came";
  EXPECT_TRUE(c->write_paused);
  EXPECT_GT(c->wbuf_at_pause, high) << "paused below the high-water mark";
  EXPECT_LT(c->sent, c->send_total);
  RunIterations(loop, 5);
  EXPECT_EQ(0, c->resumes) << "resumed while the peer reads nothing";
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return s->received == c->send_total; }, 30.0));
  EXPECT_EQ(0u, s->mismatches) << "first bad byte at " << s->first_mismatch;
  EXPECT_GE(c->pauses, 1);
  EXPECT_EQ(c->pauses, c->resumes);
  EXPECT_FALSE(c->bad_flow_order) << c->events;
  EXPECT_LE(c->wbuf_at_resume, low) << "resumed above the low-water mark";
  EXPECT_EQ(0u, proa_transport_get_write_buffer_size(c->t));
}

TEST_F(tcp, LoweringTheHighWaterMarkPausesWriting) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  ASSERT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 64 * 1024 * 1024,
                                                      SIZE_MAX));
  WritePattern(c, 1024 * 1024);
  size_t queued = proa_transport_get_write_buffer_size(c->t);
  ASSERT_GT(queued, 4096u);
  RunIterations(loop, 5);
  EXPECT_EQ(0, c->pauses) << "paused below a 64 MiB mark";
  ASSERT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 4096, SIZE_MAX));
  ASSERT_TRUE(Until([&] { return c->pauses == 1; }))
      << "lowering the mark below the buffered bytes did not pause";
  s->ResumeReading();
  ASSERT_TRUE(Until([&] { return c->resumes == 1; }));
  EXPECT_LE(c->wbuf_at_resume, 1024u);
  ASSERT_TRUE(Until([&] { return s->received == 1024u * 1024; }));
  EXPECT_EQ(0u, s->mismatches);
}

// ---- addresses and accessors ----

TEST_F(tcp, PeernameSocknameAndSocket) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  proa_sockaddr cpeer, cname, speer, sname;
  ASSERT_EQ(0, proa_transport_peername(c->t, &cpeer));
  ASSERT_EQ(0, proa_transport_sockname(c->t, &cname));
  ASSERT_EQ(0, proa_transport_peername(s->t, &speer));
  ASSERT_EQ(0, proa_transport_sockname(s->t, &sname));
  EXPECT_EQ("127.0.0.1:" + std::to_string(srv->port), Format(cpeer));
  EXPECT_EQ(Format(cpeer), Format(sname));
  EXPECT_EQ(Format(cname), Format(speer));
  EXPECT_EQ(PROA_AF_INET, proa_sockaddr_family(&cname));
  EXPECT_NE(srv->port, proa_sockaddr_port(&cname));
  intptr_t fd = proa_transport_socket(c->t);
  EXPECT_NE(-1, fd);
  EXPECT_NE(fd, proa_transport_socket(s->t));
  proa_sockaddr raw;
  ASSERT_EQ(0, RawSockname(fd, &raw));
  EXPECT_EQ(Format(cname), Format(raw)) << "socket() is not the connection";
  EXPECT_EQ(PROA_EINVAL, proa_transport_peername(c->t, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_transport_sockname(c->t, nullptr));

  proa_transport_close(c->t);
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(-1, proa_transport_socket(c->t));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_peername(c->t, &cpeer));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_sockname(c->t, &cname));
}

TEST_F(tcp, SetProtocolSwitchesTheCallbacks) {
  Server *srv = LocalServer();
  Conn *c = NewConn("first");
  c->keep_data = true;
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  // The second protocol lives outside the fixture's lists: it never sees
  // connection_made, so the fixture's ordering check does not apply.
  Conn second;
  second.name = "second";
  second.keep_data = true;
  c->on_data = [&second](Conn &first, const uint8_t *, size_t) {
    proa_transport_set_protocol(first.t, second.Protocol(), &second);
  };
  ASSERT_EQ(0, Write(s, "one"));
  ASSERT_TRUE(Until([&] { return c->data == "one"; }));
  EXPECT_EQ(&second, proa_transport_get_protocol(c->t));
  ASSERT_EQ(0, Write(s, "two"));
  proa_transport_close(s->t);
  ASSERT_TRUE(Until([&] { return second.lost != 0; }));
  EXPECT_EQ("one", c->data);
  EXPECT_EQ("two", second.data);
  EXPECT_EQ("DEL", second.events);
  EXPECT_EQ(0, second.lost_error);
  EXPECT_EQ("MD", c->events)
      << "the first protocol was called after the switch";
  // The fixture expects connection_lost on every client it knows.
  c->lost = 1;
  c->lost_error = 0;
  c->events += 'L';
}

// ---- resets ----

TEST_F(tcp, PeerResetWhileWriting) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  WritePattern(c, 4 * 1024 * 1024);
  ASSERT_GT(proa_transport_get_write_buffer_size(c->t), 0u);
  ASSERT_EQ(0, RawSetLingerReset(proa_transport_socket(s->t)));
  proa_transport_abort(s->t); // closes with SO_LINGER {1, 0}: a reset
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_TRUE(IsResetOrPipe(c->lost_error)) << proa_err_name(c->lost_error);
  EXPECT_EQ(0, s->lost_error);
  EXPECT_EQ(PROA_ECLOSED, Write(c, "after"));
}

TEST_F(tcp, PeerResetWhileReading) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  ASSERT_EQ(0, Write(s, std::string(1000, 'r')));
  ASSERT_TRUE(Until([&] { return c->received == 1000; }));
  ASSERT_EQ(0, RawSetLingerReset(proa_transport_socket(s->t)));
  proa_transport_abort(s->t);
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(PROA_ECONNRESET, c->lost_error) << proa_err_name(c->lost_error);
  EXPECT_EQ(0, c->eofs) << "a reset is not an EOF";
}

// ---- create_connection ----

TEST_F(tcp, ConnectionRefused) {
  UnusedPort unused;
  int port = unused.port;
  Conn *c = nullptr;
  std::string msg;
  int rc = ConnectToClosedPort("127.0.0.1", port, &msg, &c);
  EXPECT_EQ(PROA_ECONNREFUSED, rc) << proa_err_name(rc);
  if (rc == 0) {
    proa_sockaddr from, to;
    proa_transport_sockname(c->t, &from);
    proa_transport_peername(c->t, &to);
    ADD_FAILURE() << "connected from " << Format(from) << " to " << Format(to);
  }
  EXPECT_NE(std::string::npos, msg.find("127.0.0.1:" + std::to_string(port)))
      << "the message does not name the address: " << msg;
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, BadHost) {
  Conn *c = NewConn();
  int rc = Connect(c, "nonexistent.invalid", 80);
  // EAI_NONAME with a resolver; EAI_AGAIN / EAI_FAIL in a sandbox without
  // a reachable DNS server (see the resolver tests).
  EXPECT_TRUE(rc == PROA_EAI_NONAME || rc == PROA_EAI_AGAIN ||
              rc == PROA_EAI_FAIL)
      << proa_err_name(rc);
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, ConnectImmediateErrors) {
  Conn *c = NewConn();
  proa_future *f = reinterpret_cast<proa_future *>(c); // overwritten
  const proa_protocol *p = c->Protocol();
  EXPECT_EQ(PROA_EINVAL, proa_create_connection(loop, p, c, "127.0.0.1", 65536,
                                                nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EINVAL,
            proa_create_connection(loop, p, c, "127.0.0.1", -1, nullptr, &f));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_connection(loop, p, c, nullptr, 80, nullptr, &f));
  EXPECT_EQ(PROA_EINVAL, proa_create_connection(loop, p, c, "127.0.0.1", 80,
                                                nullptr, nullptr));
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_port = 70000;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_connection(loop, p, c, "127.0.0.1", 80, &o, &f));
  o = PROA_CONNECT_OPTIONS_INIT;
  o.happy_eyeballs_delay = -1;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_connection(loop, p, c, "127.0.0.1", 80, &o, &f));
  o = PROA_CONNECT_OPTIONS_INIT;
  o.sock = 0; // a socket together with a host
  EXPECT_EQ(PROA_EINVAL,
            proa_create_connection(loop, p, c, "127.0.0.1", 80, &o, &f));
  o = PROA_CONNECT_OPTIONS_INIT;
  int dummy = 0;
  o.ssl = &dummy;
  EXPECT_EQ(PROA_ENOTSUP,
            proa_create_connection(loop, p, c, "127.0.0.1", 80, &o, &f));
  EXPECT_EQ(nullptr, f);
  RunIterations(loop, 2);
  EXPECT_EQ("", c->events);

  proa_loop *closed = nullptr;
  ASSERT_EQ(0, proa_loop_new(&closed));
  ASSERT_EQ(0, proa_loop_close(closed));
  EXPECT_EQ(PROA_ECLOSED,
            proa_create_connection(closed, p, c, "127.0.0.1", 80, nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(0, proa_loop_free(closed));
}

TEST_F(tcp, ConnectCancelled) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_EQ(0, StartConnect(c, "127.0.0.1", srv->port));
  EXPECT_TRUE(proa_future_cancel(c->connect_future, nullptr));
  RunIterations(loop, 5);
  // Either nothing happened, or the connection was up and is closed again.
  ASSERT_TRUE(Until([&] { return c->made == 0 || c->lost != 0; }));
  EXPECT_TRUE(c->events == "" || c->events == "ML") << c->events;
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(c->connect_future));
}

TEST_F(tcp, CancelAConnectInProgress) {
#ifndef __linux__
  GTEST_SKIP() << "needs a connect that hangs: Linux drops the SYN when a "
                  "listener's accept queue is full, other systems refuse it";
#else
  // A listener with backlog 0 that never accepts: one connection fills
  // its queue, and the next connect waits for a SYN retransmission.
  proa_sockaddr any;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&any, "127.0.0.1", 0));
  intptr_t lfd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, lfd);
  ASSERT_EQ(0, RawBind(lfd, any));
  ASSERT_EQ(0, listen(static_cast<int>(lfd), 0));
  proa_sockaddr addr;
  ASSERT_EQ(0, RawSockname(lfd, &addr));
  intptr_t first = RawSocket(PROA_AF_INET);
  ASSERT_EQ(0, RawConnect(first, addr));
  Conn *c = NewConn();
  ASSERT_EQ(0, StartConnect(c, "127.0.0.1", proa_sockaddr_port(&addr)));
  RunIterations(loop, 5);
  ASSERT_FALSE(proa_future_done(c->connect_future))
      << "the connect did not hang; the test proves nothing";
  EXPECT_TRUE(proa_future_cancel(c->connect_future, "give up"));
  RunIterations(loop, 5);
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(c->connect_future));
  EXPECT_EQ("", c->events);
  RawClose(first);
  RawClose(lfd);
#endif
}

TEST_F(tcp, ConnectFromALocalAddress) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "127.0.0.1";
  Conn *s = nullptr;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port, &o));
  proa_sockaddr name;
  ASSERT_EQ(0, proa_transport_sockname(c->t, &name));
  char ip[64];
  ASSERT_GT(proa_sockaddr_ip(&name, ip, sizeof ip), 0);
  EXPECT_STREQ("127.0.0.1", ip);
  ASSERT_TRUE(Until([&] { return srv->conns.size() == 1; }));
  s = srv->conns[0].get();
  ASSERT_TRUE(Until([&] { return s->made != 0; }));
  proa_sockaddr peer;
  ASSERT_EQ(0, proa_transport_peername(s->t, &peer));
  EXPECT_EQ(Format(name), Format(peer));
}

#ifdef __linux__
// In a child process moved into a network namespace of its own, which has
// no interface up and no route, any address is unreachable: connect fails
// at once and no packet can leave the machine.
static int ConnectInEmptyNetns() {
  if (unshare(CLONE_NEWNET) != 0)
    return 77; // not root: no namespaces here
  proa_loop *loop = nullptr;
  proa_future *f = nullptr;
  if (proa_loop_new(&loop) != 0)
    return 2;
  int rc = proa_create_connection(loop, nullptr, nullptr, "192.0.2.1", 80,
                                  nullptr, &f);
  if (rc == 0)
    rc = proa_loop_run_until_complete(loop, f, nullptr);
  const char *msg = f ? proa_future_error_message(f) : nullptr;
  bool named = msg && std::strstr(msg, "192.0.2.1") != nullptr;
  proa_future_unref(f);
  proa_loop_free(loop);
  return rc == PROA_ENETUNREACH && named ? 0 : 1;
}
#endif

TEST_F(tcp, ConnectToAnUnreachableNetwork) {
#ifdef __linux__
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0)
    _exit(ConnectInEmptyNetns());
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77)
    GTEST_SKIP() << "unshare(CLONE_NEWNET) needs root";
  EXPECT_EQ(0, WEXITSTATUS(status))
      << "expected PROA_ENETUNREACH naming 192.0.2.1 from an empty netns";
#else
  GTEST_SKIP() << "needs a network namespace (Linux) to be unreachable "
                  "without sending anything";
#endif
}

TEST_F(tcp, ConnectFromALocalHostName) {
  // A local_host that is a name is resolved (alongside the host), as
  // asyncio's local_addr is.
  Server *srv = LocalServer();
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.family = PROA_AF_INET;
  o.local_host = "localhost";
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port, &o));
  proa_sockaddr name;
  ASSERT_EQ(0, proa_transport_sockname(c->t, &name));
  char ip[64];
  ASSERT_GT(proa_sockaddr_ip(&name, ip, sizeof ip), 0);
  EXPECT_STREQ("127.0.0.1", ip);
}

TEST_F(tcp, ConnectFromAnUnknownLocalHostName) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "nonexistent.invalid";
  std::string msg;
  int rc = Connect(c, "127.0.0.1", srv->port, &o, &msg);
  EXPECT_TRUE(rc == PROA_EAI_NONAME || rc == PROA_EAI_AGAIN ||
              rc == PROA_EAI_FAIL || rc == PROA_EAI_NODATA)
      << proa_err_name(rc);
  EXPECT_NE(std::string::npos, msg.find("local")) << msg;
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, ConnectLocalAddressOfTheWrongFamily) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "::1"; // no IPv4 local address for an IPv4 target
  std::string msg;
  int rc = Connect(c, "127.0.0.1", srv->port, &o, &msg);
  EXPECT_EQ(PROA_EADDRNOTAVAIL, rc) << proa_err_name(rc);
  EXPECT_NE(std::string::npos, msg.find("127.0.0.1")) << msg;
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, ConnectLocalPortInUse) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "127.0.0.1";
  o.local_port = srv->port; // the listener has it
  std::string msg;
  int rc = Connect(c, "127.0.0.1", srv->port, &o, &msg);
  EXPECT_EQ(PROA_EADDRINUSE, rc) << proa_err_name(rc);
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, IPv6Loopback) {
  if (!HaveIPv6Loopback())
    GTEST_SKIP() << "this host has no IPv6 loopback (::1 cannot be bound)";
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  ASSERT_EQ(0, Listen(srv, "::1", 0));
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "::1", srv->port));
  proa_sockaddr peer;
  ASSERT_EQ(0, proa_transport_peername(c->t, &peer));
  EXPECT_EQ(PROA_AF_INET6, proa_sockaddr_family(&peer));
  EXPECT_EQ("[::1]:" + std::to_string(srv->port), Format(peer));
  ASSERT_EQ(0, Write(c, "six"));
  ASSERT_TRUE(Until([&] { return c->data == "six"; }));
}

TEST_F(tcp, HappyEyeballsToLocalhost) {
  // Listen on 127.0.0.1 and, where there is IPv6, on ::1 with the same
  // port: "localhost" connects whichever way it resolves.
  // Another process may hold the port on ::1 (it was free only on
  // 127.0.0.1): "localhost" would then reach that process, so the pair is
  // made again on another port.
  Server *v4 = nullptr;
  int rc = PROA_EADDRINUSE;
  for (int attempt = 0; attempt < 5 && rc == PROA_EADDRINUSE; attempt++) {
    v4 = NewServer();
    v4->configure = [](Conn &c) { c.echo = true; };
    ASSERT_EQ(0, Listen(v4, "127.0.0.1", 0));
    rc = 0;
    if (HaveIPv6Loopback()) {
      Server *v6 = NewServer();
      v6->configure = [](Conn &c) { c.echo = true; };
      rc = Listen(v6, "::1", v4->port);
    }
  }
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  Conn *c = NewConn();
  c->keep_data = true;
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.happy_eyeballs_delay = 0.05;
  ASSERT_EQ(0, Connect(c, "localhost", v4->port, &o));
  ASSERT_EQ(0, Write(c, "hello eyeballs"));
  ASSERT_TRUE(Until([&] { return c->data == "hello eyeballs"; }));
}

TEST_F(tcp, ConnectWrapsAConnectedSocket) {
  Server *srv = LocalServer([](Conn &c) { c.echo = true; });
  proa_sockaddr to;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", srv->port));
  intptr_t fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  ASSERT_EQ(0, RawConnect(fd, to)); // blocking connect, plain socket calls
  proa_sockaddr raw;
  ASSERT_EQ(0, RawSockname(fd, &raw));
  Conn *c = NewConn();
  c->keep_data = true;
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.sock = fd; // the transport owns it from here on
  ASSERT_EQ(0, Connect(c, nullptr, 0, &o));
  EXPECT_FALSE(c->future_done_at_made);
  EXPECT_EQ(fd, proa_transport_socket(c->t));
  proa_sockaddr name;
  ASSERT_EQ(0, proa_transport_sockname(c->t, &name));
  EXPECT_EQ(Format(raw), Format(name));
  ASSERT_EQ(0, Write(c, "wrapped"));
  ASSERT_TRUE(Until([&] { return c->data == "wrapped"; }));
}

// ---- create_server ----

class tcpServer : public tcp {};

TEST_F(tcpServer, PortZeroReportsTheRealPort) {
  Server *srv = NewServer();
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0));
  ASSERT_EQ(1u, proa_server_socket_count(srv->s));
  proa_sockaddr a;
  ASSERT_EQ(0, proa_server_sockname(srv->s, 0, &a));
  EXPECT_EQ(PROA_AF_INET, proa_sockaddr_family(&a));
  EXPECT_GT(proa_sockaddr_port(&a), 0);
  char ip[64];
  ASSERT_GT(proa_sockaddr_ip(&a, ip, sizeof ip), 0);
  EXPECT_STREQ("127.0.0.1", ip);
  intptr_t fd = proa_server_socket(srv->s, 0);
  EXPECT_NE(-1, fd);
  proa_sockaddr raw;
  ASSERT_EQ(0, RawSockname(fd, &raw));
  EXPECT_EQ(Format(a), Format(raw));
  EXPECT_EQ(PROA_EINVAL, proa_server_sockname(srv->s, 1, &a));
  EXPECT_EQ(-1, proa_server_socket(srv->s, 1));
  EXPECT_TRUE(proa_server_is_serving(srv->s));
  // The port is real: a client gets through.
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, "127.0.0.1", proa_sockaddr_port(&a)));
}

TEST_F(tcpServer, SecondServerOnTheSamePortIsAddrInUse) {
  Server *first = LocalServer();
  Server *second = NewServer();
  std::string msg;
  int rc = Listen(second, "127.0.0.1", first->port, nullptr, &msg);
  EXPECT_EQ(PROA_EADDRINUSE, rc) << proa_err_name(rc);
  EXPECT_NE(std::string::npos,
            msg.find("127.0.0.1:" + std::to_string(first->port)))
      << "the message does not name the address: " << msg;
  EXPECT_EQ(nullptr, second->s);
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, "127.0.0.1", first->port)); // the first still works
  ASSERT_TRUE(Until([&] { return first->conns.size() == 1; }));
}

TEST_F(tcpServer, ImmediateErrors) {
  Server srv;
  proa_future *f = reinterpret_cast<proa_future *>(&srv); // overwritten
  EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, Server::Factory, &srv,
                                            "127.0.0.1", 65536, nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, Server::Factory, &srv,
                                            "127.0.0.1", -1, nullptr, &f));
  EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, nullptr, &srv, "127.0.0.1", 0,
                                            nullptr, &f));
  EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, Server::Factory, &srv,
                                            "127.0.0.1", 0, nullptr, nullptr));
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.sock = 0;
  EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, Server::Factory, &srv,
                                            "127.0.0.1", 0, &o, &f));
  o = PROA_SERVER_OPTIONS_INIT;
  int dummy = 0;
  o.ssl = &dummy;
  EXPECT_EQ(PROA_ENOTSUP, proa_create_server(loop, Server::Factory, &srv,
                                             "127.0.0.1", 0, &o, &f));
  EXPECT_EQ(nullptr, f);
}

TEST_F(tcpServer, HostsListListensOnEach) {
  if (!HaveIPv6Loopback())
    GTEST_SKIP() << "this host has no IPv6 loopback (::1 cannot be bound)";
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  const char *const hosts[] = {"127.0.0.1", "::1", nullptr};
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.hosts = hosts;
  ASSERT_EQ(0, Listen(srv, "ignored.invalid", 0, &o));
  ASSERT_EQ(2u, proa_server_socket_count(srv->s));
  std::set<int> families;
  for (size_t i = 0; i < 2; i++) {
    proa_sockaddr a;
    ASSERT_EQ(0, proa_server_sockname(srv->s, i, &a));
    families.insert(proa_sockaddr_family(&a));
    char ip[64];
    ASSERT_GT(proa_sockaddr_ip(&a, ip, sizeof ip), 0);
    Conn *c = NewConn(std::string("client of ") + ip);
    c->keep_data = true;
    ASSERT_EQ(0, Connect(c, ip, proa_sockaddr_port(&a))) << ip;
    ASSERT_EQ(0, Write(c, ip));
    ASSERT_TRUE(Until([&] { return c->data == ip; })) << ip;
  }
  EXPECT_EQ((std::set<int>{PROA_AF_INET, PROA_AF_INET6}), families);
}

TEST_F(tcpServer, StartServingLater) {
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.start_serving = false;
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0, &o));
  EXPECT_FALSE(proa_server_is_serving(srv->s));
  // The kernel completes the handshake (the socket listens), but nobody
  // accepts it yet.
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_EQ(0, Write(c, "early"));
  RunIterations(loop, 10);
  EXPECT_EQ(0, srv->factory_calls) << "accepted before start_serving";
  ASSERT_EQ(0, proa_server_start_serving(srv->s));
  EXPECT_TRUE(proa_server_is_serving(srv->s));
  EXPECT_EQ(0, proa_server_start_serving(srv->s)); // idempotent
  ASSERT_TRUE(Until([&] { return c->data == "early"; }));
  EXPECT_EQ(1, srv->factory_calls);
}

TEST_F(tcpServer, CloseStopsAcceptingButKeepsConnections) {
  Server *srv = LocalServer([](Conn &c) { c.echo = true; });
  Conn *a = NewConn("a");
  a->keep_data = true;
  ASSERT_NE(nullptr, Pair(srv, a));
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  proa_server_close(srv->s);
  proa_server_close(srv->s); // idempotent
  EXPECT_FALSE(proa_server_is_serving(srv->s));
  EXPECT_EQ(0u, proa_server_socket_count(srv->s));
  EXPECT_EQ(PROA_ECLOSED, proa_server_start_serving(srv->s));
  RunIterations(loop, 3); // the listening socket closes
  // New connections are refused...
  int rc = ConnectToClosedPort("127.0.0.1", srv->port);
  EXPECT_EQ(PROA_ECONNREFUSED, rc) << proa_err_name(rc);
  // ...the accepted one keeps working...
  ASSERT_EQ(0, Write(a, "still here"));
  ASSERT_TRUE(Until([&] { return a->data == "still here"; }));
  // ...and wait_closed waits for it.
  RunIterations(loop, 3);
  EXPECT_FALSE(proa_future_done(closed))
      << "wait_closed completed while a connection was open";
  proa_transport_close(a->t);
  EXPECT_EQ(0, Await(loop, closed));
  EXPECT_TRUE(srv->conns[0]->lost != 0) << "done before the client was lost";
  proa_future_unref(closed);
  // Once closed, wait_closed is done at once (or on the next iteration).
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  EXPECT_EQ(0, Await(loop, closed));
  proa_future_unref(closed);
}

TEST_F(tcpServer, CloseClients) {
  Server *srv = LocalServer();
  Conn *a = NewConn("a");
  Conn *b = NewConn("b");
  ASSERT_NE(nullptr, Pair(srv, a));
  ASSERT_NE(nullptr, Pair(srv, b));
  // Data queued by the server is flushed before its side closes.
  ASSERT_EQ(0, Write(srv->conns[0].get(), "bye a"));
  a->keep_data = true;
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  proa_server_close(srv->s);
  proa_server_close_clients(srv->s);
  EXPECT_EQ(0, Await(loop, closed));
  proa_future_unref(closed);
  EXPECT_EQ(2u, srv->Lost());
  for (auto &sc : srv->conns)
    EXPECT_EQ(0, sc->lost_error);
  ASSERT_TRUE(Until([&] { return a->lost && b->lost; }));
  EXPECT_EQ("bye a", a->data);
  EXPECT_EQ(1, a->eofs);
  EXPECT_EQ(1, b->eofs);
  EXPECT_EQ(0, a->lost_error);
  EXPECT_EQ(0, b->lost_error);
}

TEST_F(tcpServer, AbortClients) {
  Server *srv = LocalServer();
  Conn *a = NewConn("a");
  Conn *b = NewConn("b");
  ASSERT_NE(nullptr, Pair(srv, a));
  ASSERT_NE(nullptr, Pair(srv, b));
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  proa_server_close(srv->s);
  proa_server_abort_clients(srv->s);
  EXPECT_EQ(0, Await(loop, closed));
  proa_future_unref(closed);
  EXPECT_EQ(2u, srv->Lost());
  for (auto &sc : srv->conns)
    EXPECT_EQ(0, sc->lost_error);
  ASSERT_TRUE(Until([&] { return a->lost && b->lost; }));
  for (Conn *c : {a, b})
    EXPECT_TRUE(c->lost_error == 0 || c->lost_error == PROA_ECONNRESET)
        << proa_err_name(c->lost_error);
}

TEST_F(tcpServer, FactoryErrorClosesTheConnectionAndReports) {
  allow_exceptions = true;
  Server *srv = LocalServer();
  srv->factory_error = PROA_EPERM;
  Conn *c = NewConn("refused");
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return c->lost != 0; }))
      << "the refused connection was not closed";
  EXPECT_TRUE(c->lost_error == 0 || c->lost_error == PROA_ECONNRESET)
      << proa_err_name(c->lost_error);
  EXPECT_EQ(1, srv->factory_calls);
  EXPECT_TRUE(srv->conns.empty());
  ASSERT_EQ(1u, exc.CountError(PROA_EPERM))
      << "the exception handler was not told";
  for (const auto &ctx : exc.Calls()) {
    if (ctx.error == PROA_EPERM) {
      EXPECT_FALSE(ctx.message.empty());
    }
  }
  // The server goes on accepting.
  srv->factory_error = 0;
  Conn *ok = NewConn("accepted");
  ASSERT_NE(nullptr, Pair(srv, ok));
}

TEST_F(tcpServer, ListenOnABoundSocket) {
  proa_sockaddr any;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&any, "127.0.0.1", 0));
  intptr_t fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  ASSERT_EQ(0, RawBind(fd, any));
  proa_sockaddr bound;
  ASSERT_EQ(0, RawSockname(fd, &bound));
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.sock = fd; // not listening yet: create_server does that
  ASSERT_EQ(0, Listen(srv, nullptr, 0, &o));
  ASSERT_EQ(1u, proa_server_socket_count(srv->s));
  EXPECT_EQ(fd, proa_server_socket(srv->s, 0));
  EXPECT_EQ(proa_sockaddr_port(&bound), srv->port);
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_EQ(0, Write(c, "adopted"));
  ASSERT_TRUE(Until([&] { return c->data == "adopted"; }));
}

TEST_F(tcpServer, ListenOnAHostName) {
  // A name goes through the resolver: every address of localhost.
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  ASSERT_EQ(0, Listen(srv, "localhost", 0));
  size_t n = proa_server_socket_count(srv->s);
  ASSERT_GE(n, 1u);
  for (size_t i = 0; i < n; i++) {
    proa_sockaddr a;
    ASSERT_EQ(0, proa_server_sockname(srv->s, i, &a));
    char ip[64];
    ASSERT_GT(proa_sockaddr_ip(&a, ip, sizeof ip), 0);
    std::string sip = ip;
    EXPECT_TRUE(sip.rfind("127.", 0) == 0 || sip == "::1") << sip;
    Conn *c = NewConn(std::string("client of ") + ip);
    c->keep_data = true;
    ASSERT_EQ(0, Connect(c, ip, proa_sockaddr_port(&a)));
    ASSERT_EQ(0, Write(c, "named"));
    ASSERT_TRUE(Until([&] { return c->data == "named"; }));
  }
}

TEST_F(tcpServer, UnknownHostFails) {
  Server *srv = NewServer();
  int rc = Listen(srv, "nonexistent.invalid", 0);
  EXPECT_TRUE(rc == PROA_EAI_NONAME || rc == PROA_EAI_AGAIN ||
              rc == PROA_EAI_FAIL)
      << proa_err_name(rc);
  EXPECT_EQ(nullptr, srv->s);
}

TEST_F(tcpServer, ListensEverywhereOrNowhere) {
  if (!HaveIPv6Loopback())
    GTEST_SKIP() << "this host has no IPv6 loopback (::1 cannot be bound)";
  // [::1]:P is taken; 127.0.0.1:P is free. A server asked for both fails
  // with EADDRINUSE and keeps no listener on 127.0.0.1:P.
  Server *taken = NewServer();
  ASSERT_EQ(0, Listen(taken, "::1", 0));
  int port = taken->port;
  Server *both = NewServer();
  const char *const hosts[] = {"127.0.0.1", "::1", nullptr};
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.hosts = hosts;
  std::string msg;
  int rc = Listen(both, nullptr, port, &o, &msg);
  if (rc == PROA_EADDRINUSE && msg.find("127.0.0.1") != std::string::npos)
    GTEST_SKIP() << "127.0.0.1:" << port << " was taken by another process";
  EXPECT_EQ(PROA_EADDRINUSE, rc) << proa_err_name(rc);
  EXPECT_NE(std::string::npos, msg.find("[::1]:" + std::to_string(port)))
      << msg;
  RunIterations(loop, 3);
  rc = ConnectToClosedPort("127.0.0.1", port);
  EXPECT_EQ(PROA_ECONNREFUSED, rc)
      << "the IPv4 listener of a failed server stayed open";
}

TEST_F(tcpServer, CloseBeforeServing) {
  Server *srv = NewServer();
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.start_serving = false;
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0, &o));
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  RunIterations(loop, 2);
  EXPECT_FALSE(proa_future_done(closed)) << "done before close";
  proa_server_close(srv->s);
  EXPECT_EQ(0, Await(loop, closed));
  proa_future_unref(closed);
  EXPECT_EQ(PROA_ECONNREFUSED, ConnectToClosedPort("127.0.0.1", srv->port));
}

TEST_F(tcp, ConnectFamilyMismatchComesThroughTheFuture) {
  // stream.h: the immediate errors are EINVAL, ENOMEM, ECLOSED and
  // ENOTSUP; what the lookup finds (no IPv6 address for 127.0.0.1) comes
  // through the future as a PROA_EAI_* code.
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.family = PROA_AF_INET6;
  int rc = StartConnect(c, "127.0.0.1", 80, &o);
  ASSERT_EQ(0, rc) << "immediate " << proa_err_name(rc)
                   << ", not one of the documented immediate errors";
  rc = Await(loop, c->connect_future);
  EXPECT_LE(rc, PROA_EAI_NONAME);
  EXPECT_GE(rc, PROA_EAI_SERVICE);
  EXPECT_EQ("", c->events);
}

TEST_F(tcp, ConnectCancelledDuringTheLookup) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  ASSERT_EQ(0, StartConnect(c, "localhost", srv->port));
  EXPECT_TRUE(proa_future_cancel(c->connect_future, nullptr));
  RunIterations(loop, 3);
  // The lookup still finishes on its worker; nothing may connect.
  proa_test::SleepMs(20);
  RunIterations(loop, 3);
  EXPECT_EQ("", c->events);
  EXPECT_EQ(0, srv->factory_calls);
}

TEST_F(tcp, TheLoopKeepsItsReferenceUntilConnectionLost) {
  Server *srv = LocalServer();
  Conn *c = NewConn();
  Conn *s = Pair(srv, c);
  ASSERT_NE(nullptr, s);
  // Drop every reference the test holds: the loop's own keeps the
  // transport alive until connection_lost.
  proa_future_unref(c->connect_future);
  c->connect_future = nullptr;
  proa_transport_unref(c->t);
  c->t = nullptr;
  proa_transport_close(s->t);
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  EXPECT_EQ(0, c->lost_error);
  EXPECT_EQ("MEL", c->events);
}

// The callbacks a connection has seen so far, as one comparable value.
std::vector<size_t> Seen(const Conn &c) {
  return {static_cast<size_t>(c.made),   c.deliveries,
          static_cast<size_t>(c.eofs),   static_cast<size_t>(c.lost),
          static_cast<size_t>(c.pauses), static_cast<size_t>(c.resumes)};
}

TEST_F(tcp, CallbacksNeverRunInsideTheCallThatCausedThem) {
  Conn *c = NewConn();
  Conn *s = StalledPair(c);
  ASSERT_NE(nullptr, s);
  std::vector<size_t> before;
  // Above the high-water mark: pause_writing is scheduled, not called.
  before = Seen(*c);
  WritePattern(c, 1024 * 1024);
  EXPECT_EQ(before, Seen(*c)) << "a callback ran inside write";
  ASSERT_TRUE(Until([&] { return c->pauses == 1; }));
  // Data is waiting for the server: resuming schedules its delivery.
  before = Seen(*s);
  s->ResumeReading();
  EXPECT_EQ(before, Seen(*s)) << "a callback ran inside resume_reading";
  ASSERT_TRUE(Until([&] { return c->resumes == 1; }));
  // Lowering the mark below the buffered bytes schedules pause_writing.
  s->PauseReading();
  WritePattern(c, 256 * 1024);
  ASSERT_TRUE(Until([&] {
    return c->pauses == 2 || proa_transport_get_write_buffer_size(c->t) > 0;
  }));
  if (c->pauses == 1) {
    before = Seen(*c);
    ASSERT_EQ(0, proa_transport_set_write_buffer_limits(c->t, 1, 0));
    EXPECT_EQ(before, Seen(*c))
        << "a callback ran inside set_write_buffer_limits";
  }
  // Abort schedules connection_lost on both sides.
  before = Seen(*c);
  proa_transport_abort(c->t);
  EXPECT_EQ(before, Seen(*c)) << "a callback ran inside abort";
  ASSERT_TRUE(Until([&] { return c->lost != 0; }));
  before = Seen(*s);
  proa_transport_close(s->t);
  EXPECT_EQ(before, Seen(*s)) << "a callback ran inside close";
  ASSERT_TRUE(Until([&] { return s->lost != 0; }));
}

TEST_F(tcpServer, CancelWhileResolving) {
  // The server is set up after the lookup; the caller gave up meanwhile:
  // nothing is left listening and nothing leaks (ASan checks).
  Server srv;
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_server(loop, Server::Factory, &srv, "localhost", 0,
                                  nullptr, &f));
  EXPECT_TRUE(proa_future_cancel(f, nullptr));
  proa_test::SleepMs(20);
  RunIterations(loop, 5);
  EXPECT_TRUE(proa_future_cancelled(f));
  proa_future_unref(f);
  RunIterations(loop, 3);
  EXPECT_EQ(0, srv.factory_calls);
}

// Closing the loop with connections, queued data and a server still open:
// the loop shuts them, no protocol callback runs afterwards, later calls
// fail with ECLOSED, and nothing leaks (ASan).
TEST(tcpLoopClose, WithOpenConnectionsAndAServer) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  Server srv;
  srv.configure = [](Conn &c) {
    c.on_made = [](Conn &s) {
      RawSmallBuffers(proa_transport_socket(s.t));
      s.PauseReading();
    };
  };
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_server(loop, Server::Factory, &srv, "127.0.0.1", 0,
                                  nullptr, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  srv.s = proa_server_ref(static_cast<proa_server *>(v));
  proa_future_unref(f);
  proa_sockaddr a;
  ASSERT_EQ(0, proa_server_sockname(srv.s, 0, &a));
  Conn c;
  ASSERT_EQ(0, proa_create_connection(loop, c.Protocol(), &c, "127.0.0.1",
                                      proa_sockaddr_port(&a), nullptr,
                                      &c.connect_future));
  ASSERT_EQ(0, Await(loop, c.connect_future));
  ASSERT_TRUE(RunUntil(
      loop, [&] { return srv.conns.size() == 1 && srv.conns[0]->made != 0; }));
  RawSmallBuffers(proa_transport_socket(c.t));
  std::vector<uint8_t> big = Pattern(1, 0, 2 * 1024 * 1024);
  ASSERT_EQ(0, proa_transport_write(c.t, big.data(), big.size()));
  ASSERT_GT(proa_transport_get_write_buffer_size(c.t), 0u);
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv.s, &closed));
  Conn *s = srv.conns[0].get();
  std::string client_events = c.events, server_events = s->events;

  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(client_events, c.events) << "a callback ran at close";
  EXPECT_EQ(server_events, s->events) << "a callback ran at close";
  EXPECT_EQ(PROA_ECLOSED, proa_transport_write(c.t, "x", 1));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_write_eof(s->t));
  EXPECT_EQ(-1, proa_transport_socket(c.t));
  EXPECT_EQ(PROA_ECLOSED, proa_transport_peername(c.t, &a));
  proa_transport_close(c.t);
  proa_transport_abort(s->t);
  proa_server_close(srv.s);
  proa_server_close_clients(srv.s);
  EXPECT_EQ(0u, proa_server_socket_count(srv.s));
  EXPECT_EQ(PROA_ECLOSED, proa_loop_run_forever(loop));
  EXPECT_EQ(client_events, c.events);
  EXPECT_EQ(server_events, s->events);
  proa_future_error(closed);
  proa_future_unref(closed);
  EXPECT_EQ(0, proa_loop_free(loop));
  // The transports and the server go with the Conns and srv, after the loop.
}

#ifndef _WIN32
// Restores the descriptor limit and closes the fillers at the end.
struct FdExhaustion {
  rlimit saved;
  std::vector<int> fillers;
  bool lowered = false;
  void Exhaust(rlim_t limit, int template_fd) {
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &saved));
    rlimit low = saved;
    low.rlim_cur = std::min<rlim_t>(limit, saved.rlim_cur);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
    lowered = true;
    for (int i = 0; i < 100000; i++) {
      int fd = dup(template_fd);
      if (fd < 0) {
        ASSERT_EQ(EMFILE, errno);
        return;
      }
      fillers.push_back(fd);
    }
    FAIL() << "could not exhaust the descriptors";
  }
  void Release() {
    for (int fd : fillers)
      close(fd);
    fillers.clear();
    if (lowered)
      setrlimit(RLIMIT_NOFILE, &saved);
    lowered = false;
  }
  ~FdExhaustion() { Release(); }
};
#endif

TEST_F(tcpServer, AcceptBacksOffWhenOutOfDescriptors) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows has no per-process descriptor limit "
                  "(RLIMIT_NOFILE) to exhaust, so AcceptEx cannot be made to "
                  "fail with EMFILE";
#else
  allow_exceptions = true;
  Server *srv = LocalServer([](Conn &c) { c.keep_data = true; });
  // The client socket exists before the descriptors run out.
  intptr_t cs = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, cs);
  proa_sockaddr to;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", srv->port));
  FdExhaustion ex;
  ex.Exhaust(256, static_cast<int>(cs));
  ASSERT_EQ(0, RawConnect(cs, to)) << "connect: " << errno;
  ASSERT_TRUE(Until([&] { return exc.CountError(PROA_EMFILE) > 0; }))
      << "the exception handler never heard of EMFILE";
  EXPECT_EQ(0u, srv->conns.size());
  ex.Release();
  // Accepting resumes after the back-off.
  ASSERT_TRUE(Until([&] {
    return srv->conns.size() == 1 && srv->conns[0]->made;
  })) << "accepting did not resume after descriptors were freed";
  ASSERT_EQ(2, send(static_cast<int>(cs), "ok", 2, 0));
  ASSERT_TRUE(Until([&] { return srv->conns[0]->data == "ok"; }));
  RawClose(cs);
  ASSERT_TRUE(Until([&] { return srv->conns[0]->lost != 0; }));
  for (const auto &ctx : exc.Calls())
    EXPECT_EQ(PROA_EMFILE, ctx.error) << ctx.message;
#endif
}

// ---- server lifetime and option checks ----

// asyncio allows a server that serves one client and closes: the factory
// closes it while its accept is completing.
TEST_F(tcpServer, CloseFromTheFactoryServesThatClient) {
  Server *srv = NewServer();
  srv->configure = [srv](Conn &c) {
    c.echo = true;
    proa_server_close(srv->s);
  };
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0));
  proa_future *closed = nullptr;
  ASSERT_EQ(0, proa_server_wait_closed(srv->s, &closed));
  Conn *c = NewConn("served");
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_EQ(0, Write(c, "only one"));
  ASSERT_TRUE(Until([&] { return c->data == "only one"; }));
  EXPECT_FALSE(proa_server_is_serving(srv->s));
  EXPECT_EQ(0u, proa_server_socket_count(srv->s));
  int rc = ConnectToClosedPort("127.0.0.1", srv->port);
  EXPECT_EQ(PROA_ECONNREFUSED, rc) << proa_err_name(rc);
  EXPECT_EQ(1, srv->factory_calls);
  proa_transport_close(c->t);
  EXPECT_EQ(0, Await(loop, closed));
  proa_future_unref(closed);
}

// The factory closes the server and the caller lets go of it at once:
// the accept that is completing must not outlive the server's memory.
TEST_F(tcpServer, CloseAndReleaseFromTheFactory) {
  Server *srv = NewServer();
  srv->configure = [srv](Conn &c) {
    proa_server_close(srv->s);
    proa_server_unref(srv->s);
    srv->s = nullptr;
  };
  ASSERT_EQ(0, Listen(srv, "127.0.0.1", 0));
  Conn *c = NewConn();
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_TRUE(Until([&] { return srv->conns.size() == 1; }));
  EXPECT_EQ(nullptr, srv->s);
}

TEST_F(tcpServer, ConnectRightAfterCloseIsRefused) {
  // asyncio closes the listening sockets in Server.close() itself; a
  // connect made before the loop runs again must not be queued by a
  // listener that is only waiting for its accepts to be cancelled.
  Server *srv = LocalServer();
  proa_server_close(srv->s);
  proa_sockaddr to;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", srv->port));
  intptr_t fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  EXPECT_NE(0, RawConnect(fd, to))
      << "the listening socket was still open after proa_server_close";
  RawClose(fd);
  // The same while the server was idle with nothing in flight.
  Server *idle = NewServer();
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.start_serving = false;
  ASSERT_EQ(0, Listen(idle, "127.0.0.1", 0, &o));
  proa_server_close(idle->s);
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", idle->port));
  fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  EXPECT_NE(0, RawConnect(fd, to));
  RawClose(fd);
}

TEST_F(tcpServer, EmptyHostListensOnEveryInterface) {
  // asyncio: host "" means every interface, as None does.
  Server *srv = NewServer();
  srv->configure = [](Conn &c) { c.echo = true; };
  int rc = Listen(srv, "", 0);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  size_t n = proa_server_socket_count(srv->s);
  ASSERT_GE(n, 1u);
  int v4_port = 0;
  for (size_t i = 0; i < n; i++) {
    proa_sockaddr a;
    ASSERT_EQ(0, proa_server_sockname(srv->s, i, &a));
    char ip[64];
    ASSERT_GT(proa_sockaddr_ip(&a, ip, sizeof ip), 0);
    EXPECT_TRUE(std::string(ip) == "0.0.0.0" || std::string(ip) == "::") << ip;
    if (proa_sockaddr_family(&a) == PROA_AF_INET)
      v4_port = proa_sockaddr_port(&a);
  }
  ASSERT_NE(0, v4_port) << "no IPv4 wildcard listener";
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", v4_port));
  ASSERT_EQ(0, Write(c, "anywhere"));
  ASSERT_TRUE(Until([&] { return c->data == "anywhere"; }));
}

TEST_F(tcp, ConnectBindFailureNamesTheLocalAddress) {
  Server *srv = LocalServer();
  // A port of 127.0.0.1 that is bound (not listening), and not the
  // server's: the message must name it, not the remote address.
  UnusedPort taken;
  ASSERT_NE(srv->port, taken.port);
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "127.0.0.1";
  o.local_port = taken.port;
  std::string msg;
  int rc = Connect(c, "127.0.0.1", srv->port, &o, &msg);
  EXPECT_EQ(PROA_EADDRINUSE, rc) << proa_err_name(rc);
  EXPECT_NE(std::string::npos,
            msg.find("127.0.0.1:" + std::to_string(taken.port)))
      << "the message does not name the local address: " << msg;
  EXPECT_EQ("", c->events);
}

#ifndef NDEBUG
// src/common/resolve.c, debug builds: a name that resolves to a list.
extern "C" const char *proa__fault_alias_name, *proa__fault_alias_ips;

// asyncio binds to the first local address of the family that works. The
// first one here is not on this host (TEST-NET-1), so its bind fails on
// every OS; the second, loopback, is used.
TEST_F(tcp, ConnectTriesEachLocalAddressOfTheFamily) {
  Server *srv = LocalServer([](Conn &c) { c.echo = true; });
  proa__fault_alias_name = "proa-test-two-v4";
  proa__fault_alias_ips = "192.0.2.1,127.0.0.1";
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.local_host = "proa-test-two-v4";
  std::string msg;
  int rc = Connect(c, "127.0.0.1", srv->port, &o, &msg);
  ASSERT_EQ(0, rc) << proa_err_name(rc) << ": " << msg;
  proa_sockaddr name;
  ASSERT_EQ(0, proa_transport_sockname(c->t, &name));
  char ip[64];
  ASSERT_GT(proa_sockaddr_ip(&name, ip, sizeof ip), 0);
  EXPECT_STREQ("127.0.0.1", ip);

  // With only the address that cannot be bound, the error names it.
  proa__fault_alias_ips = "192.0.2.1";
  Conn *d = NewConn("d");
  rc = Connect(d, "127.0.0.1", srv->port, &o, &msg);
  proa__fault_alias_name = proa__fault_alias_ips = nullptr;
  EXPECT_EQ(PROA_EADDRNOTAVAIL, rc) << proa_err_name(rc) << ": " << msg;
  EXPECT_NE(std::string::npos, msg.find("192.0.2.1")) << msg;
}
#endif

// A UDP socket, for the type checks of opts.sock.
intptr_t RawDgramSocket() {
#ifdef _WIN32
  SOCKET s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  return s == INVALID_SOCKET ? -1 : static_cast<intptr_t>(s);
#else
  return socket(AF_INET, SOCK_DGRAM, 0);
#endif
}

TEST_F(tcp, ConnectRefusesASockWithOtherOptionsAndLeavesItOpen) {
  Server *srv = LocalServer([](Conn &c) { c.echo = true; });
  proa_sockaddr to;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", srv->port));
  intptr_t fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  ASSERT_EQ(0, RawConnect(fd, to));
  Conn *never = NewConn("never");
  proa_future *f = nullptr;
  auto refused = [&](const proa_connect_options &o, int port,
                     const char *what) {
    f = reinterpret_cast<proa_future *>(1);
    EXPECT_EQ(PROA_EINVAL, proa_create_connection(loop, never->Protocol(),
                                                  never, nullptr, port, &o, &f))
        << what;
    EXPECT_EQ(nullptr, f) << what;
  };
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.sock = fd;
  o.family = PROA_AF_INET;
  refused(o, 0, "sock with family");
  o.family = 0;
  o.proto = IPPROTO_TCP;
  refused(o, 0, "sock with proto");
  o.proto = 0;
  o.flags = PROA_AI_NUMERICHOST;
  refused(o, 0, "sock with flags");
  o.flags = 0;
  refused(o, srv->port, "sock with port");
  // A datagram socket is not a stream socket: refused, and still open.
  intptr_t dfd = RawDgramSocket();
  ASSERT_NE(-1, dfd);
  proa_connect_options d = PROA_CONNECT_OPTIONS_INIT;
  d.sock = dfd;
  refused(d, 0, "a datagram socket");
  proa_sockaddr any;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&any, "127.0.0.1", 0));
  EXPECT_EQ(0, RawBind(dfd, any)) << "the refused socket was closed";
  RawClose(dfd);
  RunIterations(loop, 2);
  EXPECT_EQ("", never->events);
  // The refused stream socket is still the caller's and works.
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, nullptr, 0, &o));
  ASSERT_EQ(0, Write(c, "still mine"));
  ASSERT_TRUE(Until([&] { return c->data == "still mine"; }));
}

TEST_F(tcpServer, SockWithOtherOptionsIsRefusedAndLeftOpen) {
  proa_sockaddr any;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&any, "127.0.0.1", 0));
  intptr_t fd = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, fd);
  ASSERT_EQ(0, RawBind(fd, any));
  Server *srv = NewServer();
  proa_future *f = nullptr;
  auto refused = [&](const proa_server_options &o, const char *host, int port,
                     const char *what) {
    f = reinterpret_cast<proa_future *>(1);
    EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, Server::Factory, srv, host,
                                              port, &o, &f))
        << what;
    EXPECT_EQ(nullptr, f) << what;
  };
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  o.sock = fd;
  o.family = PROA_AF_INET;
  refused(o, nullptr, 0, "sock with family");
  o.family = 0;
  o.flags = PROA_AI_NUMERICHOST;
  refused(o, nullptr, 0, "sock with flags");
  o.flags = 0;
  o.reuse_port = 1;
  refused(o, nullptr, 0, "sock with reuse_port");
  o.reuse_port = 0;
  refused(o, nullptr, 8080, "sock with port");
  // A datagram socket fails through the future and stays open.
  intptr_t dfd = RawDgramSocket();
  ASSERT_NE(-1, dfd);
  Server *dsrv = NewServer();
  proa_server_options d = PROA_SERVER_OPTIONS_INIT;
  d.sock = dfd;
  int rc = Listen(dsrv, nullptr, 0, &d);
  EXPECT_EQ(PROA_EINVAL, rc) << proa_err_name(rc);
  EXPECT_EQ(0, RawBind(dfd, any)) << "the refused socket was closed";
  RawClose(dfd);
  // The refused stream socket still works as a listener.
  srv->configure = [](Conn &c) { c.echo = true; };
  ASSERT_EQ(0, Listen(srv, nullptr, 0, &o));
  EXPECT_EQ(fd, proa_server_socket(srv->s, 0));
  Conn *c = NewConn();
  c->keep_data = true;
  ASSERT_EQ(0, Connect(c, "127.0.0.1", srv->port));
  ASSERT_EQ(0, Write(c, "mine"));
  ASSERT_TRUE(Until([&] { return c->data == "mine"; }));
}

#ifndef _WIN32
// Closes the server from the exception handler when it hears of EMFILE.
struct CloseOnEmfile {
  proa_server *s = nullptr;
  int reports = 0, emfile = 0;
  static int Handler(proa_loop *, const proa_context *ctx, void *arg) {
    CloseOnEmfile *self = static_cast<CloseOnEmfile *>(arg);
    self->reports++;
    if (ctx->error == PROA_EMFILE) {
      self->emfile++;
      proa_server_close(self->s);
    }
    return 0;
  }
};
#endif

TEST_F(tcpServer, CloseFromTheExceptionHandlerDuringBackOff) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows has no per-process descriptor limit "
                  "(RLIMIT_NOFILE) to exhaust, so AcceptEx cannot be made to "
                  "fail with EMFILE";
#else
  allow_exceptions = true;
  Server *srv = LocalServer();
  CloseOnEmfile h;
  h.s = srv->s;
  ASSERT_EQ(0,
            proa_loop_set_exception_handler(loop, CloseOnEmfile::Handler, &h));
  intptr_t cs = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, cs);
  proa_sockaddr to;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&to, "127.0.0.1", srv->port));
  FdExhaustion ex;
  ex.Exhaust(256, static_cast<int>(cs));
  ASSERT_EQ(0, RawConnect(cs, to)) << "connect: " << errno;
  ASSERT_TRUE(Until([&] { return h.emfile > 0; }))
      << "the exception handler never heard of EMFILE";
  ex.Release();
  EXPECT_FALSE(proa_server_is_serving(srv->s));
  RawClose(cs);
  // No back-off timer outlives the close: nothing more is accepted.
  RunIterations(loop, 5);
  EXPECT_EQ(0, srv->factory_calls);
  intptr_t late = RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, late);
  EXPECT_NE(0, RawConnect(late, to)) << "still listening after close";
  RawClose(late);
  exc.Attach(loop);
#endif
}

} // namespace

// Closing the loop while names are still being resolved: every future ends
// (none is left pending for ever) and nothing leaks (LeakSanitizer checks
// the latter in the ASan build).
TEST(tcpLoopClose, PendingLookupsEndAndLeakNothing) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  static const proa_protocol none = {nullptr, nullptr, nullptr, nullptr,
                                     nullptr, nullptr, nullptr, nullptr};
  proa_future *server = nullptr, *conn = nullptr, *stream = nullptr,
              *dgram = nullptr;
  auto factory = [](void *, const proa_protocol **p, void **self) {
    *p = &none;
    *self = nullptr;
    return 0;
  };
  ASSERT_EQ(0, proa_create_server(loop, factory, nullptr, "localhost", 0,
                                  nullptr, &server));
  ASSERT_EQ(0, proa_create_connection(loop, &none, nullptr, "localhost", 9,
                                      nullptr, &conn));
  ASSERT_EQ(0, proa_open_connection(loop, "localhost", 9, nullptr, 0, &stream));
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  o.remote_host = "localhost";
  o.remote_port = 9;
  ASSERT_EQ(0,
            proa_create_datagram_endpoint(loop, nullptr, nullptr, &o, &dgram));
  ASSERT_EQ(0, proa_loop_free(loop)); // the lookups are still running
  for (proa_future *f : {server, conn, stream, dgram}) {
    EXPECT_TRUE(proa_future_done(f));
    EXPECT_NE(0, proa_future_error(f));
    proa_future_unref(f);
  }
}
