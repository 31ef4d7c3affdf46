// Tests of call_later / call_at: deadlines, ordering, cancellation.
#include "proa_test.h"

#include <cmath>
#include <limits>
#include <random>

using namespace proa_test;

namespace {

using Timer = LoopTest;

struct Fired {
  proa_loop *loop;
  proa_handle *handle = nullptr; // set after scheduling
  double when = 0;               // the handle's deadline
  double at = -1;                // loop time in the callback
  int count = 0;
  int seq = -1; // order of firing
  int *counter = nullptr;
  bool stop = false;
};

void RecordFire(void *arg) {
  Fired *f = static_cast<Fired *>(arg);
  f->at = proa_loop_time(f->loop);
  ++f->count;
  if (f->counter != nullptr)
    f->seq = (*f->counter)++;
  if (f->stop)
    proa_loop_stop(f->loop);
}

TEST_F(Timer, OrderedByDeadlineAndNeverEarly) {
  const double delays[] = {0.05, 0.01, 0.03, 0.02, 0.04, 0.001};
  const int kN = sizeof delays / sizeof delays[0];
  std::vector<Fired> fired(kN, Fired{loop});
  int counter = 0;
  for (int i = 0; i < kN; ++i) {
    fired[i].counter = &counter;
    fired[i].stop = delays[i] == 0.05;
    double before = proa_loop_time(loop);
    ASSERT_EQ(0, proa_call_later(loop, delays[i], RecordFire, &fired[i],
                                 &fired[i].handle));
    double after = proa_loop_time(loop);
    fired[i].when = proa_handle_when(fired[i].handle);
    EXPECT_GE(fired[i].when, before + delays[i]);
    EXPECT_LE(fired[i].when, after + delays[i]);
  }
  ASSERT_EQ(0, RunWithWatchdog(loop));
  const int rank[] = {5, 1, 3, 2, 4, 0}; // expected firing position
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(1, fired[i].count) << "delay " << delays[i];
    EXPECT_EQ(rank[i], fired[i].seq) << "delay " << delays[i];
    EXPECT_GE(fired[i].at, fired[i].when) << "fired early: " << delays[i];
    proa_handle_unref(fired[i].handle);
  }
}

TEST_F(Timer, CallAtKeepsDeadline) {
  Fired f{loop};
  f.stop = true;
  double when = proa_loop_time(loop) + 0.02;
  ASSERT_EQ(0, proa_call_at(loop, when, RecordFire, &f, &f.handle));
  EXPECT_EQ(when, proa_handle_when(f.handle));
  EXPECT_FALSE(proa_handle_cancelled(f.handle));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, f.count);
  EXPECT_GE(f.at, when);
  EXPECT_EQ(when, proa_handle_when(f.handle));
  EXPECT_FALSE(proa_handle_cancelled(f.handle));
  proa_handle_unref(f.handle);
}

TEST_F(Timer, LongerTimerNeverEarly) {
  Fired f{loop};
  f.stop = true;
  ASSERT_EQ(0, proa_call_later(loop, 0.2, RecordFire, &f, &f.handle));
  double when = proa_handle_when(f.handle);
  double wall0 = WallSeconds();
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, f.count);
  EXPECT_GE(f.at, when);
  // The loop clock and the C++ steady clock agree to within granularity.
  EXPECT_GE(WallSeconds() - wall0, 0.19);
  proa_handle_unref(f.handle);
}

TEST_F(Timer, PastDeadlinesRunOnFirstIteration) {
  int n = 0;
  ASSERT_EQ(0, proa_call_later(loop, -5, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, -1e-9, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_at(loop, proa_loop_time(loop) - 10, IncrementInt, &n,
                            nullptr));
  ASSERT_EQ(0, proa_call_at(loop, 0, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_at(loop, -std::numeric_limits<double>::infinity(),
                            IncrementInt, &n, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(6, n);
}

TEST_F(Timer, NaNIsInvalid) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  proa_handle *h = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_call_later(loop, nan, IncrementInt, nullptr, &h));
  EXPECT_EQ(PROA_EINVAL, proa_call_at(loop, nan, IncrementInt, nullptr, &h));
  EXPECT_EQ(PROA_EINVAL,
            proa_call_later(loop, nan, IncrementInt, nullptr, nullptr));
}

TEST_F(Timer, CancelledTimerNeverRuns) {
  Fired victim{loop}, last{loop};
  last.stop = true;
  ASSERT_EQ(0,
            proa_call_later(loop, 0.005, RecordFire, &victim, &victim.handle));
  ASSERT_EQ(0, proa_call_later(loop, 0.03, RecordFire, &last, &last.handle));
  proa_handle_cancel(victim.handle);
  EXPECT_TRUE(proa_handle_cancelled(victim.handle));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, victim.count);
  EXPECT_EQ(1, last.count);
  EXPECT_GE(last.at, proa_handle_when(victim.handle));
  EXPECT_TRUE(proa_handle_cancelled(victim.handle));
  EXPECT_FALSE(proa_handle_cancelled(last.handle));
  proa_handle_cancel(last.handle); // already ran: no effect
  EXPECT_FALSE(proa_handle_cancelled(last.handle));
  proa_handle_unref(victim.handle);
  proa_handle_unref(last.handle);
}

struct Canceller {
  proa_handle *victim = nullptr;
  int ran = 0;
};

void CancelVictim(void *arg) {
  Canceller *c = static_cast<Canceller *>(arg);
  ++c->ran;
  proa_handle_cancel(c->victim);
}

TEST_F(Timer, CancelledByAnotherTimer) {
  Canceller c;
  int victim_ran = 0;
  ASSERT_EQ(0, proa_call_later(loop, 0.01, CancelVictim, &c, nullptr));
  ASSERT_EQ(0,
            proa_call_later(loop, 0.02, IncrementInt, &victim_ran, &c.victim));
  ASSERT_EQ(0, proa_call_later(loop, 0.04, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, c.ran);
  EXPECT_EQ(0, victim_ran);
  EXPECT_TRUE(proa_handle_cancelled(c.victim));
  proa_handle_unref(c.victim);
}

struct Mutual {
  proa_handle *other = nullptr;
  int ran = 0;
};

void CancelOtherTimer(void *arg) {
  Mutual *m = static_cast<Mutual *>(arg);
  ++m->ran;
  proa_handle_cancel(m->other);
}

TEST_F(Timer, EqualDeadlinesCancellingEachOther) {
  // Both are due in the same iteration; whichever runs first cancels the
  // other, which then must not run although it was already due.
  Mutual a, b;
  proa_handle *ha = nullptr, *hb = nullptr;
  double when = proa_loop_time(loop) + 0.01;
  ASSERT_EQ(0, proa_call_at(loop, when, CancelOtherTimer, &a, &ha));
  ASSERT_EQ(0, proa_call_at(loop, when, CancelOtherTimer, &b, &hb));
  a.other = hb;
  b.other = ha;
  ASSERT_EQ(0, proa_call_at(loop, when + 0.02, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, a.ran + b.ran);
  EXPECT_NE(proa_handle_cancelled(ha), proa_handle_cancelled(hb));
  proa_handle_unref(ha);
  proa_handle_unref(hb);
}

TEST_F(Timer, EqualDeadlinesAllRun) {
  const int kN = 200;
  std::vector<Fired> fired(kN, Fired{loop});
  double when = proa_loop_time(loop) + 0.01;
  for (int i = 0; i < kN; ++i)
    ASSERT_EQ(0, proa_call_at(loop, when, RecordFire, &fired[i], nullptr));
  ASSERT_EQ(0, proa_call_at(loop, when + 0.01, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(1, fired[i].count) << i;
    EXPECT_GE(fired[i].at, when) << i;
  }
}

// libuv's guarantee: timers with the same deadline run in the order they
// were scheduled, even with other deadlines and cancellations mixed in (a
// binary heap alone reorders equal keys).
TEST_F(Timer, EqualDeadlinesRunInSchedulingOrder) {
  const int kN = 1000;
  std::vector<Fired> fired(kN, Fired{loop});
  std::vector<proa_handle *> others;
  int counter = 0;
  // In the past: due on the first iteration, no waiting involved.
  double when = proa_loop_time(loop) - 10.0;
  for (int i = 0; i < kN; ++i) {
    fired[i].counter = &counter;
    ASSERT_EQ(0, proa_call_at(loop, when, RecordFire, &fired[i], nullptr));
    // Later and earlier deadlines, some cancelled, shuffle the heap.
    proa_handle *h = nullptr;
    ASSERT_EQ(0, proa_call_at(loop, when + 1000.0 + (i % 7), RecordFire,
                              &fired[i], &h));
    others.push_back(h);
    if (i % 3 == 0)
      proa_handle_cancel(h);
  }
  for (proa_handle *h : others)
    proa_handle_cancel(h);
  ASSERT_EQ(0, RunOnce(loop));
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(1, fired[i].count) << i;
    EXPECT_EQ(i, fired[i].seq) << "timer " << i << " ran out of order";
  }
  for (proa_handle *h : others)
    proa_handle_unref(h);
}

struct Busy {
  proa_loop *loop;
  bool done = false;
  int spins = 0;
};

void Spin(void *arg) {
  Busy *b = static_cast<Busy *>(arg);
  ++b->spins;
  if (!b->done) {
    EXPECT_EQ(0, proa_call_soon(b->loop, Spin, b, nullptr));
  }
}

TEST_F(Timer, NeverEarlyWhileLoopIsBusy) {
  // A callback that keeps rescheduling itself makes the loop poll with a
  // zero timeout over and over, so timers are checked at every moment, not
  // only after a timed wait that already outlasted them.
  const int kN = 200;
  Busy busy{loop};
  std::vector<Fired> fired(kN, Fired{loop});
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(0, proa_call_later(loop, 0.0001 * (i + 1), RecordFire, &fired[i],
                                 &fired[i].handle));
    fired[i].when = proa_handle_when(fired[i].handle);
  }
  ASSERT_EQ(0, proa_call_soon(loop, Spin, &busy, nullptr));
  ASSERT_EQ(0, proa_call_later(
                   loop, 0.0001 * kN + 0.005,
                   [](void *arg) {
                     Busy *b = static_cast<Busy *>(arg);
                     b->done = true;
                     proa_loop_stop(b->loop);
                   },
                   &busy, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_GT(busy.spins, 1);
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(1, fired[i].count) << i;
    EXPECT_GE(fired[i].at, fired[i].when) << "timer " << i << " fired early";
    proa_handle_unref(fired[i].handle);
  }
}

struct Many {
  proa_loop *loop;
  std::vector<double> when;
  std::vector<int> count;
  std::vector<double> at;
  std::vector<int> order;
  size_t expected = 0;
};

struct ManyItem {
  Many *many;
  int index;
};

void ManyFire(void *arg) {
  ManyItem *it = static_cast<ManyItem *>(arg);
  Many *m = it->many;
  m->at[it->index] = proa_loop_time(m->loop);
  ++m->count[it->index];
  m->order.push_back(it->index);
  if (m->order.size() == m->expected)
    proa_loop_stop(m->loop);
}

TEST_F(Timer, TenThousandRandomDeadlines) {
  const int kN = 10000;
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> dist(0.0, 0.05);
  Many m{loop};
  m.when.resize(kN);
  m.count.assign(kN, 0);
  m.at.assign(kN, -1);
  m.expected = kN;
  std::vector<ManyItem> items(kN);
  for (int i = 0; i < kN; ++i) {
    items[i] = {&m, i};
    proa_handle *h = nullptr;
    ASSERT_EQ(0, proa_call_later(loop, dist(rng), ManyFire, &items[i], &h));
    m.when[i] = proa_handle_when(h);
    proa_handle_unref(h);
  }
  ASSERT_EQ(0, RunWithWatchdog(loop, 30));
  ASSERT_EQ(static_cast<size_t>(kN), m.order.size());
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(1, m.count[i]) << i;
    ASSERT_GE(m.at[i], m.when[i]) << "timer " << i << " fired early";
  }
  for (int k = 1; k < kN; ++k)
    ASSERT_LE(m.when[m.order[k - 1]], m.when[m.order[k]])
        << "out of deadline order at position " << k;
}

struct Churn {
  proa_loop *loop;
  std::vector<proa_handle *> handles;
  std::vector<double> when;
  std::vector<int> ran;
  std::vector<bool> cancelled; // by the test, before it could run
  std::vector<int> order;
};

struct ChurnItem {
  Churn *c;
  int index;
};

void ChurnFire(void *arg) {
  ChurnItem *it = static_cast<ChurnItem *>(arg);
  Churn *c = it->c;
  ++c->ran[it->index];
  c->order.push_back(it->index);
  // Cancel another timer: one that has not run yet is then never run.
  int victim = static_cast<int>((it->index * 7919L + 13) %
                                static_cast<long>(c->handles.size()));
  if (c->ran[victim] == 0 && !c->cancelled[victim]) {
    proa_handle_cancel(c->handles[victim]);
    c->cancelled[victim] = true;
  }
}

TEST_F(Timer, RandomCancellationKeepsHeapOrder) {
  const int kN = 3000;
  std::mt19937 rng(777);
  std::uniform_real_distribution<double> dist(0.0, 0.03);
  Churn c{loop};
  c.handles.resize(kN);
  c.when.resize(kN);
  c.ran.assign(kN, 0);
  c.cancelled.assign(kN, false);
  std::vector<ChurnItem> items(kN);
  for (int i = 0; i < kN; ++i) {
    items[i] = {&c, i};
    ASSERT_EQ(0, proa_call_later(loop, dist(rng), ChurnFire, &items[i],
                                 &c.handles[i]));
    c.when[i] = proa_handle_when(c.handles[i]);
  }
  for (int i = 0; i < kN; i += 3) { // every third, before running
    proa_handle_cancel(c.handles[i]);
    c.cancelled[i] = true;
  }
  ASSERT_EQ(0, proa_call_later(loop, 0.1, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop, 30));
  int ran = 0;
  for (int i = 0; i < kN; ++i) {
    if (c.cancelled[i]) {
      EXPECT_EQ(0, c.ran[i]) << "cancelled timer " << i << " ran";
      EXPECT_TRUE(proa_handle_cancelled(c.handles[i])) << i;
    } else {
      EXPECT_EQ(1, c.ran[i]) << "timer " << i;
      EXPECT_FALSE(proa_handle_cancelled(c.handles[i])) << i;
      ++ran;
    }
    proa_handle_unref(c.handles[i]);
  }
  EXPECT_GT(ran, 0);
  EXPECT_EQ(static_cast<size_t>(ran), c.order.size());
  for (size_t k = 1; k < c.order.size(); ++k)
    ASSERT_LE(c.when[c.order[k - 1]], c.when[c.order[k]]) << k;
}

struct Chain {
  proa_loop *loop;
  int left;
  std::vector<double> when, at;
};

void ChainFire(void *arg) {
  Chain *c = static_cast<Chain *>(arg);
  c->at.push_back(proa_loop_time(c->loop));
  if (--c->left == 0) {
    proa_loop_stop(c->loop);
    return;
  }
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(c->loop, 0.005, ChainFire, c, &h));
  c->when.push_back(proa_handle_when(h));
  proa_handle_unref(h);
}

TEST_F(Timer, RescheduledFromItsCallback) {
  Chain c{loop, 5};
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(loop, 0.005, ChainFire, &c, &h));
  c.when.push_back(proa_handle_when(h));
  proa_handle_unref(h);
  ASSERT_EQ(0, RunWithWatchdog(loop));
  ASSERT_EQ(5u, c.at.size());
  ASSERT_EQ(5u, c.when.size());
  for (size_t i = 0; i < 5; ++i)
    EXPECT_GE(c.at[i], c.when[i]) << i;
}

TEST_F(Timer, ReadyCallbacksDoNotWaitForTimers) {
  int n = 0;
  ASSERT_EQ(0, proa_call_later(loop, 30, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, StopLoop, loop, nullptr));
  double t0 = WallSeconds();
  ASSERT_EQ(0, RunWithWatchdog(loop, 60));
  EXPECT_LT(WallSeconds() - t0, 10.0);
  EXPECT_EQ(0, n);
}

TEST_F(Timer, HugeDelayDoesNotBreakTheWait) {
  // Only a far-away timer: its timeout must be clamped, not overflow into
  // an error or a busy loop. A thread wakes the loop to end the test.
  int distant = 0;
  ASSERT_EQ(0, proa_call_later(loop, 1e10, IncrementInt, &distant, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 1e300, IncrementInt, &distant, nullptr));
  std::atomic<int> rc{1};
  std::thread t([&] {
    SleepMs(50);
    rc = proa_call_soon_threadsafe(loop, StopLoop, loop, nullptr);
  });
  int run_rc = proa_loop_run_forever(loop);
  t.join();
  EXPECT_EQ(0, rc.load());
  EXPECT_EQ(0, run_rc);
  EXPECT_EQ(0, distant);
}

TEST_F(Timer, CancelAfterLoopDroppedTheHandle) {
  // The user's reference outlives the loop's; cancel and query still work.
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(loop, 0, IncrementInt, &n, &h));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
  proa_handle_cancel(h);
  EXPECT_FALSE(proa_handle_cancelled(h));
  proa_handle_unref(h);
}

} // namespace
