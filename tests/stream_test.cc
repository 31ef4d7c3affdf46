// The stream transport (src/common/stream.c) over a scripted handle: a
// handle whose table is the loop's own with read, cancel, write and close
// replaced, so that a test decides when a read completes and whether a
// cancel wins. That makes deterministic what no real backend can be made
// to do on demand: a read that completes with data after pause_reading
// cancelled it (the race IOCP and io_uring have), which must lose nothing.
#include "proa_test.h"

extern "C" {
#include "transport.h"
}

#include <string>

using namespace proa_test;

namespace {

struct Scripted {
  proa__ioh h; // first: what the transport holds
  proa__backend_ops ops;
  proa__read_op *read = nullptr; // the read in flight, if any
  int reads = 0, cancels = 0;
  bool closed = false;
  std::string written;
  char lent[64];
};

Scripted *Of(proa__ioh *h) { return reinterpret_cast<Scripted *>(h); }

void Read(proa__ioh *h, proa__read_op *op) {
  Scripted *s = Of(h);
  ASSERT_EQ(nullptr, s->read) << "a second read in flight";
  s->read = op;
  s->reads++;
}

// A cancel that loses the race: the read stays, and completes later.
void Cancel(proa__ioh *h, proa__op *op) {
  Scripted *s = Of(h);
  (void)op;
  s->cancels++;
}

intptr_t TryWrite(proa__ioh *h, const proa_buf *bufs, size_t count) {
  Scripted *s = Of(h);
  intptr_t n = 0;
  for (size_t i = 0; i < count; i++) {
    s->written.append(static_cast<const char *>(bufs[i].base), bufs[i].len);
    n += static_cast<intptr_t>(bufs[i].len);
  }
  return n;
}

void Close(proa__ioh *h) { Of(h)->closed = true; }

// Completes the read in flight with `data` ("" is the end of the stream)
// in the backend's lent memory, as a backend's poll phase would.
void Complete(Scripted *s, const std::string &data) {
  proa__read_op *op = s->read;
  ASSERT_NE(nullptr, op);
  ASSERT_LE(data.size(), sizeof s->lent);
  s->read = nullptr;
  data.copy(s->lent, data.size());
  op->data = s->lent;
  op->op.result = static_cast<intptr_t>(data.size());
  op->op.complete(&op->op);
}

struct Peer {
  proa_transport *t = nullptr;
  std::string got;
  int eofs = 0, lost = 0;
};

const proa_protocol kPeer = {
    [](void *self, proa_transport *t) { static_cast<Peer *>(self)->t = t; },
    [](void *self, const void *data, size_t len) {
      static_cast<Peer *>(self)->got.append(static_cast<const char *>(data),
                                            len);
    },
    [](void *self) {
      static_cast<Peer *>(self)->eofs++;
      return false;
    },
    [](void *self, int) { static_cast<Peer *>(self)->lost++; },
    nullptr,
    nullptr,
    nullptr,
    nullptr};

class stream : public LoopTest {
protected:
  Scripted s;
  Peer peer;

  void SetUp() override {
    LoopTest::SetUp();
    s.ops = *loop->be_ops;
    s.ops.read = Read;
    s.ops.cancel = Cancel;
    s.ops.try_write = TryWrite;
    s.ops.close = Close;
    s.h.ops = &s.ops;
    s.h.os = -1;
    s.h.kind = PROA__IOH_PIPE;
    proa_transport *t = nullptr;
    ASSERT_EQ(0, proa__transport_new(loop, &s.h, &kPeer, &peer, nullptr, &t));
    ASSERT_EQ(0, proa__transport_start(t, nullptr));
    Turn(); // connection_made, and the first read
    ASSERT_EQ(t, peer.t);
    ASSERT_NE(nullptr, s.read);
  }

  void TearDown() override {
    if (s.read) // the transport waits for its read to end before it goes
      Complete(&s, "");
    Turn();
    LoopTest::TearDown();
  }

  void Turn() {
    for (int i = 0; i < 3; i++)
      ASSERT_EQ(0, RunOnce(loop));
  }
};

TEST_F(stream, ReadThatBeatsPauseIsDeliveredOnResume) {
  Complete(&s, "one");
  EXPECT_EQ("one", peer.got);
  ASSERT_EQ(0, proa_transport_pause_reading(peer.t));
  EXPECT_EQ(1, s.cancels); // the read in flight was asked to stop
  Complete(&s, "two");     // ... but had already completed
  EXPECT_EQ("one", peer.got);
  EXPECT_EQ(nullptr, s.read); // no read while paused
  Turn();
  EXPECT_EQ("one", peer.got);
  ASSERT_EQ(0, proa_transport_resume_reading(peer.t));
  EXPECT_EQ("one", peer.got); // not from inside resume_reading
  Turn();
  EXPECT_EQ("onetwo", peer.got);
  ASSERT_NE(nullptr, s.read); // and reading goes on
  Complete(&s, "three");
  EXPECT_EQ("onetwothree", peer.got);
  EXPECT_EQ(0, peer.lost);
}

TEST_F(stream, EndOfStreamThatBeatsPauseComesAfterTheDataOnResume) {
  ASSERT_EQ(0, proa_transport_pause_reading(peer.t));
  Complete(&s, "last");
  EXPECT_EQ(nullptr, s.read);
  // Pausing again, and resuming twice, change nothing.
  ASSERT_EQ(0, proa_transport_pause_reading(peer.t));
  ASSERT_EQ(0, proa_transport_resume_reading(peer.t));
  ASSERT_EQ(0, proa_transport_resume_reading(peer.t));
  Turn();
  EXPECT_EQ("last", peer.got);
  EXPECT_EQ(0, peer.eofs);
  ASSERT_NE(nullptr, s.read);
  ASSERT_EQ(0, proa_transport_pause_reading(peer.t));
  Complete(&s, ""); // the end of the stream, while paused
  EXPECT_EQ(0, peer.eofs);
  EXPECT_EQ(nullptr, s.read);
  ASSERT_EQ(0, proa_transport_resume_reading(peer.t));
  Turn();
  EXPECT_EQ(1, peer.eofs);
  EXPECT_EQ(1, peer.lost); // eof_received said false: the transport closed
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(nullptr, s.read);
}

TEST_F(stream, StashedBytesAreDroppedWhenTheTransportClosesPaused) {
  ASSERT_EQ(0, proa_transport_pause_reading(peer.t));
  Complete(&s, "unread");
  proa_transport_close(peer.t); // asyncio drops unread data on close
  Turn();
  EXPECT_EQ("", peer.got);
  EXPECT_EQ(1, peer.lost);
  EXPECT_TRUE(s.closed);
}

TEST_F(stream, WritesGoStraightToTheHandle) {
  ASSERT_EQ(0, proa_transport_write(peer.t, "abc", 3));
  proa_buf two[2] = {{"de", 2}, {"f", 1}};
  ASSERT_EQ(0, proa_transport_writelines(peer.t, two, 2));
  EXPECT_EQ("abcdef", s.written);
  EXPECT_EQ(0u, proa_transport_get_write_buffer_size(peer.t));
}

} // namespace
