// Tests of the loop's life cycle, run/stop semantics and call_soon.
#include "proa_test.h"

#include <cmath>

using namespace proa_test;

namespace {

// ---------------------------------------------------------------------------
// Creation, backends, lifetime
// ---------------------------------------------------------------------------

TEST(LoopNew, NewAndFree) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  ASSERT_NE(nullptr, loop);
  EXPECT_FALSE(proa_loop_is_running(loop));
  EXPECT_FALSE(proa_loop_is_closed(loop));
  EXPECT_EQ(0, proa_loop_free(loop));
}

TEST(LoopNew, NewExWithNullOptions) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new_ex(&loop, nullptr));
  ASSERT_NE(nullptr, loop);
  EXPECT_EQ(0, proa_loop_free(loop));
}

TEST(LoopNew, NewExWithDefaultOptions) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  EXPECT_EQ(nullptr, opts.backend);
  EXPECT_EQ(-1, opts.debug);
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new_ex(&loop, &opts));
  EXPECT_EQ(0, proa_loop_free(loop));
}

TEST(LoopNew, NullOutIsInvalid) {
  EXPECT_EQ(PROA_EINVAL, proa_loop_new(nullptr));
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  EXPECT_EQ(PROA_EINVAL, proa_loop_new_ex(nullptr, &opts));
  EXPECT_EQ(PROA_EINVAL, proa_loop_new_ex(nullptr, nullptr));
}

TEST(LoopNew, FreeNullIsIgnored) { EXPECT_EQ(0, proa_loop_free(nullptr)); }

TEST(LoopNew, UnknownBackendOptionIsInvalid) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.backend = "nope";
  proa_loop *loop = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_loop_new_ex(&loop, &opts));
}

TEST(LoopNew, UnknownBackendEnvironmentIsInvalid) {
  ScopedEnv env("PROA_BACKEND", "nope");
  proa_loop *loop = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_loop_new(&loop));
}

#ifndef _WIN32
// (On Windows an empty variable cannot be set: it is the same as unset.)
TEST(LoopNew, EmptyBackendEnvironmentMeansDefault) {
  ScopedEnv env("PROA_BACKEND", "");
  Loop loop;
  ASSERT_EQ(0, loop.rc());
  ASSERT_NE(nullptr, proa_loop_backend(loop));
  EXPECT_STRNE("", proa_loop_backend(loop));
}
#endif

const char *OsDefaultBackend() {
#if defined(_WIN32)
  return "iocp";
#elif defined(__linux__)
  return "epoll";
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) ||    \
    defined(__NetBSD__) || defined(__DragonFly__)
  return "kqueue";
#else
  return "poll";
#endif
}

// ctest registers the suite once per poller with PROA_BACKEND set: a loop
// created with default options must use exactly that poller, so that a
// mis-selected backend fails loudly instead of testing the wrong thing.
TEST(LoopBackend, MatchesEnvironment) {
  const char *want = std::getenv("PROA_BACKEND");
  if (want == nullptr || *want == '\0')
    want = OsDefaultBackend();
  Loop loop;
  ASSERT_EQ(0, loop.rc());
  ASSERT_NE(nullptr, proa_loop_backend(loop));
  EXPECT_STREQ(want, proa_loop_backend(loop));
}

TEST(LoopBackend, DefaultIsBestForOs) {
  ScopedEnv env("PROA_BACKEND", nullptr);
  Loop loop;
  ASSERT_EQ(0, loop.rc());
  EXPECT_STREQ(OsDefaultBackend(), proa_loop_backend(loop));
}

struct BackendCase {
  const char *name;
  bool available;
};

const BackendCase kBackends[] = {
#if defined(_WIN32)
    {"iocp", true},
    {"epoll", false},
    {"poll", false},
    {"kqueue", false},
#elif defined(__linux__)
    {"epoll", true},
    {"poll", true},
    {"kqueue", false},
    {"iocp", false},
#elif defined(__APPLE__) || defined(__FreeBSD__)
    {"kqueue", true},
    {"poll", true},
    {"epoll", false},
    {"iocp", false},
#else
    {"poll", true},
    {"iocp", false},
#endif
};

TEST(LoopBackend, ExplicitChoice) {
  for (const BackendCase &c : kBackends) {
    proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
    opts.backend = c.name;
    proa_loop *loop = nullptr;
    int rc = proa_loop_new_ex(&loop, &opts);
    if (!c.available) {
      EXPECT_EQ(PROA_EINVAL, rc) << c.name;
      continue;
    }
    ASSERT_EQ(0, rc) << c.name << ": " << proa_err_name(rc);
    EXPECT_STREQ(c.name, proa_loop_backend(loop));
    // The backend works: one timer and one callback run.
    int n = 0;
    EXPECT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
    EXPECT_EQ(0, proa_call_later(loop, 0.001, IncrementInt, &n, nullptr));
    EXPECT_EQ(0, proa_call_later(loop, 0.002, StopLoop, loop, nullptr));
    EXPECT_EQ(0, RunWithWatchdog(loop));
    EXPECT_EQ(2, n) << c.name;
    EXPECT_EQ(0, proa_loop_free(loop));
  }
}

TEST(LoopBackend, OptionOverridesEnvironment) {
  ScopedEnv env("PROA_BACKEND", "nope");
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.backend = kBackends[0].name;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  EXPECT_STREQ(kBackends[0].name, proa_loop_backend(loop));
}

using LoopRef = LoopTest;

TEST_F(LoopRef, RefReturnsSameLoopAndKeepsItUsable) {
  EXPECT_EQ(loop, proa_loop_ref(loop));
  proa_loop_unref(loop);
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  EXPECT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
}

TEST(LoopRefCount, UnrefOfLastReferenceDropsCallbacks) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0, IncrementInt, &n, nullptr));
  proa_loop_unref(loop); // closes and frees
  EXPECT_EQ(0, n);
}

TEST(LoopRefCount, FutureKeepsClosedLoopMemoryAlive) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_future_new(loop, &f));
  EXPECT_EQ(0, proa_loop_free(loop)); // closes; the future's ref remains
  ASSERT_EQ(loop, proa_future_loop(f));
  EXPECT_TRUE(proa_loop_is_closed(proa_future_loop(f)));
  EXPECT_FALSE(proa_loop_is_running(proa_future_loop(f)));
  proa_future_unref(f); // frees the loop too (ASan checks the order)
}

// ---------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------

using LoopClose = LoopTest;

TEST_F(LoopClose, IsIdempotent) {
  EXPECT_EQ(0, proa_loop_close(loop));
  EXPECT_TRUE(proa_loop_is_closed(loop));
  EXPECT_EQ(0, proa_loop_close(loop));
  EXPECT_TRUE(proa_loop_is_closed(loop));
  EXPECT_FALSE(proa_loop_is_running(loop));
}

void NeverCalled(void *arg) {
  ADD_FAILURE() << "a callback ran that must not: " << arg;
}

TEST_F(LoopClose, IsIrreversible) {
  proa_future *pending = nullptr;
  ASSERT_EQ(0, proa_future_new(loop, &pending));
  ASSERT_EQ(0, proa_loop_close(loop));

  proa_handle *h = nullptr;
  EXPECT_EQ(PROA_ECLOSED, proa_call_soon(loop, NeverCalled, nullptr, &h));
  EXPECT_EQ(PROA_ECLOSED, proa_call_soon(loop, NeverCalled, nullptr, nullptr));
  EXPECT_EQ(PROA_ECLOSED, proa_call_later(loop, 0, NeverCalled, nullptr, &h));
  EXPECT_EQ(PROA_ECLOSED,
            proa_call_later(loop, -1, NeverCalled, nullptr, nullptr));
  EXPECT_EQ(PROA_ECLOSED,
            proa_call_at(loop, proa_loop_time(loop), NeverCalled, nullptr, &h));
  EXPECT_EQ(PROA_ECLOSED,
            proa_call_soon_threadsafe(loop, NeverCalled, nullptr, &h));
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ECLOSED, proa_future_new(loop, &f));
  EXPECT_EQ(PROA_ECLOSED, proa_loop_run_forever(loop));
  EXPECT_EQ(PROA_ECLOSED, proa_loop_run_until_complete(loop, pending, nullptr));
  EXPECT_FALSE(proa_loop_is_running(loop));
  EXPECT_TRUE(proa_loop_is_closed(loop));
  proa_future_unref(pending);
}

TEST_F(LoopClose, ThreadsafeFromAnotherThreadAfterClose) {
  ASSERT_EQ(0, proa_loop_close(loop));
  int rc = 0;
  std::thread t([&] {
    rc = proa_call_soon_threadsafe(loop, NeverCalled, nullptr, nullptr);
  });
  t.join();
  EXPECT_EQ(PROA_ECLOSED, rc);
}

struct CloseWhileRunning {
  proa_loop *loop;
  int close_rc = 1, free_rc = 1;
  bool closed_after = true;
};

TEST_F(LoopClose, WhileRunningFailsWithERunning) {
  CloseWhileRunning s{loop};
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     CloseWhileRunning *s =
                         static_cast<CloseWhileRunning *>(arg);
                     s->close_rc = proa_loop_close(s->loop);
                     s->free_rc = proa_loop_free(s->loop);
                     s->closed_after = proa_loop_is_closed(s->loop);
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(PROA_ERUNNING, s.close_rc);
  EXPECT_EQ(PROA_ERUNNING, s.free_rc);
  EXPECT_FALSE(s.closed_after);
  // Nothing was closed and the reference was kept: the loop still works.
  EXPECT_FALSE(proa_loop_is_closed(loop));
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  EXPECT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
}

TEST_F(LoopClose, DropsPendingCallbacksAndTimers) {
  int n = 0;
  proa_handle *soon = nullptr, *later = nullptr, *distant = nullptr,
              *ts = nullptr;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, &soon));
  ASSERT_EQ(0, proa_call_later(loop, -1, IncrementInt, &n, &later));
  ASSERT_EQ(0, proa_call_later(loop, 100, IncrementInt, &n, &distant));
  ASSERT_EQ(0, proa_call_soon_threadsafe(loop, IncrementInt, &n, &ts));
  double far_when = proa_handle_when(distant);
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(0, n);

  // The handles stay valid. A dropped call was not cancelled by the user: as
  // in asyncio (close clears the queues without cancelling the handles),
  // proa_handle_cancelled() stays false; cancelling it now does nothing.
  for (proa_handle *h : {soon, later, distant, ts}) {
    EXPECT_FALSE(proa_handle_cancelled(h));
    proa_handle_cancel(h);
  }
  EXPECT_EQ(far_when, proa_handle_when(distant));
  EXPECT_EQ(0, n);

  // Handles may outlive the loop itself.
  EXPECT_EQ(0, proa_loop_free(loop));
  loop = nullptr;
  EXPECT_EQ(0, n);
  for (proa_handle *h : {soon, later, distant, ts})
    proa_handle_unref(h);
}

TEST(LoopCloseHandles, HandleReleasedAfterLoopFreedWhileScheduled) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(loop, 10, IncrementInt, &n, &h));
  EXPECT_EQ(0, proa_loop_free(loop));
  proa_handle_unref(h);
  EXPECT_EQ(0, n);
}

TEST(LoopCloseHandles, HandleReleasedAfterLoopFreedAfterRun) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, &h));
  EXPECT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
  EXPECT_EQ(0, proa_loop_free(loop));
  EXPECT_FALSE(proa_handle_cancelled(h));
  proa_handle_unref(h);
}

// ---------------------------------------------------------------------------
// Running: re-entrancy and threads
// ---------------------------------------------------------------------------

struct Reentry {
  proa_loop *loop;
  proa_loop *other;
  proa_future *future;
  int run_rc = 1, ruc_rc = 1, other_run_rc = 1, other_ruc_rc = 1;
  bool running_after = false, other_running = true;
};

using LoopRun = LoopTest;

TEST_F(LoopRun, RunInsideOwnCallbackFails) {
  Reentry s{loop, nullptr, nullptr};
  ASSERT_EQ(0, proa_future_new(loop, &s.future));
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     Reentry *s = static_cast<Reentry *>(arg);
                     s->run_rc = proa_loop_run_forever(s->loop);
                     s->ruc_rc = proa_loop_run_until_complete(
                         s->loop, s->future, nullptr);
                     s->running_after = proa_loop_is_running(s->loop);
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(PROA_ERUNNING, s.run_rc);
  EXPECT_EQ(PROA_ERUNNING, s.ruc_rc);
  EXPECT_TRUE(s.running_after);
  EXPECT_FALSE(proa_loop_is_running(loop));
  EXPECT_FALSE(proa_future_done(s.future));
  proa_future_unref(s.future);
}

TEST_F(LoopRun, RunOtherLoopInsideCallbackFails) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  Reentry s{loop, other.get(), nullptr};
  ASSERT_EQ(0, proa_future_new(other, &s.future));
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(other, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     Reentry *s = static_cast<Reentry *>(arg);
                     s->other_run_rc = proa_loop_run_forever(s->other);
                     s->other_ruc_rc = proa_loop_run_until_complete(
                         s->other, s->future, nullptr);
                     s->other_running = proa_loop_is_running(s->other);
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(PROA_ERUNNING, s.other_run_rc);
  EXPECT_EQ(PROA_ERUNNING, s.other_ruc_rc);
  EXPECT_FALSE(s.other_running);
  EXPECT_EQ(0, n); // the other loop ran nothing
  // The other loop is intact and runs normally from here.
  EXPECT_EQ(0, RunOnce(other));
  EXPECT_EQ(1, n);
  proa_future_unref(s.future);
}

struct TwoThreads {
  proa_loop *loop;
  proa_loop *other;
  int other_rc = 1;
  int other_ran = 0;
};

TEST_F(LoopRun, OtherLoopOnAnotherThreadRuns) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  TwoThreads s{loop, other.get()};
  ASSERT_EQ(0, proa_call_soon(other, IncrementInt, &s.other_ran, nullptr));
  ASSERT_EQ(0, proa_call_soon(other, StopLoop, other.get(), nullptr));
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     TwoThreads *s = static_cast<TwoThreads *>(arg);
                     std::thread t([s] {
                       s->other_rc = proa_loop_run_forever(s->other);
                     });
                     t.join();
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, s.other_rc);
  EXPECT_EQ(1, s.other_ran);
}

TEST_F(LoopRun, LoopCanRunOnAnotherThread) {
  int n = 0;
  std::thread::id cb_thread;
  struct S {
    int *n;
    std::thread::id *id;
    proa_loop *loop;
  } s{&n, &cb_thread, loop};
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     ++*s->n;
                     *s->id = std::this_thread::get_id();
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  int rc = 1;
  std::thread::id runner;
  std::thread t([&] {
    runner = std::this_thread::get_id();
    rc = proa_loop_run_forever(loop);
  });
  t.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(1, n);
  EXPECT_EQ(runner, cb_thread);
  // And back on this thread.
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  EXPECT_EQ(0, RunOnce(loop));
  EXPECT_EQ(2, n);
}

TEST_F(LoopRun, IsRunningOnlyInsideRun) {
  EXPECT_FALSE(proa_loop_is_running(loop));
  struct S {
    proa_loop *loop;
    int soon = -1, timer = -1;
  } s{loop};
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     s->soon = proa_loop_is_running(s->loop);
                   },
                   &s, nullptr));
  ASSERT_EQ(0, proa_call_later(
                   loop, 0.001,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     s->timer = proa_loop_is_running(s->loop);
                     proa_loop_stop(s->loop);
                   },
                   &s, nullptr));
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, s.soon);
  EXPECT_EQ(1, s.timer);
  EXPECT_FALSE(proa_loop_is_running(loop));
}

TEST_F(LoopRun, BadArguments) {
  EXPECT_EQ(PROA_EINVAL, proa_call_soon(loop, nullptr, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_call_later(loop, 1, nullptr, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_call_at(loop, 1, nullptr, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL,
            proa_call_soon_threadsafe(loop, nullptr, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_loop_run_until_complete(loop, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_future_new(loop, nullptr));
}

// ---------------------------------------------------------------------------
// Stop (asyncio 3.5.1+ semantics)
// ---------------------------------------------------------------------------

struct Trace {
  proa_loop *loop;
  std::vector<std::string> events;
};

struct Step {
  Trace *trace;
  std::string name;
  std::vector<Step *> schedule; // call_soon'd when this step runs
  bool stop = false;
};

void RunStep(void *arg) {
  Step *s = static_cast<Step *>(arg);
  s->trace->events.push_back(s->name);
  for (Step *next : s->schedule)
    EXPECT_EQ(0, proa_call_soon(s->trace->loop, RunStep, next, nullptr));
  if (s->stop) {
    EXPECT_EQ(0, proa_loop_stop(s->trace->loop));
  }
}

using LoopStop = LoopTest;

TEST_F(LoopStop, BeforeRunRunsWhatIsReadyAndReturns) {
  Trace t{loop, {}};
  Step b{&t, "B"};
  Step a{&t, "A", {&b}};
  Step c{&t, "C"};
  Step timer{&t, "T"};
  Step distant{&t, "distant"};
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &a, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &c, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, -1, RunStep, &timer, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 30, RunStep, &distant, nullptr));
  ASSERT_EQ(0, proa_loop_stop(loop));
  double t0 = WallSeconds();
  ASSERT_EQ(0, proa_loop_run_forever(loop));
  // It polled with a zero timeout: it did not wait for the 30 s timer.
  EXPECT_LT(WallSeconds() - t0, 10.0);
  // A and C were scheduled, T was due; B was scheduled by A: next run.
  std::vector<std::string> want = {"A", "C", "T"};
  EXPECT_EQ(want, t.events);
  EXPECT_FALSE(proa_loop_is_running(loop));

  ASSERT_EQ(0, RunOnce(loop));
  want.push_back("B");
  EXPECT_EQ(want, t.events);
}

TEST_F(LoopStop, BeforeRunOnEmptyLoopReturns) {
  ASSERT_EQ(0, proa_loop_stop(loop));
  EXPECT_EQ(0, proa_loop_run_forever(loop));
  EXPECT_FALSE(proa_loop_is_running(loop));
}

TEST_F(LoopStop, DuringRunFinishesTheBatch) {
  Trace t{loop, {}};
  Step d{&t, "D"};
  Step e{&t, "E"};
  Step a{&t, "A"};
  Step b{&t, "B", {&d}, true}; // stops and schedules D
  Step c{&t, "C", {&e}};       // same batch: runs; E waits
  // A runs first and schedules B and C for the next iteration, which is the
  // batch that stop() interrupts.
  a.schedule = {&b, &c};
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &a, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  std::vector<std::string> want = {"A", "B", "C"};
  EXPECT_EQ(want, t.events);

  // D and E run on the next run_forever, before anything it schedules.
  Step stop{&t, "stop", {}, true};
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &stop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  want = {"A", "B", "C", "D", "E", "stop"};
  EXPECT_EQ(want, t.events);
}

TEST_F(LoopStop, StopIsConsumedByOneRun) {
  ASSERT_EQ(0, proa_loop_stop(loop));
  ASSERT_EQ(0, proa_loop_run_forever(loop));
  // The second run does not return at once: it waits for the timer's stop.
  struct S {
    proa_loop *loop;
    double when = 0, fired_at = -1;
  } s{loop};
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(
                   loop, 0.05,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     s->fired_at = proa_loop_time(s->loop);
                     proa_loop_stop(s->loop);
                   },
                   &s, &h));
  s.when = proa_handle_when(h);
  proa_handle_unref(h);
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_GE(s.fired_at, s.when);
  EXPECT_GE(proa_loop_time(loop), s.when);
}

TEST_F(LoopStop, StopTwiceThenRunTwice) {
  ASSERT_EQ(0, proa_loop_stop(loop));
  ASSERT_EQ(0, proa_loop_stop(loop));
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_loop_run_forever(loop));
  EXPECT_EQ(1, n);
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0.01, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(2, n);
}

TEST_F(LoopStop, StopFromTimerLeavesLaterTimers) {
  int n = 0;
  ASSERT_EQ(0, proa_call_later(loop, 0.001, StopLoop, loop, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 30, IncrementInt, &n, nullptr));
  double t0 = WallSeconds();
  ASSERT_EQ(0, RunWithWatchdog(loop, 60));
  EXPECT_LT(WallSeconds() - t0, 10.0);
  EXPECT_EQ(0, n);
}

// ---------------------------------------------------------------------------
// call_soon and handles
// ---------------------------------------------------------------------------

struct Order {
  proa_loop *loop;
  std::vector<int> seen;
  int stop_after;
};

struct OrderItem {
  Order *order;
  int index;
};

void RecordOrder(void *arg) {
  OrderItem *it = static_cast<OrderItem *>(arg);
  it->order->seen.push_back(it->index);
  if (static_cast<int>(it->order->seen.size()) == it->order->stop_after)
    proa_loop_stop(it->order->loop);
}

using CallSoon = LoopTest;

TEST_F(CallSoon, FifoExactlyOnce) {
  const int kN = 10000;
  Order order{loop, {}, kN};
  std::vector<OrderItem> items(kN);
  for (int i = 0; i < kN; ++i) {
    items[i] = {&order, i};
    ASSERT_EQ(0, proa_call_soon(loop, RecordOrder, &items[i], nullptr));
  }
  ASSERT_EQ(0, RunWithWatchdog(loop));
  ASSERT_EQ(static_cast<size_t>(kN), order.seen.size());
  for (int i = 0; i < kN; ++i)
    ASSERT_EQ(i, order.seen[i]) << "at position " << i;
  // Nothing runs twice.
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(static_cast<size_t>(kN), order.seen.size());
}

TEST_F(CallSoon, ArgumentPassedThrough) {
  struct S {
    void *got[3];
    int n = 0;
  } s{};
  static S *sp;
  sp = &s;
  void *args[3] = {&s, nullptr, reinterpret_cast<void *>(uintptr_t{0x1234})};
  for (void *a : args)
    ASSERT_EQ(0,
              proa_call_soon(
                  loop, [](void *arg) { sp->got[sp->n++] = arg; }, a, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(3, s.n);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(args[i], s.got[i]);
}

TEST_F(CallSoon, NotCalledSynchronously) {
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  EXPECT_EQ(0, n);
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
}

TEST_F(CallSoon, HandleBasics) {
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, &h));
  ASSERT_NE(nullptr, h);
  EXPECT_FALSE(proa_handle_cancelled(h));
  EXPECT_EQ(0.0, proa_handle_when(h));
  EXPECT_EQ(h, proa_handle_ref(h));
  proa_handle_unref(h);
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
  EXPECT_FALSE(proa_handle_cancelled(h));
  proa_handle_unref(h);
}

TEST_F(CallSoon, CancelBeforeRun) {
  int a = 0, b = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &a, &h));
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &b, nullptr));
  proa_handle_cancel(h);
  EXPECT_TRUE(proa_handle_cancelled(h));
  proa_handle_cancel(h); // twice: nothing changes
  EXPECT_TRUE(proa_handle_cancelled(h));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(0, a);
  EXPECT_EQ(1, b);
  EXPECT_TRUE(proa_handle_cancelled(h));
  proa_handle_unref(h);
}

TEST_F(CallSoon, CancelAfterRunIsNoop) {
  int n = 0;
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, &h));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(1, n);
  proa_handle_cancel(h);
  EXPECT_FALSE(proa_handle_cancelled(h));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, n);
  proa_handle_unref(h);
}

struct CancelOther {
  proa_handle *victim = nullptr;
  int ran = 0;
};

TEST_F(CallSoon, CancelInSameBatchPreventsIt) {
  CancelOther s;
  int victim_ran = 0, after = 0;
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     CancelOther *s = static_cast<CancelOther *>(arg);
                     ++s->ran;
                     proa_handle_cancel(s->victim);
                   },
                   &s, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &victim_ran, &s.victim));
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &after, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, s.ran);
  EXPECT_EQ(0, victim_ran);
  EXPECT_EQ(1, after);
  EXPECT_TRUE(proa_handle_cancelled(s.victim));
  proa_handle_unref(s.victim);
}

TEST_F(CallSoon, ScheduledFromCallbackRunsLater) {
  Trace t{loop, {}};
  Step b{&t, "B"};
  Step a{&t, "A", {&b}};
  Step c{&t, "C"};
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &a, nullptr));
  ASSERT_EQ(0, proa_call_soon(loop, RunStep, &c, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ((std::vector<std::string>{"A", "C"}), t.events);
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ((std::vector<std::string>{"A", "C", "B"}), t.events);
}

TEST_F(CallSoon, SelfReschedulingCallbackDoesNotStarveStop) {
  // A callback that always reschedules itself must not keep one iteration
  // going forever: stop() still ends the run.
  struct S {
    proa_loop *loop;
    int n = 0;
  } s{loop};
  static void (*again)(void *) = nullptr;
  again = [](void *arg) {
    S *s = static_cast<S *>(arg);
    if (++s->n == 100)
      proa_loop_stop(s->loop);
    EXPECT_EQ(0, proa_call_soon(s->loop, again, s, nullptr));
  };
  ASSERT_EQ(0, proa_call_soon(loop, again, &s, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(100, s.n);
}

// ---------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------

using LoopTime = LoopTest;

TEST_F(LoopTime, Monotonic) {
  double prev = proa_loop_time(loop);
  for (int i = 0; i < 10000; ++i) {
    double now = proa_loop_time(loop);
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST_F(LoopTime, CountsSeconds) {
  double t0 = proa_loop_time(loop);
  SleepMs(50);
  double dt = proa_loop_time(loop) - t0;
  EXPECT_GE(dt, 0.045); // at least the sleep (allowing clock granularity)
  EXPECT_LT(dt, 10.0);  // and in seconds, not milliseconds
}

TEST_F(LoopTime, ThreadSafe) {
  double before = proa_loop_time(loop);
  double seen = -1;
  std::thread t([&] { seen = proa_loop_time(loop); });
  t.join();
  EXPECT_GE(seen, before);
  EXPECT_LE(seen, proa_loop_time(loop));
}

} // namespace

namespace {

// The helpers that decide Wine-only skips agree with each other.
TEST(TestSupport, WineDetectionIsConsistent) {
  EXPECT_EQ(proa_test_is_wine(), proa_test_wine_version() != nullptr);
#ifndef _WIN32
  EXPECT_FALSE(proa_test_is_wine());
#endif
}

} // namespace
