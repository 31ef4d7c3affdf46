// Tests of streams (streams.h): open_connection and start_server with the
// buffered reader and writer, driven from tasks over loopback. Most tests
// put a stream (the client) in front of a recording peer whose writes the
// test times exactly; the server-side tests use start_server's handlers.
#include "task_test.h"

#include <memory>
#include <set>
#include <string>

using namespace proa_task_test;
using proa_net_test::Pattern;
using proa_net_test::RunIterations;
using proa_net_test::RunUntil;

namespace {

class Stream : public TaskFixture {};

std::string Str(const std::vector<uint8_t> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size());
}

// ---- read ----

TEST_F(Stream, ReadReturnsWhatIsBufferedUpToNAndEmptyAtEof) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    ASSERT_EQ(0, PeerWrite(peer, "hello world"));
    ASSERT_TRUE(Settled(peer, s));
    std::string got;
    EXPECT_EQ(0, Read(s, 5, &got));
    EXPECT_EQ("hello", got);
    EXPECT_EQ(0, Read(s, 100, &got)) << "read waited for more than was there";
    EXPECT_EQ(" world", got);
    // Nothing buffered: the read waits for the next bytes, not for n.
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_stream_read(s, 100, &f));
    EXPECT_FALSE(proa_future_done(f));
    ASSERT_EQ(0, PeerWrite(peer, "more"));
    EXPECT_EQ(0, AwaitBytes(f, &got));
    EXPECT_EQ("more", got);
    EXPECT_FALSE(proa_stream_at_eof(s));
    proa_transport_close(peer->t);
    got = "x";
    EXPECT_EQ(0, Read(s, 10, &got));
    EXPECT_EQ("", got) << "end of stream must read as empty";
    EXPECT_TRUE(proa_stream_at_eof(s));
    got = "x";
    EXPECT_EQ(0, Read(s, 10, &got));
    EXPECT_EQ("", got) << "and again";
  }));
  EXPECT_EQ(0, Finish(t.get()));
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_stream_read(s, 0, &f));
}

TEST_F(Stream, EndOfStreamBeforeAnyData) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  proa_transport_close(peer->t);
  Fut t(SpawnV([&] {
    std::string got = "x", message;
    EXPECT_EQ(0, Read(s, 10, &got));
    EXPECT_EQ("", got);
    EXPECT_EQ(PROA_EOF, ReadExactly(s, 4, &got, &message));
    EXPECT_NE("", message);
    got = "x";
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("", got);
    EXPECT_EQ(PROA_EOF, ReadUntil(s, "\r\n", &got));
    EXPECT_TRUE(proa_stream_at_eof(s));
  }));
  EXPECT_EQ(0, Finish(t.get()));
}

// ---- readexactly ----

TEST_F(Stream, ReadexactlyGetsExactlyNAcrossSeveralWrites) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    std::string got = "x";
    EXPECT_EQ(0, ReadExactly(s, 0, &got));
    EXPECT_EQ("", got);
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_stream_readexactly(s, 10, &f));
    for (const char *part : {"abc", "defg"}) {
      ASSERT_EQ(0, PeerWrite(peer, part));
      ASSERT_TRUE(Settled(peer, s));
      EXPECT_FALSE(proa_future_done(f)) << "completed early, after " << part;
    }
    ASSERT_EQ(0, PeerWrite(peer, "hijXYZ"));
    EXPECT_EQ(0, AwaitBytes(f, &got));
    EXPECT_EQ("abcdefghij", got);
    EXPECT_EQ(0, Read(s, 100, &got)) << "the rest stays buffered";
    EXPECT_EQ("XYZ", got);
  }));
  EXPECT_EQ(0, Finish(t.get()));
}

TEST_F(Stream, ReadexactlyEndsWithEofAndAMessageWhenThePeerClosesEarly) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_stream_readexactly(s, 10, &f));
    ASSERT_EQ(0, PeerWrite(peer, "12345"));
    proa_transport_close(peer->t);
    std::string got, message;
    EXPECT_EQ(PROA_EOF, AwaitBytes(f, &got, &message));
    EXPECT_NE(std::string::npos, message.find('5'))
        << "the message must say how many bytes arrived: \"" << message << "\"";
    got = "x";
    EXPECT_EQ(0, Read(s, 100, &got)) << "the partial bytes are dropped";
    EXPECT_EQ("", got);
  }));
  EXPECT_EQ(0, Finish(t.get()));
}

TEST_F(Stream, ReadexactlyOfMoreThanTwiceTheLimit) {
  // More than 2 * limit unread bytes pause reading from the socket; a
  // readexactly that needs more than that must still complete (asyncio
  // resumes reading while a reader waits for data). The first part alone
  // goes over 2 * limit; the rest is sent once the stream has read it.
  const size_t kLimit = 1024, kFirst = 3000, kSize = 16 * 1024;
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer, kLimit);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  std::vector<uint8_t> data = Pattern(3, 0, kSize);
  std::string got;
  int rc = 1;
  Fut t(SpawnV([&] {
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_stream_readexactly(s, kSize, &f));
    ASSERT_EQ(0, proa_transport_write(peer->t, data.data(), kFirst));
    ASSERT_TRUE(Settled(peer, s));
    EXPECT_FALSE(proa_future_done(f));
    ASSERT_EQ(
        0, proa_transport_write(peer->t, data.data() + kFirst, kSize - kFirst));
    rc = AwaitBytes(f, &got);
  }));
  EXPECT_EQ(0, Finish(t.get(), nullptr, 5.0))
      << "readexactly(" << kSize << ") with limit " << kLimit
      << " never completed";
  EXPECT_EQ(0, rc) << proa_err_name(rc);
  EXPECT_EQ(kSize, got.size());
  EXPECT_TRUE(got == Str(data)) << "the bytes differ";
}

// ---- readuntil and readline ----

TEST_F(Stream, ReaduntilWithASeparatorSplitAcrossPackets) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    const std::string sep = "\r\n\r\n";
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_stream_readuntil(s, sep.data(), sep.size(), &f));
    for (const char *part : {"HEAD\r\n", "\r"}) {
      ASSERT_EQ(0, PeerWrite(peer, part));
      ASSERT_TRUE(Settled(peer, s));
      EXPECT_FALSE(proa_future_done(f)) << "completed early, after a part";
    }
    ASSERT_EQ(0, PeerWrite(peer, "\nTAIL"));
    std::string got;
    EXPECT_EQ(0, AwaitBytes(f, &got));
    EXPECT_EQ("HEAD\r\n\r\n", got);
    // A partial match that fails ("\r\n\r" then "X") is not a separator.
    ASSERT_EQ(0, proa_stream_readuntil(s, sep.data(), sep.size(), &f));
    for (const char *part : {"\r\n\r", "X\r\n"}) {
      ASSERT_EQ(0, PeerWrite(peer, part));
      ASSERT_TRUE(Settled(peer, s));
      EXPECT_FALSE(proa_future_done(f));
    }
    ASSERT_EQ(0, PeerWrite(peer, "\r\n!"));
    EXPECT_EQ(0, AwaitBytes(f, &got));
    EXPECT_EQ("TAIL\r\n\rX\r\n\r\n", got);
    EXPECT_EQ(0, Read(s, 100, &got));
    EXPECT_EQ("!", got);
  }));
  EXPECT_EQ(0, Finish(t.get()));
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_stream_readuntil(s, "", 0, &f));
  EXPECT_EQ(PROA_EINVAL, proa_stream_readuntil(s, nullptr, 1, &f));
}

TEST_F(Stream, ReaduntilAtEndOfStreamWithoutTheSeparator) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    ASSERT_EQ(0, PeerWrite(peer, "no separator"));
    proa_transport_close(peer->t);
    std::string got, message;
    EXPECT_EQ(PROA_EOF, ReadUntil(s, "|", &got, &message));
    got = "x";
    EXPECT_EQ(0, Read(s, 100, &got)) << "the partial data is dropped";
    EXPECT_EQ("", got);
  }));
  EXPECT_EQ(0, Finish(t.get()));
}

TEST_F(Stream, ReadlineReturnsThePartialLastLineAtEof) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    ASSERT_EQ(0, PeerWrite(peer, "one\ntw"));
    ASSERT_TRUE(Settled(peer, s));
    std::string got;
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("one\n", got);
    ASSERT_EQ(0, PeerWrite(peer, "o\nthr"));
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("two\n", got);
    proa_transport_close(peer->t);
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("thr", got);
    got = "x";
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("", got);
    EXPECT_TRUE(proa_stream_at_eof(s));
  }));
  EXPECT_EQ(0, Finish(t.get()));
}

// ---- the buffer limit ----

TEST_F(Stream, LineOverTheLimitIsDroppedAndTheNextLineReads) {
  const size_t kLimit = 16;
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer, kLimit);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    ASSERT_EQ(0, PeerWrite(peer, std::string(24, 'x') + "\nnext\n"));
    ASSERT_TRUE(Settled(peer, s));
    std::string got;
    EXPECT_EQ(PROA_ELIMIT, ReadLine(s, &got));
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("next\n", got);
    ASSERT_EQ(0, PeerWrite(peer, "last\n"));
    EXPECT_EQ(0, ReadLine(s, &got));
    EXPECT_EQ("last\n", got);
  }));
  EXPECT_EQ(0, Finish(t.get(), nullptr, 5.0));
}

TEST_F(Stream, LineOverTwiceTheLimitThenTheNextLineArrivesLater) {
  // 41 bytes with a limit of 16 (more than twice the limit) pause reading
  // from the socket. Once readline dropped the long line with PROA_ELIMIT,
  // the stream must read again: the next line arrives only afterwards.
  const size_t kLimit = 16;
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer, kLimit);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  int rc_long = 1, rc_next = 1;
  std::string next;
  Fut t(SpawnV([&] {
    ASSERT_EQ(0, PeerWrite(peer, std::string(40, 'x') + "\n"));
    ASSERT_TRUE(Settled(peer, s));
    std::string got;
    rc_long = ReadLine(s, &got);
    ASSERT_EQ(0, PeerWrite(peer, "next\n"));
    rc_next = ReadLine(s, &next);
  }));
  EXPECT_EQ(0, Finish(t.get(), nullptr, 5.0))
      << "the line after an over-long one never arrived";
  EXPECT_EQ(PROA_ELIMIT, rc_long);
  EXPECT_EQ(0, rc_next) << proa_err_name(rc_next);
  EXPECT_EQ("next\n", next);
}

TEST_F(Stream, ReaduntilOverTheLimitKeepsTheData) {
  const size_t kLimit = 16;
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer, kLimit);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  Fut t(SpawnV([&] {
    // No separator within the limit.
    const std::string a = "0123456789abcdefghij"; // 20 bytes
    ASSERT_EQ(0, PeerWrite(peer, a));
    ASSERT_TRUE(Settled(peer, s));
    std::string got, message;
    EXPECT_EQ(PROA_ELIMIT, ReadUntil(s, "|", &got, &message));
    EXPECT_EQ(0, ReadExactly(s, a.size(), &got)) << "the data was not kept";
    EXPECT_EQ(a, got);
    // A separator, but the chunk would be longer than the limit.
    const std::string b = "ABCDEFGHIJKLMNOPQRS|"; // 20 bytes
    ASSERT_EQ(0, PeerWrite(peer, b));
    ASSERT_TRUE(Settled(peer, s));
    EXPECT_EQ(PROA_ELIMIT, ReadUntil(s, "|", &got));
    EXPECT_EQ(0, ReadExactly(s, b.size(), &got)) << "the data was not kept";
    EXPECT_EQ(b, got);
    // Within the limit it works as usual.
    ASSERT_EQ(0, PeerWrite(peer, "short|rest"));
    EXPECT_EQ(0, ReadUntil(s, "|", &got));
    EXPECT_EQ("short|", got);
  }));
  EXPECT_EQ(0, Finish(t.get(), nullptr, 5.0));
}

// ---- one read at a time ----

TEST_F(Stream, ASecondConcurrentReadIsBusy) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  proa_future *first = nullptr;
  ASSERT_EQ(0, proa_stream_read(s, 10, &first));
  Fut hold(first);
  proa_future *f = reinterpret_cast<proa_future *>(&f);
  EXPECT_EQ(PROA_EBUSY, proa_stream_read(s, 10, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EBUSY, proa_stream_readexactly(s, 1, &f));
  EXPECT_EQ(PROA_EBUSY, proa_stream_readuntil(s, "|", 1, &f));
  EXPECT_EQ(PROA_EBUSY, proa_stream_readline(s, &f));
  EXPECT_EQ(nullptr, f);
  std::string got, later;
  int rc_busy = 1;
  Fut t(SpawnV([&] {
    proa_future *g = nullptr;
    rc_busy = proa_stream_read(s, 10, &g); // from a task as well
    ASSERT_EQ(0, PeerWrite(peer, "abc"));
    EXPECT_EQ(0, proa_await(first, nullptr));
    void *v = nullptr;
    EXPECT_EQ(0, proa_future_result(first, &v));
    if (v != nullptr)
      got.assign(
          reinterpret_cast<const char *>(static_cast<proa_bytes *>(v)->data),
          static_cast<proa_bytes *>(v)->len);
    ASSERT_EQ(0, PeerWrite(peer, "def"));
    EXPECT_EQ(0, Read(s, 10, &later)) << "a read after the first one is done";
  }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ(PROA_EBUSY, rc_busy);
  EXPECT_EQ("abc", got);
  EXPECT_EQ("def", later);
}

// ---- writing: flow control, write_eof, close ----

TEST_F(Stream, DrainWaitsUntilThePeerReads) {
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer, 0, [](Conn &c) {
    c.verify = true;
    c.seed = 5;
    c.on_made = [](Conn &p) {
      proa_net_test::RawSmallBuffers(proa_transport_socket(p.t));
      p.PauseReading();
    };
  });
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  proa_transport *tr = proa_stream_transport(s);
  ASSERT_NE(nullptr, tr);
  proa_net_test::RawSmallBuffers(Sock(s));
  size_t low = 0, high = 0;
  proa_transport_get_write_buffer_limits(tr, &low, &high);
  const size_t kSize = 4 * 1024 * 1024;
  std::vector<uint8_t> data = Pattern(5, 0, kSize);
  bool done_while_peer_paused = true;
  size_t buffered_then = 0, buffered_at_drain = SIZE_MAX;
  int rc = 1;
  Fut t(SpawnV([&] {
    // An empty buffer drains at once.
    proa_future *d = nullptr;
    ASSERT_EQ(0, proa_stream_drain(s, &d));
    EXPECT_TRUE(proa_future_done(d)) << "nothing written, yet drain waits";
    proa_future_unref(d);
    ASSERT_EQ(0, proa_stream_write(s, data.data(), data.size()));
    ASSERT_EQ(0, proa_stream_drain(s, &d));
    // The peer reads nothing, so however long we wait the buffer stays
    // above the high-water mark and drain must stay pending.
    for (int i = 0; i < 5; i++)
      EXPECT_EQ(0, TaskSleep(loop, 0.01));
    done_while_peer_paused = proa_future_done(d);
    buffered_then = proa_transport_get_write_buffer_size(tr);
    peer->ResumeReading();
    rc = proa_await(d, nullptr);
    buffered_at_drain = proa_transport_get_write_buffer_size(tr);
    proa_future_unref(d);
    EXPECT_TRUE(TaskUntil(loop, [&] { return peer->received == kSize; }));
  }));
  EXPECT_EQ(0, Finish(t.get(), nullptr, 20.0));
  EXPECT_GT(buffered_then, high) << "the test did not fill the buffer";
  EXPECT_FALSE(done_while_peer_paused)
      << "drain completed while " << buffered_then
      << " bytes were buffered (high-water mark " << high
      << ") and the peer read nothing";
  EXPECT_EQ(0, rc);
  EXPECT_LE(buffered_at_drain, low)
      << "drain completed above the low-water mark";
  EXPECT_EQ(kSize, peer->received);
  EXPECT_EQ(0u, peer->mismatches);
}

TEST_F(Stream, WriteEofHalfClosesAndTheOtherDirectionGoesOn) {
  auto seen = std::make_shared<std::string>();
  int port = StartServer([seen](proa_stream *s) {
    std::string chunk;
    int rc;
    while ((rc = Read(s, 100, &chunk)) == 0 && !chunk.empty())
      *seen += chunk;
    if (rc != 0)
      return rc;
    std::string reply = "got " + std::to_string(seen->size()) + "\n";
    return WriteDrain(s, reply);
  });
  ASSERT_GT(port, 0);
  proa_stream *s = Open(port);
  ASSERT_NE(nullptr, s);
  std::string reply, after;
  int rc_after_eof = 0;
  Fut t(SpawnV([&] {
    EXPECT_TRUE(proa_transport_can_write_eof(proa_stream_transport(s)));
    ASSERT_EQ(0, proa_stream_write(s, "abcdef", 6));
    ASSERT_EQ(0, proa_stream_write_eof(s));
    rc_after_eof = proa_stream_write(s, "x", 1);
    EXPECT_EQ(0, ReadLine(s, &reply)) << "reading goes on after write_eof";
    after = "x";
    EXPECT_EQ(0, Read(s, 10, &after));
  }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ("abcdef", *seen);
  EXPECT_EQ("got 6\n", reply);
  EXPECT_EQ("", after) << "the handler's return closes the stream";
  EXPECT_EQ(PROA_EPIPE, rc_after_eof);
}

TEST_F(Stream, CloseThenWaitClosed) {
  auto handler_eof = std::make_shared<int>(0);
  int port = StartServer([handler_eof](proa_stream *s) {
    std::string got = "x";
    int rc = Read(s, 10, &got);
    *handler_eof = rc == 0 && got.empty() ? 1 : -1;
    return 0;
  });
  ASSERT_GT(port, 0);
  proa_stream *s = Open(port);
  ASSERT_NE(nullptr, s);
  proa_future *w = nullptr;
  ASSERT_EQ(0, proa_stream_wait_closed(s, &w));
  Fut wait(w);
  RunIterations(loop, 3);
  EXPECT_FALSE(proa_future_done(w)) << "wait_closed completed before close";
  int rc_wait = 1, rc_write = 0;
  Fut t(SpawnV([&] {
    proa_stream_close(s);
    proa_stream_close(s); // idempotent
    rc_write = proa_stream_write(s, "x", 1);
    rc_wait = proa_await(w, nullptr);
    proa_future *again = nullptr;
    ASSERT_EQ(0, proa_stream_wait_closed(s, &again));
    EXPECT_EQ(0, proa_await(again, nullptr)) << "a closed stream's wait_closed";
    EXPECT_TRUE(proa_future_done(again));
    proa_future_unref(again);
    proa_stream_close(s); // still idempotent
  }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ(0, rc_wait);
  EXPECT_NE(0, rc_write) << "write after close was accepted";
  EXPECT_TRUE(Until([&] { return *handler_eof != 0; }));
  EXPECT_EQ(1, *handler_eof) << "the handler did not see the end of stream";
}

// ---- start_server ----

struct HandlerLog {
  // Each held by a reference, so that a finished task's memory cannot be
  // reused by the next one and make two tasks look the same.
  std::vector<proa_future *> tasks;
  int in_task = 0;
  int returned = 0;
  ~HandlerLog() {
    for (proa_future *f : tasks)
      proa_future_unref(f);
  }
};

TEST_F(Stream, ServerRunsEachHandlerInATaskAndClosesTheStreamOnReturn) {
  auto log = std::make_shared<HandlerLog>();
  int port = StartServer([log](proa_stream *s) {
    proa_future *me = proa_current_task();
    log->tasks.push_back(me ? proa_future_ref(me) : nullptr);
    log->in_task += me != nullptr && proa_future_is_task(me);
    int rc = WriteDrain(s, "hi\n");
    log->returned++;
    return rc; // without closing: returning closes the stream
  });
  ASSERT_GT(port, 0);
  const int kClients = 3;
  std::vector<std::string> lines(kClients), after(kClients, "x");
  std::vector<Fut> tasks;
  for (int i = 0; i < kClients; i++) {
    proa_stream *s = Open(port);
    ASSERT_NE(nullptr, s);
    tasks.emplace_back(SpawnV([&, s, i] {
      EXPECT_EQ(0, ReadLine(s, &lines[i]));
      EXPECT_EQ(0, Read(s, 10, &after[i]));
    }));
  }
  for (auto &t : tasks)
    EXPECT_EQ(0, Finish(t.get()));
  for (int i = 0; i < kClients; i++) {
    EXPECT_EQ("hi\n", lines[i]);
    EXPECT_EQ("", after[i]) << "client " << i << " did not see the close";
  }
  EXPECT_EQ(kClients, log->returned);
  EXPECT_EQ(kClients, log->in_task) << "a handler ran outside a task";
  std::set<proa_future *> distinct(log->tasks.begin(), log->tasks.end());
  EXPECT_EQ(static_cast<size_t>(kClients), distinct.size())
      << "connections shared a task";
}

int FactoryCount(proa_loop *loop, proa_task_fn fn, void *arg,
                 const proa_task_options *opts, void *factory_arg,
                 proa_future **out) {
  ++*static_cast<int *>(factory_arg);
  return proa_task_new(loop, fn, arg, opts, out);
}

TEST_F(Stream, HandlerTasksComeFromTheTaskFactory) {
  int made = 0;
  ASSERT_EQ(0, proa_loop_set_task_factory(loop, FactoryCount, &made));
  int port = StartServer([](proa_stream *s) { return WriteDrain(s, "x"); });
  ASSERT_GT(port, 0);
  proa_stream *s = Open(port);
  ASSERT_NE(nullptr, s);
  EXPECT_TRUE(Until([&] { return made == 1; }))
      << "the handler's task did not come from the factory";
  std::string got;
  Fut t(SpawnV([&] { EXPECT_EQ(0, ReadExactly(s, 1, &got)); }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ("x", got);
  EXPECT_EQ(2, made);
}

struct Reports {
  int calls = 0;
  int error = 0;
  bool is_task = false;
};

int RecordReport(proa_loop *, const proa_context *ctx, void *arg) {
  Reports *r = static_cast<Reports *>(arg);
  r->calls++;
  r->error = ctx->error;
  r->is_task = proa_future_is_task(ctx->future);
  return 0;
}

TEST_F(Stream, HandlerErrorReachesTheExceptionHandler) {
  Reports reports;
  ASSERT_EQ(0, proa_loop_set_exception_handler(loop, RecordReport, &reports));
  int port = StartServer([](proa_stream *) { return (int)PROA_EIO; });
  ASSERT_GT(port, 0);
  proa_stream *s = Open(port);
  ASSERT_NE(nullptr, s);
  std::string got = "x";
  Fut t(SpawnV([&] { EXPECT_EQ(0, Read(s, 10, &got)); }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ("", got) << "the stream was not closed after the handler";
  EXPECT_TRUE(Until([&] { return reports.calls > 0; }))
      << "the handler's error never reached the exception handler";
  RunIterations(loop, 2);
  EXPECT_EQ(1, reports.calls);
  EXPECT_EQ(PROA_EIO, reports.error);
  EXPECT_TRUE(reports.is_task);
}

TEST_F(Stream, OpenConnectionRefused) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 0));
  intptr_t sock = proa_net_test::RawSocket(PROA_AF_INET);
  ASSERT_NE(-1, sock);
  ASSERT_EQ(0, proa_net_test::RawBind(sock, a));
  // Bound but not listening: connections are refused, and no other
  // process can take the port meanwhile.
  proa_sockaddr bound;
  ASSERT_EQ(0, proa_net_test::RawSockname(sock, &bound));
  int rc = 1;
  Fut t(SpawnV([&] {
    proa_future *f = nullptr;
    ASSERT_EQ(0,
              proa_open_connection(loop, "127.0.0.1",
                                   proa_sockaddr_port(&bound), nullptr, 0, &f));
    void *v = &v;
    rc = proa_await(f, &v);
    EXPECT_EQ(nullptr, v);
    proa_future_unref(f);
  }));
  EXPECT_EQ(0, Finish(t.get()));
  proa_net_test::RawClose(sock);
  EXPECT_EQ(PROA_ECONNREFUSED, rc) << proa_err_name(rc);
}

TEST_F(Stream, EchoThroughAServerHandler) {
  int port = StartServer([](proa_stream *s) {
    std::string line;
    int rc;
    while ((rc = ReadLine(s, &line)) == 0 && !line.empty())
      if ((rc = WriteDrain(s, "echo: " + line)) != 0)
        break;
    return rc;
  });
  ASSERT_GT(port, 0);
  std::vector<std::string> replies;
  Fut t(SpawnV([&] {
    proa_future *f = nullptr;
    ASSERT_EQ(0, proa_open_connection(loop, "127.0.0.1", port, nullptr, 0, &f));
    void *v = nullptr;
    ASSERT_EQ(0, proa_await(f, &v));
    proa_stream *s = proa_stream_ref(static_cast<proa_stream *>(v));
    proa_future_unref(f);
    proa_sockaddr peer;
    EXPECT_EQ(0, proa_transport_peername(proa_stream_transport(s), &peer));
    EXPECT_EQ(port, proa_sockaddr_port(&peer));
    for (const char *msg : {"one\n", "two\n", "three\n"}) {
      std::string reply;
      EXPECT_EQ(0, WriteDrain(s, msg));
      EXPECT_EQ(0, ReadLine(s, &reply));
      replies.push_back(reply);
    }
    EXPECT_EQ(0, CloseWait(s));
    proa_stream_unref(s);
  }));
  EXPECT_EQ(0, Finish(t.get()));
  EXPECT_EQ(
      (std::vector<std::string>{"echo: one\n", "echo: two\n", "echo: three\n"}),
      replies);
}

} // namespace
