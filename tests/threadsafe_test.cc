// Tests of proa_call_soon_threadsafe: wake-ups, delivery from many threads,
// ordering, and racing with proa_loop_close().
#include "proa_test.h"

using namespace proa_test;

namespace {

using Threadsafe = LoopTest;

struct Woken {
  proa_loop *loop;
  std::thread::id thread;
  int calls = 0;
};

void WokenCb(void *arg) {
  Woken *w = static_cast<Woken *>(arg);
  ++w->calls;
  w->thread = std::this_thread::get_id();
  proa_loop_stop(w->loop);
}

TEST_F(Threadsafe, WakesLoopSleepingOnALongTimer) {
  Woken w{loop};
  std::atomic<int> rc{1};
  std::thread t([&] {
    SleepMs(50);
    rc = proa_call_soon_threadsafe(loop, WokenCb, &w, nullptr);
  });
  double t0 = WallSeconds();
  bool fired = false;
  int run_rc = RunWithWatchdog(loop, 30, &fired);
  double elapsed = WallSeconds() - t0;
  t.join();
  EXPECT_EQ(0, run_rc);
  EXPECT_EQ(0, rc.load());
  EXPECT_FALSE(fired) << "call_soon_threadsafe did not wake the loop";
  EXPECT_EQ(1, w.calls);
  EXPECT_EQ(std::this_thread::get_id(), w.thread);
  EXPECT_LT(elapsed, 10.0);
}

TEST_F(Threadsafe, WakesLoopWithNothingElseToDo) {
  // No timers at all: the poller waits without a timeout. A hang here is
  // caught by the ctest timeout.
  Woken w{loop};
  std::atomic<int> rc{1};
  std::thread t([&] {
    SleepMs(50);
    rc = proa_call_soon_threadsafe(loop, WokenCb, &w, nullptr);
  });
  int run_rc = proa_loop_run_forever(loop);
  t.join();
  EXPECT_EQ(0, run_rc);
  EXPECT_EQ(0, rc.load());
  EXPECT_EQ(1, w.calls);
}

TEST_F(Threadsafe, RepeatedWakeUps) {
  // Each run sleeps and is woken again: the wake-up mechanism re-arms.
  for (int i = 0; i < 20; ++i) {
    Woken w{loop};
    std::thread t([&] {
      SleepMs(2);
      EXPECT_EQ(0, proa_call_soon_threadsafe(loop, WokenCb, &w, nullptr));
    });
    bool fired = false;
    EXPECT_EQ(0, RunWithWatchdog(loop, 30, &fired));
    t.join();
    ASSERT_FALSE(fired) << "round " << i;
    EXPECT_EQ(1, w.calls);
  }
}

TEST_F(Threadsafe, FromLoopThreadBeforeRun) {
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_soon_threadsafe(loop, IncrementInt, &n, &h));
  ASSERT_NE(nullptr, h);
  EXPECT_EQ(0.0, proa_handle_when(h));
  EXPECT_EQ(0, n);
  ASSERT_EQ(0, proa_call_soon(loop, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, n);
  proa_handle_unref(h);
}

TEST_F(Threadsafe, FromInsideCallback) {
  int n = 0;
  struct S {
    proa_loop *loop;
    int *n;
  } s{loop, &n};
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     EXPECT_EQ(0, proa_call_soon_threadsafe(
                                      s->loop, IncrementInt, s->n, nullptr));
                     EXPECT_EQ(0, proa_call_soon_threadsafe(s->loop, StopLoop,
                                                            s->loop, nullptr));
                   },
                   &s, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, n);
}

TEST_F(Threadsafe, CancelledHandleDoesNotRun) {
  int n = 0;
  proa_handle *h = nullptr;
  std::thread t([&] {
    EXPECT_EQ(0, proa_call_soon_threadsafe(loop, IncrementInt, &n, &h));
  });
  t.join();
  ASSERT_NE(nullptr, h);
  proa_handle_cancel(h);
  EXPECT_TRUE(proa_handle_cancelled(h));
  ASSERT_EQ(0, proa_call_soon_threadsafe(loop, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, n);
  proa_handle_unref(h);
}

// ---- many threads ----

struct Delivery {
  proa_loop *loop;
  int threads, per_thread;
  std::vector<std::vector<int>> seen; // per thread: sequence numbers
  std::vector<int> count;             // per (thread, seq)
  int total = 0;
};

struct DeliveryItem {
  Delivery *d;
  int thread, seq;
};

void Deliver(void *arg) {
  DeliveryItem *it = static_cast<DeliveryItem *>(arg);
  Delivery *d = it->d;
  d->seen[it->thread].push_back(it->seq);
  ++d->count[it->thread * d->per_thread + it->seq];
  if (++d->total == d->threads * d->per_thread)
    proa_loop_stop(d->loop);
}

void RunDelivery(proa_loop *loop, int threads, int per_thread) {
  Delivery d{loop, threads, per_thread};
  d.seen.resize(threads);
  d.count.assign(threads * per_thread, 0);
  std::vector<DeliveryItem> items(threads * per_thread);
  for (int t = 0; t < threads; ++t)
    for (int i = 0; i < per_thread; ++i)
      items[t * per_thread + i] = {&d, t, i};
  std::atomic<int> failures{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      while (!go.load())
        std::this_thread::yield();
      for (int i = 0; i < per_thread; ++i) {
        proa_handle *h = nullptr;
        // Every other call takes a handle, to exercise both paths.
        if (proa_call_soon_threadsafe(loop, Deliver, &items[t * per_thread + i],
                                      (i & 1) ? &h : nullptr) != 0)
          ++failures;
        if (h != nullptr)
          proa_handle_unref(h);
      }
    });
  go = true;
  bool fired = false;
  int rc = RunWithWatchdog(loop, 30, &fired);
  for (std::thread &t : pool)
    t.join();
  EXPECT_EQ(0, rc);
  EXPECT_FALSE(fired) << "only " << d.total << " of " << threads * per_thread
                      << " calls were delivered";
  EXPECT_EQ(0, failures.load());
  for (int k = 0; k < threads * per_thread; ++k)
    ASSERT_EQ(1, d.count[k])
        << "thread " << k / per_thread << " call " << k % per_thread;
  // FIFO per calling thread.
  for (int t = 0; t < threads; ++t) {
    ASSERT_EQ(static_cast<size_t>(per_thread), d.seen[t].size());
    for (int i = 0; i < per_thread; ++i)
      ASSERT_EQ(i, d.seen[t][i]) << "thread " << t;
  }
}

TEST_F(Threadsafe, SingleThreadFifo) { RunDelivery(loop, 1, 20000); }

TEST_F(Threadsafe, ManyThreadsExactlyOnce) { RunDelivery(loop, 8, 5000); }

TEST_F(Threadsafe, InterleavedWithLoopThreadCalls) {
  // Foreign threads post while loop-thread callbacks keep scheduling
  // call_soon and timers; all of it runs exactly once.
  struct S {
    proa_loop *loop;
    int local = 0;
    std::atomic<int> foreign{0};
  } s{loop};
  static void (*tick)(void *) = nullptr;
  tick = [](void *arg) {
    S *s = static_cast<S *>(arg);
    if (++s->local < 2000) {
      EXPECT_EQ(0, proa_call_soon(s->loop, tick, s, nullptr));
    }
  };
  static void (*check)(void *) = nullptr;
  check = [](void *arg) {
    S *s = static_cast<S *>(arg);
    if (s->local == 2000 && s->foreign.load() == 8000) {
      proa_loop_stop(s->loop);
    } else {
      EXPECT_EQ(0, proa_call_later(s->loop, 0.001, check, s, nullptr));
    }
  };
  ASSERT_EQ(0, proa_call_soon(loop, tick, &s, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, check, &s, nullptr));
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < 2000; ++i)
        EXPECT_EQ(0,
                  proa_call_soon_threadsafe(
                      loop, [](void *arg) { ++static_cast<S *>(arg)->foreign; },
                      &s, nullptr));
    });
  int rc = RunWithWatchdog(loop);
  for (std::thread &t : pool)
    t.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(8000, s.foreign.load());
  EXPECT_EQ(2000, s.local);
}

// ---- FIFO with call_soon (asyncio's order) ----

struct Order {
  proa_loop *loop;
  std::string seen;
};
struct Mark {
  Order *order;
  char name;
};
void RecordMark(void *arg) {
  Mark *m = static_cast<Mark *>(arg);
  m->order->seen += m->name;
}

TEST_F(Threadsafe, FifoWithCallSoonFromLoopThread) {
  // A thread-safe call made first runs first, also from the loop thread.
  Order o{loop};
  Mark a{&o, 'a'}, b{&o, 'b'}, c{&o, 'c'}, d{&o, 'd'};
  ASSERT_EQ(0, proa_call_soon_threadsafe(loop, RecordMark, &a, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, RecordMark, &b, nullptr));
  ASSERT_EQ(0, proa_call_soon_threadsafe(loop, RecordMark, &c, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, RecordMark, &d, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ("abcd", o.seen);
}

TEST_F(Threadsafe, FifoWithCallSoonFromAnotherThread) {
  // Inside a callback: another thread makes a thread-safe call and is
  // joined (so its call happened first), then the callback calls
  // call_soon. The thread-safe call runs first.
  struct S {
    Order o;
    Mark x, y, z;
  } s{{loop}, {&s.o, 'x'}, {&s.o, 'y'}, {&s.o, 'z'}};
  static void (*body)(void *) = nullptr;
  body = [](void *arg) {
    S *s = static_cast<S *>(arg);
    std::thread t([s] {
      EXPECT_EQ(
          0, proa_call_soon_threadsafe(s->o.loop, RecordMark, &s->x, nullptr));
    });
    t.join();
    EXPECT_EQ(0, proa_call_soon(s->o.loop, RecordMark, &s->y, nullptr));
    std::thread u([s] {
      EXPECT_EQ(
          0, proa_call_soon_threadsafe(s->o.loop, RecordMark, &s->z, nullptr));
    });
    u.join();
    EXPECT_EQ(0, proa_call_soon(s->o.loop, StopLoop, s->o.loop, nullptr));
  };
  ASSERT_EQ(0, proa_call_soon(loop, body, &s, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ("xyz", s.o.seen);
}

// ---- racing with close ----

TEST(ThreadsafeClose, RacingWithClose) {
  // Threads keep posting while the loop runs, stops and closes. Every call
  // returns 0 or PROA_ECLOSED; once ECLOSED, always ECLOSED; a call that
  // starts after close() returned fails; callbacks run only while the loop
  // runs, at most once per successful call. ASan checks the memory.
  for (int round = 0; round < 10; ++round) {
    proa_loop *loop = nullptr;
    ASSERT_EQ(0, proa_loop_new(&loop));
    struct Shared {
      std::atomic<long> ok{0}, closed{0}, other{0}, ran{0};
      std::atomic<bool> close_returned{false};
      std::atomic<long> ok_after_close{0}, ok_after_closed{0};
    } sh;
    const int kThreads = 3;
    std::vector<std::thread> pool;
    for (int t = 0; t < kThreads; ++t)
      pool.emplace_back([&] {
        bool seen_closed = false;
        long after_close_calls = 0;
        for (;;) {
          bool after = sh.close_returned.load();
          if (after && ++after_close_calls > 10000)
            break; // close() did not make the calls fail: reported below
          int rc = proa_call_soon_threadsafe(
              loop, [](void *arg) { ++static_cast<Shared *>(arg)->ran; }, &sh,
              nullptr);
          if (rc == 0) {
            ++sh.ok;
            if (after)
              ++sh.ok_after_close;
            if (seen_closed)
              ++sh.ok_after_closed;
          } else if (rc == PROA_ECLOSED) {
            ++sh.closed;
            seen_closed = true;
            if (after)
              break;
          } else {
            ++sh.other;
          }
        }
      });
    // Let the threads post for a moment while the loop runs.
    ASSERT_EQ(0, proa_call_later(loop, 0.005 + 0.002 * round, StopLoop, loop,
                                 nullptr));
    ASSERT_EQ(0, RunWithWatchdog(loop));
    long ran_at_close = sh.ran.load();
    ASSERT_EQ(0, proa_loop_close(loop));
    sh.close_returned = true;
    for (std::thread &t : pool)
      t.join();
    EXPECT_EQ(ran_at_close, sh.ran.load()) << "a callback ran after close";
    EXPECT_EQ(0, sh.other.load()) << "round " << round;
    EXPECT_EQ(0, sh.ok_after_close.load()) << "round " << round;
    EXPECT_EQ(0, sh.ok_after_closed.load()) << "round " << round;
    EXPECT_GT(sh.closed.load(), 0) << "round " << round;
    EXPECT_LE(sh.ran.load(), sh.ok.load());
    EXPECT_EQ(0, proa_loop_free(loop));
  }
}

TEST(ThreadsafeClose, RacingWithCloseWhileLoopIdle) {
  // The same race without a running loop: close() drops what was queued.
  for (int round = 0; round < 20; ++round) {
    proa_loop *loop = nullptr;
    ASSERT_EQ(0, proa_loop_new(&loop));
    std::atomic<long> ok{0}, closed{0}, other{0};
    std::atomic<bool> start{false};
    std::thread t([&] {
      while (!start.load())
        std::this_thread::yield();
      for (;;) {
        proa_handle *h = nullptr;
        int rc = proa_call_soon_threadsafe(loop, IncrementInt, nullptr, &h);
        if (rc == 0) {
          ++ok;
          proa_handle_unref(h);
        } else if (rc == PROA_ECLOSED) {
          if (++closed > 100)
            break;
        } else {
          ++other;
          break;
        }
      }
    });
    start = true;
    std::this_thread::sleep_for(std::chrono::microseconds(100 * round));
    ASSERT_EQ(0, proa_loop_close(loop)); // IncrementInt(NULL) never runs
    t.join();
    EXPECT_EQ(0, other.load());
    EXPECT_GT(closed.load(), 100);
    EXPECT_EQ(0, proa_loop_free(loop));
  }
}

} // namespace
