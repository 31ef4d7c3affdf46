// Tests of signal handlers: POSIX signals on Unix, console control events on
// Windows. Each handler runs as an ordinary callback on the loop thread.
#include "proa_test.h"

#ifndef _WIN32
#include <cerrno>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>
#endif

using namespace proa_test;

namespace {

using Signal = LoopTest;

struct SigRecord {
  proa_loop *loop;
  int calls = 0;
  std::thread::id thread;
  bool stop = true;
  const bool *raise_returned = nullptr; // checked when the callback runs
  bool ran_before_raise_returned = false;
};

void OnSignal(void *arg) {
  SigRecord *r = static_cast<SigRecord *>(arg);
  ++r->calls;
  r->thread = std::this_thread::get_id();
  if (r->raise_returned != nullptr && !*r->raise_returned)
    r->ran_before_raise_returned = true;
  if (r->stop)
    proa_loop_stop(r->loop);
}

TEST_F(Signal, NullCallbackIsInvalid) {
  EXPECT_EQ(PROA_EINVAL,
            proa_loop_add_signal_handler(loop, PROA_SIGINT, nullptr, nullptr));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, PROA_SIGINT));
}

TEST_F(Signal, AddAfterCloseFails) {
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(PROA_ECLOSED,
            proa_loop_add_signal_handler(loop, PROA_SIGINT, OnSignal, &r));
}

#ifndef _WIN32

bool IsDefault(int sig) {
  struct sigaction old;
  EXPECT_EQ(0, sigaction(sig, nullptr, &old));
  return (old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_DFL;
}

bool IsCaught(int sig) {
  struct sigaction old;
  EXPECT_EQ(0, sigaction(sig, nullptr, &old));
  if (old.sa_flags & SA_SIGINFO)
    return old.sa_sigaction != nullptr;
  return old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
}

struct Raiser {
  int sig;
  bool returned = false;
  int rc = -1;
};

void RaiseFromCallback(void *arg) {
  Raiser *r = static_cast<Raiser *>(arg);
  r->rc = raise(r->sig);
  r->returned = true;
}

void KillFromCallback(void *arg) {
  Raiser *r = static_cast<Raiser *>(arg);
  r->rc = kill(getpid(), r->sig);
  r->returned = true;
}

TEST_F(Signal, RaisedSignalRunsCallbackOnLoopThread) {
  Raiser raiser{SIGUSR1};
  SigRecord r{loop};
  r.raise_returned = &raiser.returned;
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  EXPECT_TRUE(IsCaught(SIGUSR1));
  ASSERT_EQ(0, proa_call_soon(loop, RaiseFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, raiser.rc);
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
  // raise() runs the OS handler before it returns; the callback must come
  // later, from the loop, not from inside the OS handler.
  EXPECT_FALSE(r.ran_before_raise_returned);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, KillFromCallback) {
  Raiser raiser{SIGUSR2};
  SigRecord r{loop};
  r.raise_returned = &raiser.returned;
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR2, OnSignal, &r));
  ASSERT_EQ(0, proa_call_soon(loop, KillFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, raiser.rc);
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
  EXPECT_FALSE(r.ran_before_raise_returned);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR2));
}

TEST_F(Signal, HandlerStaysInstalledAcrossDeliveries) {
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  for (int round = 1; round <= 3; ++round) {
    Raiser raiser{SIGUSR1};
    ASSERT_EQ(0, proa_call_soon(loop, RaiseFromCallback, &raiser, nullptr));
    ASSERT_EQ(0, RunWithWatchdog(loop));
    EXPECT_EQ(round, r.calls);
  }
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, RepeatedDeliveriesMayCoalesce) {
  SigRecord r{loop};
  r.stop = false;
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *) {
                     for (int i = 0; i < 3; ++i)
                       raise(SIGUSR1);
                   },
                   nullptr, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0.05, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_GE(r.calls, 1);
  EXPECT_LE(r.calls, 3);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, DeliveredWhileNotRunning) {
  // The signal arrives between runs; the callback runs on the next run.
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  ASSERT_EQ(0, raise(SIGUSR1));
  EXPECT_EQ(0, r.calls);
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, ManyPendingSignalsNeitherBlockNorClobberErrno) {
  // Far more deliveries than a self-pipe holds while the loop is not
  // running: the OS handler must not block on a full pipe, must keep errno,
  // and the callback still runs (at least once) on the next run.
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  int changed = 0;
  for (int i = 0; i < 100000; ++i) {
    errno = 4242;
    raise(SIGUSR1);
    if (errno != 4242)
      ++changed;
  }
  EXPECT_EQ(0, changed) << "the signal handler clobbered errno";
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_GE(r.calls, 1);
  // Later deliveries still work after the backlog.
  r.calls = 0;
  Raiser raiser{SIGUSR1};
  ASSERT_EQ(0,
            proa_call_later(loop, 0.01, RaiseFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_GE(r.calls, 1);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, InvalidSignals) {
  SigRecord r{loop};
  const int bad[] = {SIGKILL, SIGSTOP, 0, -1, 100000};
  for (int sig : bad)
    EXPECT_EQ(PROA_EINVAL,
              proa_loop_add_signal_handler(loop, sig, OnSignal, &r))
        << "signal " << sig;
  EXPECT_EQ(PROA_EINVAL,
            proa_loop_add_signal_handler(loop, SIGUSR1, nullptr, nullptr));
  EXPECT_TRUE(IsDefault(SIGUSR1));
  EXPECT_TRUE(IsDefault(SIGKILL));
}

TEST_F(Signal, RemoveOutOfRange) {
  EXPECT_EQ(PROA_EINVAL, proa_loop_remove_signal_handler(loop, 0));
  EXPECT_EQ(PROA_EINVAL, proa_loop_remove_signal_handler(loop, -1));
  EXPECT_EQ(PROA_EINVAL, proa_loop_remove_signal_handler(loop, 100000));
}

TEST_F(Signal, RemoveReturnsOneThenZeroAndRestoresDefault) {
  SigRecord r{loop};
  EXPECT_TRUE(IsDefault(SIGUSR1));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, SIGUSR1));
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  EXPECT_TRUE(IsCaught(SIGUSR1));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
  EXPECT_TRUE(IsDefault(SIGUSR1));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, SIGUSR1));
  EXPECT_TRUE(IsDefault(SIGUSR1));
}

TEST_F(Signal, RemoveRestoresDefaultEvenIfIgnoredBefore) {
  struct sigaction ign, saved;
  std::memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(0, sigaction(SIGUSR2, &ign, &saved));
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR2, OnSignal, &r));
  EXPECT_TRUE(IsCaught(SIGUSR2));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR2));
  EXPECT_TRUE(IsDefault(SIGUSR2));
  sigaction(SIGUSR2, &saved, nullptr);
}

TEST_F(Signal, AddingAgainReplacesTheHandler) {
  SigRecord first{loop}, second{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &first));
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &second));
  Raiser raiser{SIGUSR1};
  ASSERT_EQ(0, proa_call_soon(loop, RaiseFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(0, first.calls);
  EXPECT_EQ(1, second.calls);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

TEST_F(Signal, TwoLoopsCannotShareASignal) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  SigRecord r{loop}, r2{other.get()};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  EXPECT_EQ(PROA_EBUSY,
            proa_loop_add_signal_handler(other, SIGUSR1, OnSignal, &r2));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(other, SIGUSR1));
  // The failed attempt did not disturb the owner.
  EXPECT_TRUE(IsCaught(SIGUSR1));
  Raiser raiser{SIGUSR1};
  ASSERT_EQ(0, proa_call_soon(loop, RaiseFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(0, r2.calls);
  // Once released, the other loop may take it.
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, SIGUSR1, OnSignal, &r2));
  raiser = Raiser{SIGUSR1};
  ASSERT_EQ(0, proa_call_soon(other, RaiseFromCallback, &raiser, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(other));
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(1, r2.calls);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, SIGUSR1));
}

TEST_F(Signal, DifferentSignalsOnDifferentLoops) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  SigRecord r{loop}, r2{other.get()};
  EXPECT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, SIGUSR2, OnSignal, &r2));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, SIGUSR2));
}

TEST_F(Signal, CloseRemovesHandlers) {
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR2, OnSignal, &r));
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_TRUE(IsDefault(SIGUSR1));
  EXPECT_TRUE(IsDefault(SIGUSR2));
  EXPECT_EQ(PROA_ECLOSED,
            proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  // Released: another loop can take them.
  Loop other;
  ASSERT_EQ(0, other.rc());
  SigRecord r2{other.get()};
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, SIGUSR1, OnSignal, &r2));
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, SIGUSR2, OnSignal, &r2));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, SIGUSR1));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, SIGUSR2));
  EXPECT_EQ(0, r.calls);
}

TEST(SignalLifetime, FreeRemovesHandlers) {
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new(&loop));
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  proa_loop_unref(loop); // the last reference: closes, frees
  EXPECT_TRUE(IsDefault(SIGUSR1));
  Loop other;
  ASSERT_EQ(0, other.rc());
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, SIGUSR1, OnSignal, &r));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, SIGUSR1));
}

TEST_F(Signal, SignalFromAnotherThreadWakesSleepingLoop) {
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR2, OnSignal, &r));
  std::atomic<int> kill_rc{-1};
  std::thread t([&] {
    SleepMs(50);
    kill_rc = kill(getpid(), SIGUSR2);
  });
  double t0 = WallSeconds();
  bool fired = false;
  int rc = RunWithWatchdog(loop, 30, &fired);
  double elapsed = WallSeconds() - t0;
  t.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(0, kill_rc.load());
  EXPECT_FALSE(fired) << "the signal did not wake the loop";
  EXPECT_LT(elapsed, 10.0);
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR2));
}

TEST_F(Signal, SignalToLoopThreadWakesSleepingLoop) {
  // Delivered to the very thread that sleeps in the poller (EINTR path).
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, SIGUSR1, OnSignal, &r));
  pthread_t self = pthread_self();
  std::atomic<int> kill_rc{-1};
  std::thread t([&] {
    SleepMs(50);
    kill_rc = pthread_kill(self, SIGUSR1);
  });
  bool fired = false;
  int rc = RunWithWatchdog(loop, 30, &fired);
  t.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(0, kill_rc.load());
  EXPECT_FALSE(fired) << "the signal did not wake the loop";
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, SIGUSR1));
}

#else // _WIN32

TEST_F(Signal, ConsoleEventsAddAndRemove) {
  SigRecord r{loop};
  const int sigs[] = {PROA_SIGINT, PROA_SIGBREAK, PROA_SIGHUP};
  for (int sig : sigs) {
    EXPECT_EQ(0, proa_loop_add_signal_handler(loop, sig, OnSignal, &r)) << sig;
    EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, sig)) << sig;
    EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, sig)) << sig;
  }
}

TEST_F(Signal, UndeliverableSignalsAreNotSupported) {
  SigRecord r{loop};
  EXPECT_EQ(PROA_ENOTSUP,
            proa_loop_add_signal_handler(loop, PROA_SIGTERM, OnSignal, &r));
  EXPECT_EQ(0, proa_loop_remove_signal_handler(loop, PROA_SIGTERM));
}

TEST_F(Signal, TwoLoopsCannotShareASignal) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  SigRecord r{loop}, r2{other.get()};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, PROA_SIGBREAK, OnSignal, &r));
  EXPECT_EQ(PROA_EBUSY,
            proa_loop_add_signal_handler(other, PROA_SIGBREAK, OnSignal, &r2));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, PROA_SIGBREAK));
  EXPECT_EQ(0,
            proa_loop_add_signal_handler(other, PROA_SIGBREAK, OnSignal, &r2));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, PROA_SIGBREAK));
}

TEST_F(Signal, CloseRemovesHandlers) {
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, PROA_SIGINT, OnSignal, &r));
  ASSERT_EQ(0, proa_loop_close(loop));
  Loop other;
  ASSERT_EQ(0, other.rc());
  EXPECT_EQ(0, proa_loop_add_signal_handler(other, PROA_SIGINT, OnSignal, &r));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(other, PROA_SIGINT));
}

struct CtrlC {
  BOOL generated = FALSE;
  DWORD error = 0;
};

// Delivers a real Ctrl-C. The test first moves this process to a console of
// its own so that the event reaches no other process (such as ctest).
TEST_F(Signal, CtrlCIsDelivered) {
  FreeConsole();
  if (!AllocConsole()) {
    DWORD err = GetLastError();
    PROA_SKIP_UNDER_WINE("AllocConsole failed, error " + std::to_string(err));
    FAIL() << "AllocConsole failed, error " << err;
  }
  SetConsoleCtrlHandler(NULL, FALSE); // make sure Ctrl-C is not ignored
  SigRecord r{loop};
  ASSERT_EQ(0, proa_loop_add_signal_handler(loop, PROA_SIGINT, OnSignal, &r));
  CtrlC c;
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     CtrlC *c = static_cast<CtrlC *>(arg);
                     c->generated = GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0);
                     if (!c->generated)
                       c->error = GetLastError();
                   },
                   &c, nullptr));
  bool fired = false;
  ASSERT_EQ(0, RunWithWatchdog(loop, 5, &fired));
  EXPECT_EQ(1, proa_loop_remove_signal_handler(loop, PROA_SIGINT));
  if (!c.generated) {
    PROA_SKIP_UNDER_WINE("GenerateConsoleCtrlEvent(CTRL_C_EVENT) failed, "
                         "error " +
                         std::to_string(c.error));
    FAIL() << "GenerateConsoleCtrlEvent failed, error " << c.error;
  }
  if (fired) {
    PROA_SKIP_UNDER_WINE("the generated Ctrl-C event was not delivered to "
                         "the console control handler");
    FAIL() << "Ctrl-C was generated but the handler did not run in 5 s";
  }
  EXPECT_GE(r.calls, 1);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
}

#endif // _WIN32

} // namespace
