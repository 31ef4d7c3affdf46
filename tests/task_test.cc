// Tests of tasks (task.h): stackful coroutines as futures, proa_await,
// cancellation while awaiting every kind of future, nested errors, stacks,
// sleep, gather, wait_for, the task factory, debug-mode reports, and 10,000
// concurrent tasks each doing a TCP echo round trip over loopback.
#include "task_test.h"

#include "alloc_fail.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>

#if defined(_MSC_VER)
#include <intrin.h>
#include <malloc.h>
#define PROA_TEST_ALLOCA _alloca
#define PROA_TEST_NOINLINE __declspec(noinline)
#else
#define PROA_TEST_ALLOCA __builtin_alloca
#define PROA_TEST_NOINLINE __attribute__((noinline))
#endif

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>
#endif

using namespace proa_task_test;
using proa_net_test::Await;
using proa_net_test::RunIterations;
using proa_net_test::RunUntil;
using proa_test::RunOnce;

namespace {

// ---- helpers ----

// A value whose release is counted (free_result / free_value).
int g_frees = 0;
void CountFree(void *) { ++g_frees; }

Fut NewFuture(proa_loop *loop) {
  proa_future *f = nullptr;
  EXPECT_EQ(0, proa_future_new(loop, &f));
  return Fut(f);
}

// Records done callbacks: which ran, in order, and whether the future was
// done when they ran.
struct DoneLog {
  std::string order;
  int calls = 0;
  bool all_done = true;
};
void DoneA(proa_future *f, void *arg) {
  DoneLog *l = static_cast<DoneLog *>(arg);
  l->order += 'a';
  l->calls++;
  l->all_done = l->all_done && proa_future_done(f);
}
void DoneB(proa_future *f, void *arg) {
  DoneLog *l = static_cast<DoneLog *>(arg);
  l->order += 'b';
  l->calls++;
  l->all_done = l->all_done && proa_future_done(f);
}

// The address of the caller's frame: always on the real stack (never on
// AddressSanitizer's fake stack).
PROA_TEST_NOINLINE uintptr_t StackHere() {
#if defined(_MSC_VER)
  return reinterpret_cast<uintptr_t>(_AddressOfReturnAddress());
#else
  return reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
#endif
}

// The calling thread's stack, [low, high).
void ThreadStack(uintptr_t *low, uintptr_t *high) {
  *low = *high = 0;
#ifdef _WIN32
  ULONG_PTR lo = 0, hi = 0;
  GetCurrentThreadStackLimits(&lo, &hi);
  *low = lo;
  *high = hi;
#else
  pthread_attr_t attr;
  void *addr = nullptr;
  size_t size = 0;
#if defined(__APPLE__)
  *high = reinterpret_cast<uintptr_t>(pthread_get_stackaddr_np(pthread_self()));
  *low = *high - pthread_get_stacksize_np(pthread_self());
  (void)attr;
  (void)addr;
  (void)size;
#else
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    *low = reinterpret_cast<uintptr_t>(addr);
    *high = *low + size;
  }
#endif
#endif
}

// Recurses, taking about 2 KiB of stack per level, until `target` bytes
// below `top` are in use; touches every cache line it takes. The blocks come
// from alloca, which AddressSanitizer never moves to a fake stack, so the
// addresses measure the real stack. Returns the depth.
PROA_TEST_NOINLINE size_t Consume(uintptr_t top, size_t target,
                                  uintptr_t *deepest) {
  volatile unsigned char *p =
      static_cast<volatile unsigned char *>(PROA_TEST_ALLOCA(2048));
  for (size_t i = 0; i < 2048; i += 64)
    p[i] = static_cast<unsigned char>(i);
  uintptr_t here = reinterpret_cast<uintptr_t>(p);
  if (here < *deepest)
    *deepest = here;
  size_t depth = 1;
  if (top - here < target)
    depth += Consume(top, target, deepest);
  p[0] = static_cast<unsigned char>(depth); // no tail call
  return depth;
}

class Task : public TaskFixture {};

// ---- creation and running ----

TEST_F(Task, RunsOnTheNextIterationNotSynchronously) {
  int runs = 0;
  proa_future *inside = nullptr;
  Fut t(SpawnV([&] {
    runs++;
    inside = proa_current_task();
  }));
  ASSERT_TRUE(t);
  EXPECT_EQ(0, runs) << "the body ran from inside proa_create_task";
  EXPECT_FALSE(proa_future_done(t.get()));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, runs);
  EXPECT_EQ(t.get(), inside);
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(1, runs);
}

TEST_F(Task, ChildCreatedInATaskStartsLater) {
  int child_runs = 0, seen_before_await = -1;
  Fut parent(SpawnV([&] {
    Fut child(SpawnV([&] { child_runs++; }));
    ASSERT_TRUE(child);
    seen_before_await = child_runs;
    EXPECT_EQ(0, proa_await(child.get(), nullptr));
  }));
  EXPECT_EQ(0, Complete(parent.get()));
  EXPECT_EQ(0, seen_before_await);
  EXPECT_EQ(1, child_runs);
}

TEST_F(Task, RunsOnItsOwnStack) {
  uintptr_t low = 0, high = 0;
  ThreadStack(&low, &high);
  ASSERT_LT(low, high);
  uintptr_t here = StackHere();
  ASSERT_TRUE(here >= low && here < high) << "cannot find the thread's stack";
  Fut gate = NewFuture(loop);
  uintptr_t sp[2] = {0, 0};
  Fut a(SpawnV([&] {
    sp[0] = StackHere();
    EXPECT_EQ(0, proa_await(gate.get(), nullptr));
  }));
  Fut b(SpawnV([&] {
    sp[1] = StackHere();
    EXPECT_EQ(0, proa_await(gate.get(), nullptr));
  }));
  ASSERT_TRUE(RunUntil(loop, [&] { return sp[0] != 0 && sp[1] != 0; }));
  for (uintptr_t p : sp)
    EXPECT_FALSE(p >= low && p < high)
        << "a task body runs on the thread's own stack";
  // Both are suspended at once, at the same depth of the same code: their
  // stacks are separate regions of at least the default 256 KiB.
  uintptr_t gap = sp[0] > sp[1] ? sp[0] - sp[1] : sp[1] - sp[0];
  EXPECT_GE(gap, static_cast<uintptr_t>(256 * 1024));
  ASSERT_EQ(0, proa_future_set_result(gate.get(), nullptr, nullptr));
  EXPECT_EQ(0, Complete(a.get()));
  EXPECT_EQ(0, Complete(b.get()));
}

TEST_F(Task, CreateBadArguments) {
  proa_future *t = reinterpret_cast<proa_future *>(&t); // not NULL
  EXPECT_EQ(PROA_EINVAL, proa_create_task(loop, nullptr, nullptr, nullptr, &t));
  EXPECT_EQ(nullptr, t);
  EXPECT_EQ(PROA_EINVAL,
            proa_create_task(loop, RunBody, nullptr, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL,
            proa_create_task(nullptr, RunBody, nullptr, nullptr, &t));
  proa_test::Loop closed;
  ASSERT_EQ(0, closed.rc());
  ASSERT_EQ(0, proa_loop_close(closed));
  EXPECT_EQ(PROA_ECLOSED,
            proa_create_task(closed, RunBody, nullptr, nullptr, &t));
  EXPECT_EQ(nullptr, t);
}

// ---- a task is a future ----

TEST_F(Task, IsAFutureWithResultDoneCallbacksAndFreeResult) {
  g_frees = 0;
  static int value = 42;
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.free_result = CountFree;
  Fut t(Spawn(
      [](void **r) {
        *r = &value;
        return 0;
      },
      &o));
  ASSERT_TRUE(t);
  EXPECT_TRUE(proa_future_is_task(t.get()));
  EXPECT_EQ(loop, proa_future_loop(t.get()));
  DoneLog log;
  ASSERT_EQ(0, proa_future_add_done_callback(t.get(), DoneA, &log));
  ASSERT_EQ(0, proa_future_add_done_callback(t.get(), DoneB, &log));
  void *v = nullptr;
  EXPECT_EQ(PROA_ENOTDONE, proa_future_result(t.get(), &v));
  EXPECT_EQ(0, Complete(t.get(), &v));
  EXPECT_EQ(&value, v);
  RunIterations(loop, 2);
  EXPECT_EQ("ab", log.order);
  EXPECT_TRUE(log.all_done);
  EXPECT_FALSE(proa_future_cancelled(t.get()));
  EXPECT_EQ(0, proa_future_error(t.get()));
  EXPECT_EQ(0, g_frees) << "the result is the task's until it is freed";
  t.reset();
  EXPECT_EQ(1, g_frees);
}

TEST_F(Task, ErrorBecomesTheTaskErrorAndAResultIsStillFreedOnce) {
  g_frees = 0;
  static int value = 1;
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.free_result = CountFree;
  Fut t(Spawn(
      [](void **r) {
        *r = &value;
        return PROA_EIO;
      },
      &o));
  DoneLog log;
  ASSERT_EQ(0, proa_future_add_done_callback(t.get(), DoneA, &log));
  void *v = &v;
  EXPECT_EQ(PROA_EIO, Complete(t.get(), &v));
  EXPECT_EQ(nullptr, v);
  EXPECT_EQ(PROA_EIO, proa_future_error(t.get()));
  EXPECT_FALSE(proa_future_cancelled(t.get()));
  RunIterations(loop, 2);
  EXPECT_EQ(1, log.calls);
  t.reset();
  EXPECT_EQ(1, g_frees);
}

TEST_F(Task, RunUntilCompleteAcceptsATask) {
  static int value = 7;
  Fut t(Spawn([this](void **r) {
    EXPECT_EQ(0, TaskSleep(loop, 0.001));
    *r = &value;
    return 0;
  }));
  void *v = nullptr;
  EXPECT_EQ(0, proa_loop_run_until_complete(loop, t.get(), &v));
  EXPECT_EQ(&value, v);
}

TEST_F(Task, FutureIsTask) {
  Fut t(SpawnV([] {}));
  Fut f = NewFuture(loop);
  proa_future *s = nullptr, *g = nullptr, *w = nullptr;
  ASSERT_EQ(0, proa_sleep(loop, 0, &s));
  Fut sleep(s);
  ASSERT_EQ(0, proa_gather(loop, nullptr, 0, &g));
  Fut gather(g);
  ASSERT_EQ(0, proa_wait_for(loop, f.get(), 10, &w));
  Fut wait(w);
  EXPECT_TRUE(proa_future_is_task(t.get()));
  EXPECT_FALSE(proa_future_is_task(f.get()));
  EXPECT_FALSE(proa_future_is_task(s));
  EXPECT_FALSE(proa_future_is_task(g));
  EXPECT_FALSE(proa_future_is_task(w));
  EXPECT_FALSE(proa_future_is_task(nullptr));
  EXPECT_EQ(0, Complete(t.get()));
  proa_future_cancel(w, nullptr);
  EXPECT_EQ(PROA_ECANCELED, Complete(w));
}

TEST_F(Task, CurrentTaskInsideAndOutside) {
  EXPECT_EQ(nullptr, proa_current_task());
  proa_future *in_a_before = nullptr, *in_a_after = nullptr, *in_b = nullptr;
  proa_future *b_ptr = nullptr;
  struct Cb {
    static void Record(proa_future *, void *arg) {
      *static_cast<proa_future **>(arg) = proa_current_task();
    }
  };
  proa_future *in_callback = reinterpret_cast<proa_future *>(&b_ptr);
  Fut a(SpawnV([&] {
    in_a_before = proa_current_task();
    Fut b(SpawnV([&] {
      in_b = proa_current_task();
      EXPECT_EQ(0, TaskSleep(loop, 0));
    }));
    b_ptr = b.get();
    EXPECT_EQ(0, proa_await(b.get(), nullptr));
    in_a_after = proa_current_task();
  }));
  ASSERT_EQ(0,
            proa_future_add_done_callback(a.get(), Cb::Record, &in_callback));
  EXPECT_EQ(0, Complete(a.get()));
  RunIterations(loop, 2);
  EXPECT_EQ(a.get(), in_a_before);
  EXPECT_EQ(a.get(), in_a_after);
  EXPECT_EQ(b_ptr, in_b);
  EXPECT_NE(nullptr, in_b);
  EXPECT_EQ(nullptr, in_callback) << "a done callback runs outside any task";
  EXPECT_EQ(nullptr, proa_current_task());
}

// ---- await ----

TEST_F(Task, AwaitReturnsTheResultOrTheError) {
  Fut ok = NewFuture(loop), bad = NewFuture(loop);
  static int value = 5;
  void *got = nullptr;
  int rc_ok = 1, rc_bad = 1;
  std::string message;
  Fut t(SpawnV([&] {
    rc_ok = proa_await(ok.get(), &got);
    void *v = &v;
    rc_bad = proa_await(bad.get(), &v);
    EXPECT_EQ(nullptr, v);
    const char *m = proa_future_error_message(bad.get());
    message = m != nullptr ? m : "";
  }));
  RunIterations(loop, 2);
  EXPECT_EQ(1, rc_ok) << "the await returned before the future was done";
  ASSERT_EQ(0, proa_future_set_result(ok.get(), &value, nullptr));
  ASSERT_TRUE(RunUntil(loop, [&] { return rc_ok != 1; }));
  EXPECT_EQ(1, rc_bad);
  ASSERT_EQ(0, proa_future_set_error(bad.get(), PROA_EIO, "disk on fire"));
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(0, rc_ok);
  EXPECT_EQ(&value, got);
  EXPECT_EQ(PROA_EIO, rc_bad);
  EXPECT_EQ("disk on fire", message);
}

TEST_F(Task, AwaitOfADoneFutureReturnsAtOnce) {
  Fut f = NewFuture(loop);
  static int value = 3;
  ASSERT_EQ(0, proa_future_set_result(f.get(), &value, nullptr));
  int ran = 0, ran_at_return = -1;
  void *got = nullptr;
  Fut t(SpawnV([&] {
    // Anything the loop could run meanwhile would bump `ran`.
    EXPECT_EQ(0, proa_call_soon(loop, proa_test::IncrementInt, &ran, nullptr));
    EXPECT_EQ(0, proa_await(f.get(), &got));
    ran_at_return = ran;
  }));
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(&value, got);
  EXPECT_EQ(0, ran_at_return) << "awaiting a done future suspended the task";
}

TEST_F(Task, AwaitOutsideATask) {
  Fut f = NewFuture(loop);
  void *v = &v;
  EXPECT_EQ(PROA_ENOTINTASK, proa_await(f.get(), &v));
  EXPECT_EQ(nullptr, v);
  ASSERT_EQ(0, proa_future_set_result(f.get(), nullptr, nullptr));
  EXPECT_EQ(PROA_ENOTINTASK, proa_await(f.get(), nullptr));
  // Nor from a done callback, which runs on the loop's stack.
  struct Cb {
    static void Await(proa_future *self, void *arg) {
      *static_cast<int *>(arg) = proa_await(self, nullptr);
    }
  };
  int in_callback = 1;
  ASSERT_EQ(0, proa_future_add_done_callback(f.get(), Cb::Await, &in_callback));
  RunIterations(loop, 2);
  EXPECT_EQ(PROA_ENOTINTASK, in_callback);
}

TEST_F(Task, AwaitingItselfIsAnError) {
  int rc = 1;
  Fut t(Spawn([&](void **) {
    rc = proa_await(proa_current_task(), nullptr);
    return 0;
  }));
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(PROA_EINVAL, rc);
}

TEST_F(Task, AwaitsAnotherTask) {
  g_frees = 0;
  static int value = 11;
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.free_result = CountFree;
  Fut b(Spawn(
      [this](void **r) {
        EXPECT_EQ(0, TaskSleep(loop, 0.001));
        *r = &value;
        return 0;
      },
      &o));
  void *got = nullptr;
  int rc = 1;
  Fut a(SpawnV([&] { rc = proa_await(b.get(), &got); }));
  EXPECT_EQ(0, Complete(a.get()));
  EXPECT_EQ(0, rc);
  EXPECT_EQ(&value, got);
  EXPECT_TRUE(proa_future_done(b.get()));
  EXPECT_EQ(0, g_frees) << "the awaited task still owns its result";
  b.reset();
  EXPECT_EQ(1, g_frees);
}

TEST_F(Task, ErrorsPropagateThroughNestedAwaits) {
  int rc_b = 1, rc_a = 1;
  Fut c_ref, b_ref;
  Fut a(Spawn([&](void **) {
    b_ref.reset(Spawn([&](void **) {
      c_ref.reset(Spawn([&](void **) {
        EXPECT_EQ(0, TaskSleep(loop, 0));
        return static_cast<int>(PROA_EIO);
      }));
      rc_b = proa_await(c_ref.get(), nullptr);
      return rc_b;
    }));
    rc_a = proa_await(b_ref.get(), nullptr);
    return rc_a;
  }));
  EXPECT_EQ(PROA_EIO, Complete(a.get()));
  EXPECT_EQ(PROA_EIO, rc_b);
  EXPECT_EQ(PROA_EIO, rc_a);
  ASSERT_TRUE(b_ref && c_ref);
  EXPECT_EQ(PROA_EIO, proa_future_error(c_ref.get()));
  EXPECT_EQ(PROA_EIO, proa_future_error(b_ref.get()));
}

// ---- cancellation ----

class TaskCancel : public TaskFixture {
protected:
  // Task A awaits `f` and is cancelled (with a message) while it waits;
  // task B awaits `f` too and returns what its await returned. Checks the
  // contract of task.h, asyncio's: cancelling A cancels `f` (with the
  // message), so A's await returns PROA_ECANCELED (and so does its second
  // await, f's own outcome), B's await returns PROA_ECANCELED too, both
  // tasks end cancelled rather than with an error, and nothing reaches the
  // exception handler (the fixture fails the test on any report).
  // release() then lets whatever was behind `f` finish.
  void CancelWhileAwaiting(proa_future *f,
                           const std::function<void()> &release = {}) {
    int a_first = 1, a_second = 1, b_rc = 1, a_end = 0;
    bool f_cancelled_at_first = false;
    Fut a(SpawnV([&] {
      a_first = proa_await(f, nullptr);
      f_cancelled_at_first = proa_future_cancelled(f);
      a_second = proa_await(f, nullptr);
      a_end = 1;
    }));
    Fut b(Spawn([&](void **) {
      b_rc = proa_await(f, nullptr);
      return b_rc;
    }));
    ASSERT_TRUE(a && b);
    RunIterations(loop, 2);
    ASSERT_EQ(1, a_first) << "the await returned before anything happened";
    ASSERT_FALSE(proa_future_done(a.get()));
    EXPECT_TRUE(proa_future_cancel(a.get(), "stop"));
    EXPECT_FALSE(proa_future_done(a.get()))
        << "a task that awaits must get the chance to clean up first";
    // (A task awaited is cancelled once its body has ended.)
    EXPECT_TRUE(proa_future_cancelled(f) || proa_future_is_task(f))
        << "cancelling the task did not cancel the future it awaits";
    EXPECT_EQ(PROA_ECANCELED, Complete(a.get()));
    EXPECT_TRUE(proa_future_cancelled(a.get()));
    ASSERT_NE(nullptr, proa_future_error_message(a.get()));
    EXPECT_STREQ("stop", proa_future_error_message(a.get()));
    EXPECT_EQ(PROA_ECANCELED, a_first);
    EXPECT_TRUE(f_cancelled_at_first);
    EXPECT_EQ(PROA_ECANCELED, a_second) << proa_err_name(a_second);
    EXPECT_EQ(1, a_end) << "the cancelled task did not run to its end";
    EXPECT_EQ(PROA_ECANCELED, Complete(b.get()));
    EXPECT_EQ(PROA_ECANCELED, b_rc) << proa_err_name(b_rc);
    EXPECT_TRUE(proa_future_cancelled(b.get()))
        << "a task passing on PROA_ECANCELED must end cancelled";
    if (release)
      release();
    RunIterations(loop, 3);
  }
};

TEST_F(TaskCancel, WhileAwaitingAPlainFuture) {
  Fut f = NewFuture(loop);
  CancelWhileAwaiting(f.get());
  ASSERT_NE(nullptr, proa_future_error_message(f.get()));
  EXPECT_STREQ("stop", proa_future_error_message(f.get()));
  static int value = 9;
  EXPECT_EQ(PROA_ESTATE, proa_future_set_result(f.get(), &value, nullptr));
}

TEST_F(TaskCancel, WhileAwaitingASleep) {
  proa_future *s = nullptr;
  ASSERT_EQ(0, proa_sleep(loop, 1000.0, &s));
  Fut sleep(s);
  // Were the sleep left alone, the watchdog of Complete() would fire.
  CancelWhileAwaiting(s);
}

TEST_F(TaskCancel, WhileAwaitingAnotherTask) {
  // The cancellation goes down the chain: the inner task, then the future
  // that one awaits.
  Fut gate = NewFuture(loop);
  int inner_rc = 1;
  Fut inner(Spawn([&](void **) {
    inner_rc = proa_await(gate.get(), nullptr);
    return inner_rc;
  }));
  CancelWhileAwaiting(inner.get());
  EXPECT_EQ(PROA_ECANCELED, inner_rc) << "the awaited task was not cancelled";
  EXPECT_TRUE(proa_future_cancelled(gate.get()));
  EXPECT_STREQ("stop", proa_future_error_message(inner.get()));
}

int ExecutorWork(void *arg, void **result) {
  int *v = static_cast<int *>(malloc(sizeof(int)));
  if (v == nullptr)
    return PROA_ENOMEM;
  *v = *static_cast<int *>(arg);
  *result = v;
  return 0;
}

TEST_F(TaskCancel, WhileAwaitingAnExecutorFuture) {
  // The job still runs; its result is freed (AddressSanitizer checks).
  static int input = 77;
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_run_in_executor(loop, &gate.base, ExecutorWork, &input,
                                    free, &f));
  Fut work(f);
  EXPECT_EQ(1u, gate.Held());
  CancelWhileAwaiting(f, [&] {
    gate.Release();
    gate.Join();
  });
}

TEST_F(TaskCancel, WhileAwaitingCreateConnection) {
  // The name lookup runs on the default executor: the gate holds it, so
  // the connection stays pending until the test lets it go on. Cancelled,
  // the connection attempt stops: the server never sees a connection.
  Server *srv = LocalServer();
  ASSERT_GT(srv->port, 0);
  ASSERT_EQ(0, proa_loop_set_default_executor(loop, &gate.base));
  Conn *c = NewConn();
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  o.family = PROA_AF_INET;
  ASSERT_EQ(0, StartConnect(c, "localhost", srv->port, &o));
  ASSERT_TRUE(RunUntil(loop, [&] { return gate.Held() > 0; }))
      << "create_connection(\"localhost\") did not use the default executor";
  CancelWhileAwaiting(c->connect_future, [&] {
    gate.Release();
    gate.Join();
  });
  EXPECT_EQ(nullptr, c->t) << "a transport was made after the cancel";
  EXPECT_EQ(0u, srv->conns.size());
}

TEST_F(TaskCancel, WhileAwaitingAStreamRead) {
  // The cancelled read takes nothing: the data stays for the next read.
  Conn *peer = nullptr;
  proa_stream *s = OpenToPeer(&peer);
  ASSERT_TRUE(s != nullptr && peer != nullptr);
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_stream_read(s, 100, &f));
  Fut read(f);
  CancelWhileAwaiting(f, [&] { ASSERT_EQ(0, PeerWrite(peer, "data")); });
  proa_future *again = nullptr;
  ASSERT_EQ(0, proa_stream_read(s, 100, &again));
  Fut next(again);
  ASSERT_EQ(0, proa_net_test::Await(loop, again));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(again, &v));
  const proa_bytes *b = static_cast<const proa_bytes *>(v);
  ASSERT_NE(nullptr, b);
  EXPECT_EQ("data",
            std::string(reinterpret_cast<const char *>(b->data), b->len));
}

TEST_F(TaskCancel, WhileInsideOpenConnection) {
  // A task cancelled while it awaits proa_open_connection leaves no
  // connection behind: whatever the server saw is lost again, and no
  // transport outlives the test (the fixture's close-time check and
  // AddressSanitizer would see one).
  Server *srv = LocalServer();
  ASSERT_GT(srv->port, 0);
  int rc = 1;
  proa_future *opening = nullptr;
  Fut t(Spawn([&](void **) {
    EXPECT_EQ(0, proa_open_connection(loop, "127.0.0.1", srv->port, nullptr, 0,
                                      &opening));
    rc = proa_await(opening, nullptr);
    return rc;
  }));
  ASSERT_EQ(0, RunOnce(loop)); // the task starts connecting
  ASSERT_NE(nullptr, opening);
  Fut open_ref(opening);
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_TRUE(proa_future_cancelled(t.get()));
  EXPECT_EQ(PROA_ECANCELED, rc);
  EXPECT_TRUE(proa_future_cancelled(opening));
  // The connect goes on underneath; once it ends, the server side must
  // have lost whatever connection it got.
  EXPECT_TRUE(Until([&] {
    for (auto &c : srv->conns)
      if (c->made && !c->lost)
        return false;
    return true;
  })) << "the server still holds a connection of the cancelled task";
}

TEST_F(TaskCancel, TwiceBeforeItIsDeliveredCountsOnce) {
  Fut gate = NewFuture(loop), next = NewFuture(loop);
  int first = 1, second = 1, resumes = 0;
  Fut t(SpawnV([&] {
    first = proa_await(gate.get(), nullptr);
    resumes++;
    second = proa_await(next.get(), nullptr);
    resumes++;
  }));
  RunIterations(loop, 2);
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  ASSERT_TRUE(RunUntil(loop, [&] { return first != 1; }));
  RunIterations(loop, 3);
  EXPECT_EQ(PROA_ECANCELED, first);
  EXPECT_EQ(1, resumes) << "the second await was interrupted as well";
  EXPECT_FALSE(proa_future_done(next.get()));
  ASSERT_EQ(0, proa_future_set_result(next.get(), nullptr, nullptr));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_EQ(0, second);
  EXPECT_EQ(2, resumes);
}

TEST_F(TaskCancel, RetriedAfterNoMemoryForTheMessageKeepsTheNewOne) {
  // The first cancel cannot copy its message; the retry's message is the
  // one the task ends with, and nothing leaks (AddressSanitizer).
  PROA_NEED_ALLOC_FAIL();
  Fut gate = NewFuture(loop);
  Fut t(Spawn([&](void **) { return proa_await(gate.get(), nullptr); }));
  RunIterations(loop, 2);
  proa_alloc_fail::FailNth(1);
  EXPECT_TRUE(proa_future_cancel(t.get(), "first"));
  EXPECT_EQ(1, proa_alloc_fail::Failures());
  proa_alloc_fail::FailNth(0);
  EXPECT_TRUE(proa_future_cancel(t.get(), "second"));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_TRUE(proa_future_cancelled(t.get()));
  ASSERT_NE(nullptr, proa_future_error_message(t.get()));
  EXPECT_STREQ("second", proa_future_error_message(t.get()));
}

TEST_F(TaskCancel, AwaitedFutureCancelledBySomeoneElse) {
  // Nobody cancels the task: the future it awaits is cancelled, the body
  // passes the PROA_ECANCELED on, and the task ends cancelled, which is
  // no error nobody retrieved (the fixture fails on any report).
  Fut f = NewFuture(loop);
  Fut t(Spawn([&](void **) { return proa_await(f.get(), nullptr); }));
  RunIterations(loop, 2);
  EXPECT_TRUE(proa_future_cancel(f.get(), "gone"));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_TRUE(proa_future_cancelled(t.get()));
  t.reset();
  RunIterations(loop, 2);
}

TEST_F(TaskCancel, CancelAndCompletionInTheSameIteration) {
  // The awaited future completes and the task is cancelled before the task
  // runs again: it must be resumed once, and see the cancellation.
  Fut f = NewFuture(loop);
  static int value = 8;
  int rc = 1, resumes = 0;
  void *after = nullptr;
  Fut t(SpawnV([&] {
    rc = proa_await(f.get(), nullptr);
    resumes++;
    EXPECT_EQ(0, proa_await(f.get(), &after)) << "f is done: no suspension";
  }));
  RunIterations(loop, 2);
  ASSERT_EQ(0, proa_future_set_result(f.get(), &value, nullptr));
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  RunIterations(loop, 3);
  EXPECT_EQ(PROA_ECANCELED, rc);
  EXPECT_EQ(1, resumes);
  EXPECT_EQ(&value, after);
}

TEST_F(TaskCancel, BeforeItStartsTheBodyNeverRuns) {
  int runs = 0;
  Fut t(SpawnV([&] { runs++; }));
  DoneLog log;
  ASSERT_EQ(0, proa_future_add_done_callback(t.get(), DoneA, &log));
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_TRUE(proa_future_cancelled(t.get()));
  RunIterations(loop, 2);
  EXPECT_EQ(0, runs);
  EXPECT_EQ(1, log.calls);
  EXPECT_FALSE(proa_future_cancel(t.get(), nullptr))
      << "cancelling a done task must return false";
}

TEST_F(TaskCancel, SelfCancelIsSeenAtTheNextAwait) {
  int rc = 1, after = 1;
  Fut t(SpawnV([&] {
    EXPECT_TRUE(proa_future_cancel(proa_current_task(), nullptr));
    rc = TaskSleep(loop, 0);
    after = TaskSleep(loop, 0);
  }));
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get()));
  EXPECT_EQ(PROA_ECANCELED, rc);
  EXPECT_EQ(0, after);
  EXPECT_TRUE(proa_future_cancelled(t.get()));
}

TEST_F(TaskCancel, ResultOfACancelledTaskIsFreedOnce) {
  g_frees = 0;
  static int value = 2;
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.free_result = CountFree;
  Fut gate = NewFuture(loop);
  Fut t(Spawn(
      [&](void **r) {
        EXPECT_EQ(PROA_ECANCELED, proa_await(gate.get(), nullptr));
        *r = &value;
        return 0;
      },
      &o));
  RunIterations(loop, 2);
  EXPECT_TRUE(proa_future_cancel(t.get(), nullptr));
  void *v = &v;
  EXPECT_EQ(PROA_ECANCELED, Complete(t.get(), &v));
  EXPECT_EQ(nullptr, v);
  t.reset();
  EXPECT_EQ(1, g_frees);
}

// ---- stacks ----

class TaskStack : public TaskFixture {
protected:
  // Runs a task with the given stack size that uses `target` bytes of it;
  // returns how many bytes it really used (0 on failure).
  size_t UseStack(size_t stack_size, size_t target) {
    size_t used = 0, depth = 0;
    proa_task_options o = PROA_TASK_OPTIONS_INIT;
    o.stack_size = stack_size;
    Fut t(SpawnV(
        [&] {
          uintptr_t top = StackHere();
          uintptr_t deepest = top;
          depth = Consume(top, target, &deepest);
          used = top - deepest;
          // The stack must still work for awaits after that.
          EXPECT_EQ(0, TaskSleep(loop, 0));
        },
        &o));
    EXPECT_EQ(0, Complete(t.get()));
    EXPECT_GT(depth, 0u);
    return used;
  }

  // 1 MiB of recursion on the default 256 KiB stack: the guard page below
  // the stack must stop it (rather than let it write over other memory).
  void OverflowDefaultStack() {
    Fut t(SpawnV([] {
      uintptr_t top = StackHere();
      uintptr_t deepest = top;
      Consume(top, 1024 * 1024, &deepest);
      std::fprintf(stderr, "survived %zu bytes\n",
                   static_cast<size_t>(top - deepest));
    }));
    Complete(t.get());
    std::fprintf(stderr, "the task finished\n");
  }
};

TEST_F(TaskStack, DefaultStackHolds200KiBOfRecursion) {
  size_t used = UseStack(0, 200 * 1024);
  EXPECT_GE(used, 200u * 1024);
}

TEST_F(TaskStack, CustomStackSizeOf1MiBHolds900KiB) {
  size_t used = UseStack(1024 * 1024, 900 * 1024);
  EXPECT_GE(used, 900u * 1024);
}

TEST_F(TaskStack, OddStackSizeIsRoundedUp) {
  size_t used = UseStack(512 * 1024 + 1, 480 * 1024);
  EXPECT_GE(used, 480u * 1024);
}

TEST_F(TaskStack, HugeStackSizeIsRejectedNotWrapped) {
  // Rounded up to whole pages plus a guard page, these sizes wrap around
  // to a stack of almost nothing: refused with PROA_EINVAL. One that fits
  // in a size_t but not in memory is PROA_ENOMEM.
  const size_t wrapping[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096};
  static int runs;
  runs = 0;
  for (size_t size : wrapping) {
    proa_task_options o = PROA_TASK_OPTIONS_INIT;
    o.stack_size = size;
    proa_future *t = reinterpret_cast<proa_future *>(&runs); // set to NULL
    EXPECT_EQ(PROA_EINVAL, proa_create_task(
                               loop,
                               [](void *, void **) {
                                 runs++;
                                 return 0;
                               },
                               nullptr, &o, &t))
        << size;
    EXPECT_EQ(nullptr, t);
  }
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.stack_size = SIZE_MAX / 2;
  proa_future *t = nullptr;
  EXPECT_EQ(PROA_ENOMEM, proa_create_task(
                             loop,
                             [](void *, void **) {
                               runs++;
                               return 0;
                             },
                             nullptr, &o, &t));
  EXPECT_EQ(nullptr, t);
  RunIterations(loop, 2);
  EXPECT_EQ(0, runs);
}

TEST_F(TaskStack, ManyTasksWithDeepStacksAtOnce) {
  // Stacks come from a pool: tasks alive together never share one.
  const int kTasks = 8;
  Fut gate = NewFuture(loop);
  std::vector<Fut> tasks;
  int ok = 0;
  for (int i = 0; i < kTasks; i++)
    tasks.emplace_back(SpawnV([&, i] {
      uintptr_t top = StackHere();
      uintptr_t deepest = top;
      Consume(top, 64 * 1024, &deepest);
      volatile unsigned char mark[64];
      for (int k = 0; k < 64; k++)
        mark[k] = static_cast<unsigned char>(i);
      EXPECT_EQ(0, proa_await(gate.get(), nullptr));
      Consume(top, 100 * 1024, &deepest);
      bool same = true;
      for (int k = 0; k < 64; k++)
        same = same && mark[k] == static_cast<unsigned char>(i);
      EXPECT_TRUE(same) << "task " << i << "'s stack was overwritten";
      ok += same;
    }));
  RunIterations(loop, 2);
  ASSERT_EQ(0, proa_future_set_result(gate.get(), nullptr, nullptr));
  for (auto &t : tasks)
    EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(kTasks, ok);
}

#if GTEST_HAS_DEATH_TEST
TEST_F(TaskStack, OverflowFaultsOnTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Any exit status: the point is that the process dies rather than return
  // (Wine reports status 0 for a child killed by the fault).
  EXPECT_EXIT(
      OverflowDefaultStack(), [](int) { return true; }, "");
}
#endif

// ---- sleep ----

class TaskSleepTest : public TaskFixture {};

TEST_F(TaskSleepTest, NeverEarlierThanAsked) {
  double asked[] = {0.001, 0.02, 0.05};
  std::vector<double> took;
  Fut t(SpawnV([&] {
    for (double s : asked) {
      double t0 = proa_loop_time(loop);
      EXPECT_EQ(0, TaskSleep(loop, s));
      took.push_back(proa_loop_time(loop) - t0);
    }
  }));
  EXPECT_EQ(0, Complete(t.get()));
  ASSERT_EQ(3u, took.size());
  for (size_t i = 0; i < 3; i++)
    EXPECT_GE(took[i], asked[i]) << "sleep(" << asked[i] << ") woke early";
  // Outside a task, as a plain future.
  proa_future *s = nullptr;
  double t0 = proa_loop_time(loop);
  ASSERT_EQ(0, proa_sleep(loop, 0.03, &s));
  Fut sleep(s);
  void *v = &v;
  EXPECT_EQ(0, Complete(s, &v));
  EXPECT_EQ(nullptr, v);
  EXPECT_GE(proa_loop_time(loop) - t0, 0.03);
}

TEST_F(TaskSleepTest, ZeroAndNegativeComplete) {
  proa_future *a = nullptr, *b = nullptr;
  ASSERT_EQ(0, proa_sleep(loop, 0, &a));
  Fut fa(a);
  ASSERT_EQ(0, proa_sleep(loop, -1, &b));
  Fut fb(b);
  EXPECT_EQ(0, Complete(a));
  EXPECT_EQ(0, Complete(b));
  proa_future *c = reinterpret_cast<proa_future *>(&c);
  EXPECT_EQ(PROA_EINVAL, proa_sleep(loop, std::nan(""), &c));
  EXPECT_EQ(nullptr, c);
}

TEST_F(TaskSleepTest, CancellingTheSleepWakesTheAwaiter) {
  proa_future *s = nullptr;
  ASSERT_EQ(0, proa_sleep(loop, 30, &s));
  Fut sleep(s);
  int rc = 1;
  Fut t(SpawnV([&] { rc = proa_await(s, nullptr); }));
  RunIterations(loop, 2);
  ASSERT_EQ(1, rc);
  EXPECT_TRUE(proa_future_cancel(s, nullptr));
  EXPECT_TRUE(proa_future_cancelled(s));
  EXPECT_EQ(0, Complete(t.get(), nullptr, 5.0));
  EXPECT_EQ(PROA_ECANCELED, rc);
  EXPECT_FALSE(proa_future_cancelled(t.get()))
      << "the task itself was not cancelled";
}

// ---- gather ----

class TaskGather : public TaskFixture {};

TEST_F(TaskGather, AllResults) {
  static int values[3] = {1, 2, 3};
  std::vector<Fut> tasks;
  for (int i = 0; i < 3; i++)
    tasks.emplace_back(Spawn([this, i](void **r) {
      EXPECT_EQ(0, TaskSleep(loop, 0.001 * (3 - i)));
      *r = &values[i];
      return 0;
    }));
  proa_future *list[3] = {tasks[0].get(), tasks[1].get(), tasks[2].get()};
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_gather(loop, list, 3, &g));
  Fut gather(g);
  void *v = &v;
  EXPECT_EQ(0, Complete(g, &v));
  EXPECT_EQ(nullptr, v);
  for (int i = 0; i < 3; i++) {
    EXPECT_TRUE(proa_future_done(list[i]));
    EXPECT_EQ(0, proa_future_result(list[i], &v));
    EXPECT_EQ(&values[i], v);
  }
}

TEST_F(TaskGather, FirstErrorAndTheOthersGoOn) {
  Fut g1 = NewFuture(loop), g2 = NewFuture(loop), g3 = NewFuture(loop);
  static int value = 4;
  Fut t1(Spawn([&](void **) {
    EXPECT_EQ(0, proa_await(g1.get(), nullptr));
    return static_cast<int>(PROA_EIO);
  }));
  Fut t2(Spawn([&](void **) {
    EXPECT_EQ(0, proa_await(g2.get(), nullptr));
    return static_cast<int>(PROA_ECONNRESET);
  }));
  Fut t3(Spawn([&](void **r) {
    EXPECT_EQ(0, proa_await(g3.get(), nullptr));
    *r = &value;
    return 0;
  }));
  proa_future *list[3] = {t1.get(), t2.get(), t3.get()};
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_gather(loop, list, 3, &g));
  Fut gather(g);
  RunIterations(loop, 2);
  ASSERT_EQ(0, proa_future_set_result(g1.get(), nullptr, nullptr));
  EXPECT_EQ(PROA_EIO, Complete(g));
  EXPECT_FALSE(proa_future_done(t2.get()));
  EXPECT_FALSE(proa_future_done(t3.get()));
  ASSERT_EQ(0, proa_future_set_result(g2.get(), nullptr, nullptr));
  ASSERT_EQ(0, proa_future_set_result(g3.get(), nullptr, nullptr));
  void *v = nullptr;
  EXPECT_EQ(0, Complete(t3.get(), &v));
  EXPECT_EQ(&value, v);
  EXPECT_EQ(PROA_ECONNRESET, Complete(t2.get()));
  EXPECT_FALSE(proa_future_cancelled(t2.get()));
  EXPECT_EQ(PROA_EIO, proa_future_error(g)) << "the gather's error changed";
}

TEST_F(TaskGather, CancellingTheGatherCancelsTheChildren) {
  Fut gate = NewFuture(loop), plain = NewFuture(loop);
  int child_rc = 1;
  Fut child(SpawnV([&] { child_rc = proa_await(gate.get(), nullptr); }));
  proa_future *list[2] = {child.get(), plain.get()};
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_gather(loop, list, 2, &g));
  Fut gather(g);
  RunIterations(loop, 2);
  EXPECT_TRUE(proa_future_cancel(g, nullptr));
  EXPECT_EQ(PROA_ECANCELED, Complete(g));
  EXPECT_TRUE(proa_future_cancelled(g));
  EXPECT_EQ(PROA_ECANCELED, Complete(child.get()));
  EXPECT_TRUE(proa_future_cancelled(child.get()));
  EXPECT_EQ(PROA_ECANCELED, child_rc);
  EXPECT_TRUE(proa_future_cancelled(plain.get()));
  EXPECT_TRUE(proa_future_cancelled(gate.get())) << "the child's await";
}

TEST_F(TaskGather, EmptyGatherCompletes) {
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_gather(loop, nullptr, 0, &g));
  Fut gather(g);
  EXPECT_EQ(0, Complete(g));
  EXPECT_FALSE(proa_future_cancelled(g));
}

TEST_F(TaskGather, AwaitedFromATask) {
  int rc = 1;
  Fut t(SpawnV([&] {
    proa_future *s[2] = {nullptr, nullptr};
    ASSERT_EQ(0, proa_sleep(loop, 0.002, &s[0]));
    ASSERT_EQ(0, proa_sleep(loop, 0.001, &s[1]));
    proa_future *g = nullptr;
    EXPECT_EQ(0, proa_gather(loop, s, 2, &g));
    rc = proa_await(g, nullptr);
    EXPECT_TRUE(proa_future_done(s[0]) && proa_future_done(s[1]));
    proa_future_unref(g);
    proa_future_unref(s[0]);
    proa_future_unref(s[1]);
  }));
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(0, rc);
}

// ---- wait_for ----

class TaskWaitFor : public TaskFixture {};

TEST_F(TaskWaitFor, CompletesWithTheInnerResult) {
  g_frees = 0;
  static int value = 21;
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.free_result = CountFree;
  Fut inner(Spawn(
      [this](void **r) {
        EXPECT_EQ(0, TaskSleep(loop, 0.001));
        *r = &value;
        return 0;
      },
      &o));
  proa_future *w = nullptr;
  ASSERT_EQ(0, proa_wait_for(loop, inner.get(), 10.0, &w));
  Fut wait(w);
  void *v = nullptr;
  EXPECT_EQ(0, Complete(w, &v));
  EXPECT_EQ(&value, v);
  EXPECT_FALSE(proa_future_cancelled(inner.get()));
  inner.reset();
  wait.reset();
  EXPECT_EQ(1, g_frees);
}

TEST_F(TaskWaitFor, InnerErrorPassesThrough) {
  Fut inner(Spawn([](void **) { return static_cast<int>(PROA_EIO); }));
  proa_future *w = nullptr;
  ASSERT_EQ(0, proa_wait_for(loop, inner.get(), 10.0, &w));
  Fut wait(w);
  EXPECT_EQ(PROA_EIO, Complete(w));
}

TEST_F(TaskWaitFor, TimeoutCancelsTheInnerTask) {
  Fut gate = NewFuture(loop);
  int inner_rc = 1, cleanup_rc = 1;
  Fut inner(SpawnV([&] {
    inner_rc = proa_await(gate.get(), nullptr);
    cleanup_rc = TaskSleep(loop, 0); // the task may still await to clean up
  }));
  proa_future *w = nullptr;
  double t0 = proa_loop_time(loop);
  ASSERT_EQ(0, proa_wait_for(loop, inner.get(), 0.05, &w));
  Fut wait(w);
  int rc = 1;
  double took = 0;
  Fut outer(SpawnV([&] {
    rc = proa_await(w, nullptr);
    took = proa_loop_time(loop) - t0;
  }));
  EXPECT_EQ(0, Complete(outer.get()));
  EXPECT_EQ(PROA_ETIMEDOUT, rc);
  EXPECT_GE(took, 0.05);
  EXPECT_EQ(PROA_ECANCELED, Complete(inner.get()));
  EXPECT_TRUE(proa_future_cancelled(inner.get()));
  EXPECT_EQ(PROA_ECANCELED, inner_rc);
  EXPECT_EQ(0, cleanup_rc);
  EXPECT_TRUE(proa_future_cancelled(gate.get())) << "the inner task's await";
}

// ---- the task factory ----

class TaskFactory : public TaskFixture {};

struct FactoryLog {
  int calls = 0;
  int decorated_runs = 0;
  proa_task_fn fn = nullptr;
  void *arg = nullptr;
  int error = 0;
};

struct Decorated {
  FactoryLog *log;
  proa_task_fn fn;
  void *arg;
};

int RunDecorated(void *arg, void **result) {
  Decorated d = *static_cast<Decorated *>(arg);
  delete static_cast<Decorated *>(arg);
  d.log->decorated_runs++;
  return d.fn(d.arg, result);
}

int Factory(proa_loop *loop, proa_task_fn fn, void *arg,
            const proa_task_options *opts, void *factory_arg,
            proa_future **out) {
  FactoryLog *log = static_cast<FactoryLog *>(factory_arg);
  log->calls++;
  log->fn = fn;
  log->arg = arg;
  if (log->error != 0)
    return log->error;
  Decorated *d = new Decorated{log, fn, arg};
  int rc = proa_task_new(loop, RunDecorated, d, opts, out);
  if (rc != 0)
    delete d;
  return rc;
}

TEST_F(TaskFactory, UsedByCreateTaskAndNullRestoresTheDefault) {
  void *arg = &arg;
  EXPECT_EQ(nullptr, proa_loop_get_task_factory(loop, &arg));
  EXPECT_EQ(nullptr, arg);
  FactoryLog log;
  ASSERT_EQ(0, proa_loop_set_task_factory(loop, Factory, &log));
  EXPECT_EQ(Factory, proa_loop_get_task_factory(loop, &arg));
  EXPECT_EQ(&log, arg);

  int runs = 0;
  Fut t(SpawnV([&] { runs++; }));
  ASSERT_TRUE(t);
  EXPECT_EQ(1, log.calls);
  EXPECT_EQ(RunBody, log.fn) << "the factory did not get the task's function";
  EXPECT_TRUE(proa_future_is_task(t.get()));
  EXPECT_EQ(0, Complete(t.get()));
  EXPECT_EQ(1, runs);
  EXPECT_EQ(1, log.decorated_runs);

  ASSERT_EQ(0, proa_loop_set_task_factory(loop, nullptr, &log));
  EXPECT_EQ(nullptr, proa_loop_get_task_factory(loop, &arg));
  EXPECT_EQ(nullptr, arg);
  Fut t2(SpawnV([&] { runs++; }));
  EXPECT_EQ(0, Complete(t2.get()));
  EXPECT_EQ(2, runs);
  EXPECT_EQ(1, log.calls) << "the factory was used after it was removed";
}

TEST_F(TaskFactory, TaskNewBypassesTheFactory) {
  FactoryLog log;
  ASSERT_EQ(0, proa_loop_set_task_factory(loop, Factory, &log));
  static int runs;
  runs = 0;
  proa_future *t = nullptr;
  ASSERT_EQ(0, proa_task_new(
                   loop,
                   [](void *, void **) {
                     runs++;
                     return 0;
                   },
                   nullptr, nullptr, &t));
  Fut task(t);
  EXPECT_EQ(0, Complete(t));
  EXPECT_EQ(1, runs);
  EXPECT_EQ(0, log.calls);
}

TEST_F(TaskFactory, FactoryErrorIsReturned) {
  FactoryLog log;
  log.error = PROA_ENOMEM;
  ASSERT_EQ(0, proa_loop_set_task_factory(loop, Factory, &log));
  static Body body = [](void **) { return 0; };
  proa_future *t = nullptr;
  EXPECT_EQ(PROA_ENOMEM, proa_create_task(loop, RunBody, &body, nullptr, &t));
  EXPECT_EQ(1, log.calls);
  EXPECT_EQ(nullptr, t);
}

// ---- reports: pending tasks at close, errors nobody retrieved ----

int AwaitArg(void *arg, void **) {
  return proa_await(static_cast<proa_future *>(arg), nullptr);
}

TEST(TaskDebug, PendingTaskAtCloseIsReportedInDebugMode) {
  proa_test::LogCapture logs;
  proa_loop *lp = nullptr;
  ASSERT_EQ(0, proa_loop_new(&lp));
  logs.Attach(lp);
  proa_loop_set_debug(lp, true);
  proa_future *gate = nullptr, *started = nullptr, *unstarted = nullptr;
  ASSERT_EQ(0, proa_future_new(lp, &gate));
  char name[32];
  std::snprintf(name, sizeof name, "%s", "worker-7");
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.name = name;
  ASSERT_EQ(0, proa_create_task(lp, AwaitArg, gate, &o, &started));
  std::memset(name, 'x', sizeof name - 1); // the name was copied
  ASSERT_EQ(0, RunOnce(lp));
  ASSERT_EQ(0, RunOnce(lp));
  EXPECT_FALSE(proa_future_done(started));
  o.name = "never-started";
  ASSERT_EQ(0, proa_create_task(lp, AwaitArg, gate, &o, &unstarted));
  EXPECT_EQ(0u, logs.Count(0, "destroyed but it is pending"));
  ASSERT_EQ(0, proa_loop_close(lp));
  EXPECT_EQ(2u, logs.Count(0, "destroyed but it is pending")) << logs.Dump();
  EXPECT_EQ(1u, logs.Count(0, "worker-7")) << logs.Dump();
  EXPECT_EQ(1u, logs.Count(0, "never-started")) << logs.Dump();
  proa_future_unref(started);
  proa_future_unref(unstarted);
  proa_future_unref(gate);
  EXPECT_EQ(0, proa_loop_free(lp));
}

// In every mode, not only in debug mode: each pending task destroyed by
// the close reaches the exception handler, with the task and its name.
TEST(TaskDestroyed, PendingTaskAtCloseReachesTheExceptionHandler) {
  proa_test::ExceptionCapture exc;
  proa_loop *lp = nullptr;
  ASSERT_EQ(0, proa_loop_new(&lp));
  proa_loop_set_debug(lp, false);
  exc.Attach(lp);
  proa_future *gate = nullptr, *started = nullptr, *unstarted = nullptr;
  ASSERT_EQ(0, proa_future_new(lp, &gate));
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.name = "worker-7";
  ASSERT_EQ(0, proa_create_task(lp, AwaitArg, gate, &o, &started));
  ASSERT_EQ(0, RunOnce(lp));
  ASSERT_EQ(0, RunOnce(lp));
  ASSERT_FALSE(proa_future_done(started));
  ASSERT_EQ(0, proa_create_task(lp, AwaitArg, gate, nullptr, &unstarted));
  EXPECT_EQ(0u, exc.Calls().size());
  ASSERT_EQ(0, proa_loop_close(lp));
  std::vector<proa_test::CapturedContext> calls = exc.Calls();
  ASSERT_EQ(2u, calls.size());
  int seen_started = 0, seen_unstarted = 0;
  for (const proa_test::CapturedContext &c : calls) {
    EXPECT_EQ("Task was destroyed but it is pending", c.message);
    EXPECT_EQ(0, c.error);
    if (c.future == started) {
      seen_started++;
      EXPECT_NE(std::string::npos, c.error_message.find("worker-7"));
    }
    if (c.future == unstarted)
      seen_unstarted++;
  }
  EXPECT_EQ(1, seen_started);
  EXPECT_EQ(1, seen_unstarted);
  proa_future_unref(started);
  proa_future_unref(unstarted);
  proa_future_unref(gate);
  EXPECT_EQ(0, proa_loop_free(lp));
}

TEST(TaskOtherLoop, AwaitingAFutureOfAnotherLoopFailsAtOnce) {
  proa_test::Loop a, b;
  ASSERT_TRUE(a.get() && b.get());
  proa_future *done = nullptr, *pending = nullptr, *t = nullptr;
  ASSERT_EQ(0, proa_future_new(b, &done));
  ASSERT_EQ(0, proa_future_new(b, &pending));
  static int value = 5;
  ASSERT_EQ(0, proa_future_set_result(done, &value, nullptr));
  struct Args {
    proa_future *done, *pending;
    int rc_done = 1, rc_pending = 1;
    void *v = &value;
  } args{done, pending};
  ASSERT_EQ(0, proa_create_task(
                   a,
                   [](void *arg, void **) {
                     Args *x = static_cast<Args *>(arg);
                     x->rc_done = proa_await(x->done, &x->v);
                     x->rc_pending = proa_await(x->pending, nullptr);
                     return 0;
                   },
                   &args, nullptr, &t));
  ASSERT_EQ(0, RunOnce(a));
  EXPECT_TRUE(proa_future_done(t)) << "the await of a foreign future waited";
  EXPECT_EQ(PROA_EINVAL, args.rc_done);
  EXPECT_EQ(nullptr, args.v);
  EXPECT_EQ(PROA_EINVAL, args.rc_pending);
  EXPECT_EQ(0, proa_future_remove_done_callback(pending, nullptr, nullptr));
  proa_future_unref(t);
  proa_future_unref(done);
  proa_future_unref(pending);
}

struct TaskReport {
  int calls = 0;
  int error = 0;
  bool is_task = false;
  std::string message;
};

int RecordTaskReport(proa_loop *, const proa_context *ctx, void *arg) {
  TaskReport *r = static_cast<TaskReport *>(arg);
  r->calls++;
  r->error = ctx->error;
  r->is_task = proa_future_is_task(ctx->future);
  r->message = ctx->message != nullptr ? ctx->message : "";
  return 0;
}

TEST_F(Task, ErrorNobodyRetrievedIsReportedWhenFreed) {
  TaskReport report;
  ASSERT_EQ(0,
            proa_loop_set_exception_handler(loop, RecordTaskReport, &report));
  DoneLog log;
  {
    Fut t(Spawn([](void **) { return static_cast<int>(PROA_EIO); }));
    ASSERT_EQ(0, proa_future_add_done_callback(t.get(), DoneA, &log));
  } // the task keeps itself alive until it ends
  EXPECT_TRUE(RunUntil(loop, [&] { return log.calls == 1; }));
  RunIterations(loop, 2);
  EXPECT_EQ(1, report.calls);
  EXPECT_EQ(PROA_EIO, report.error);
  EXPECT_TRUE(report.is_task);

  // Retrieved: nothing to report.
  Fut t2(Spawn([](void **) { return static_cast<int>(PROA_EIO); }));
  EXPECT_EQ(PROA_EIO, Complete(t2.get()));
  t2.reset();
  RunIterations(loop, 2);
  EXPECT_EQ(1, report.calls);
}

// ---- 10,000 concurrent echo round trips ----

#ifndef _WIN32
size_t OpenDescriptors() {
  size_t n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr)
    d = opendir("/dev/fd");
  if (d == nullptr)
    return 64; // a guess
  while (readdir(d) != nullptr)
    n++;
  closedir(d);
  return n; // counts ".", ".." and the directory's own descriptor: a margin
}
#endif

#ifdef _WIN32
// Under Wine every socket is also a Unix descriptor, in this process and in
// the wineserver; the Unix limits are readable through drive Z:. 0 when
// unknown (real Windows has no such limit).
size_t WineDescriptorLimit() {
  if (!proa_test_is_wine())
    return 0;
  FILE *f = std::fopen("Z:\\proc\\self\\limits", "r");
  if (f == nullptr)
    return 0;
  char line[256];
  size_t limit = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, "Max open files", 14) == 0) {
      limit = static_cast<size_t>(std::strtoull(line + 14, nullptr, 10));
      break;
    }
  std::fclose(f);
  return limit;
}
#endif

// How many connections (two descriptors each, in one process) fit, after
// raising RLIMIT_NOFILE toward its hard limit; at most `want`. *why says
// what limits it.
size_t ConnectionBudget(size_t want, std::string *why) {
#ifdef _WIN32
  size_t limit = WineDescriptorLimit();
  if (limit == 0)
    return want;
  // One wineserver serves every Wine process of the prefix, and the test
  // runner may run two of these tests at once (two sockets a connection
  // each), beside others that open thousands of sockets too: a third of
  // the room goes to each of the two, a third to everything else.
  size_t fit = limit > 512 ? (limit - 512) / 6 : 0;
  *why = "under Wine each socket takes a descriptor in this process and in "
         "the shared wineserver, whose RLIMIT_NOFILE is " +
         std::to_string(limit) + " (room is left for other test processes)";
  return std::min(want, fit);
#else
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return want;
  rlim_t need = static_cast<rlim_t>(want * 2 + 256);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rlimit raised = rl;
    raised.rlim_cur =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      rl = raised;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
    return want;
  size_t reserve = OpenDescriptors() + 128;
  size_t fit = rl.rlim_cur > reserve ? (rl.rlim_cur - reserve) / 2 : 0;
  *why = "RLIMIT_NOFILE is " + std::to_string(rl.rlim_cur) + " (hard limit " +
         (rl.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                       : std::to_string(rl.rlim_max)) +
         ")";
  return std::min(want, fit);
#endif
}

std::string EchoMessage(size_t i) {
  std::string m = "echo #" + std::to_string(i) + ":";
  while (m.size() < 48)
    m += static_cast<char>('a' + (i + m.size()) % 26);
  return m;
}

// Keeps at most `max` connections between connect and accept, so that the
// kernel's accept queue (somaxconn) never overflows: a dropped SYN costs a
// retransmission a second later. Slots pass in FIFO order.
struct Pacer {
  proa_loop *loop = nullptr;
  size_t in_flight = 0, max = 512;
  std::deque<proa_future *> waiters;

  // Inside a task: waits for a slot.
  int Acquire() {
    if (in_flight < max) {
      in_flight++;
      return 0;
    }
    proa_future *f = nullptr;
    int rc = proa_future_new(loop, &f);
    if (rc != 0)
      return rc;
    waiters.push_back(f);
    rc = proa_await(f, nullptr); // the slot is handed over
    proa_future_unref(f);
    return rc;
  }
  void Release() {
    if (waiters.empty()) {
      in_flight--;
      return;
    }
    proa_future *f = waiters.front();
    waiters.pop_front();
    proa_future_set_result(f, nullptr, nullptr);
  }
};

// The state of the echo test; the fixture owns it, so that tasks still
// running after a failed assertion never touch a dead stack frame.
struct EchoState {
  size_t n = 0;
  size_t len = 0;
  std::vector<int> ports;
  Pacer pacer;
  size_t accepted = 0, echoed = 0, served = 0;
  size_t ok = 0, mismatched = 0, arrived = 0;
  int first_error = 0;
  std::string first_step;
  Fut all_arrived; // set once every client has done its round trip

  int Fail(const char *step, int rc) {
    if (first_error == 0) {
      first_error = rc;
      first_step = step;
    }
    return rc;
  }
  void Arrive() {
    if (++arrived == n)
      proa_future_set_result(all_arrived.get(), nullptr, nullptr);
  }
};

class TaskEcho : public TaskFixture {
protected:
  // The server side: echo one message, then hold the connection until the
  // client closes it.
  static int Serve(EchoState *st, proa_stream *s) {
    st->accepted++;
    st->pacer.Release();
    std::string msg;
    int rc = ReadExactly(s, st->len, &msg);
    if (rc == 0)
      rc = WriteDrain(s, msg);
    if (rc != 0)
      return st->Fail("server", rc);
    st->echoed++;
    rc = Read(s, 1, &msg);
    if (rc == 0 && !msg.empty())
      rc = PROA_EPROTO;
    if (rc != 0)
      return st->Fail("server eof", rc);
    st->served++;
    return 0;
  }

  // The client side: connect, write, readexactly, compare; once every
  // client got its echo, close.
  int Client(size_t i) {
    EchoState *st = &echo;
    int rc = st->pacer.Acquire();
    proa_future *f = nullptr;
    if (rc == 0)
      rc = proa_open_connection(
          loop, "127.0.0.1", st->ports[i % st->ports.size()], nullptr, 0, &f);
    void *v = nullptr;
    if (rc == 0)
      rc = proa_await(f, &v);
    proa_stream *s =
        rc == 0 ? proa_stream_ref(static_cast<proa_stream *>(v)) : nullptr;
    proa_future_unref(f);
    if (rc != 0) {
      st->pacer.Release(); // never accepted: give the slot back
      st->Arrive();
      return st->Fail("connect", rc);
    }
    std::string msg = EchoMessage(i), back;
    rc = proa_stream_write(s, msg.data(), msg.size());
    if (rc == 0)
      rc = ReadExactly(s, msg.size(), &back);
    if (rc == 0 && back != msg)
      st->mismatched++;
    st->Arrive();
    if (rc == 0)
      rc = proa_await(st->all_arrived.get(), nullptr);
    int closed = CloseWait(s);
    proa_stream_unref(s);
    if (rc != 0)
      return st->Fail("write/readexactly", rc);
    if (closed != 0)
      return st->Fail("wait_closed", closed);
    st->ok += back == msg;
    return 0;
  }

  EchoState echo;
};

TEST_F(TaskEcho, TenThousandConcurrentRoundTrips) {
  const size_t kWant = 10000;
  const int kListeners = 16;
  std::string why;
  size_t n = ConnectionBudget(kWant, &why);
  ASSERT_GE(n, 100u) << "too few descriptors for this test: " << why;
  if (n < kWant)
    std::printf("[ TaskEcho ] running %zu concurrent connections, not %zu: "
                "%s\n",
                n, kWant, why.c_str());
  else
    std::printf("[ TaskEcho ] running %zu concurrent connections\n", n);
  RecordProperty("connections", static_cast<int>(n));

  EchoState *st = &echo;
  st->n = n;
  st->len = EchoMessage(0).size();
  st->pacer.loop = loop;
  st->all_arrived = NewFuture(loop);
  // Several listeners spread the accepting: the Unix engine accepts in
  // bounded rounds per poll, and the poll poller is O(descriptors) per
  // iteration, so one listener alone makes accepting them all slower.
  proa_server_options so = PROA_SERVER_OPTIONS_INIT;
  so.backlog = 4096;
  for (int k = 0; k < kListeners; k++) {
    st->ports.push_back(
        StartServer([st](proa_stream *s) { return Serve(st, s); }, 0, &so));
    ASSERT_GT(st->ports.back(), 0);
  }

  std::vector<Fut> tasks;
  tasks.reserve(n);
  double t0 = proa_loop_time(loop);
  for (size_t i = 0; i < n; i++) {
    tasks.emplace_back(Spawn([this, i](void **) { return Client(i); }));
    ASSERT_TRUE(tasks.back()) << "task " << i;
  }
  std::vector<proa_future *> list;
  for (auto &t : tasks)
    list.push_back(t.get());
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_gather(loop, list.data(), list.size(), &g));
  Fut gather(g);
  int rc = Complete(g, nullptr, 50.0);
  EXPECT_EQ(0, rc) << proa_err_name(rc) << "; first failure: " << st->first_step
                   << ": " << proa_err_name(st->first_error);
  EXPECT_EQ(n, st->ok);
  EXPECT_EQ(0u, st->mismatched);
  EXPECT_EQ(n, st->accepted);
  EXPECT_EQ(n, st->echoed);
  EXPECT_TRUE(Until([st] { return st->served == st->n; }))
      << st->served << " of " << n << " handlers saw the client close";
  std::printf("[ TaskEcho ] %zu round trips in %.2f s (%s)\n", st->ok,
              proa_loop_time(loop) - t0, proa_loop_backend(loop));
  if (rc != 0) { // let the rest end before the fixture goes
    proa_future_set_result(st->all_arrived.get(), nullptr, nullptr);
    for (auto &t : tasks)
      proa_future_cancel(t.get(), nullptr);
    Until([&] {
      for (auto &t : tasks)
        if (!proa_future_done(t.get()))
          return false;
      return true;
    });
  }
}

} // namespace
