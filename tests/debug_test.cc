// Tests of debug mode: how it is enabled, slow-callback reports and the
// foreign-thread checks.
#include "proa_test.h"

#include <regex>

using namespace proa_test;

namespace {

bool DebugOfNewLoop(const proa_loop_options *opts) {
  Loop loop(opts);
  EXPECT_EQ(0, loop.rc());
  if (loop.rc() != 0)
    return false;
  return proa_loop_get_debug(loop);
}

TEST(DebugMode, FromEnvironment) {
  {
    ScopedEnv env("PROA_DEBUG", nullptr);
    EXPECT_FALSE(DebugOfNewLoop(nullptr)) << "unset";
  }
  {
    ScopedEnv env("PROA_DEBUG", "1");
    EXPECT_TRUE(DebugOfNewLoop(nullptr)) << "PROA_DEBUG=1";
  }
  {
    ScopedEnv env("PROA_DEBUG", "yes");
    EXPECT_TRUE(DebugOfNewLoop(nullptr)) << "PROA_DEBUG=yes";
  }
  {
    ScopedEnv env("PROA_DEBUG", "0");
    EXPECT_FALSE(DebugOfNewLoop(nullptr)) << "PROA_DEBUG=0";
  }
#ifndef _WIN32
  {
    ScopedEnv env("PROA_DEBUG", "");
    EXPECT_FALSE(DebugOfNewLoop(nullptr)) << "PROA_DEBUG empty";
  }
#endif
  {
    ScopedEnv env("PROA_DEBUG", "1");
    proa_loop_options opts = PROA_LOOP_OPTIONS_INIT; // debug = -1: read env
    EXPECT_TRUE(DebugOfNewLoop(&opts));
  }
}

TEST(DebugMode, OptionOverridesEnvironment) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  {
    ScopedEnv env("PROA_DEBUG", "0");
    opts.debug = 1;
    EXPECT_TRUE(DebugOfNewLoop(&opts));
  }
  {
    ScopedEnv env("PROA_DEBUG", "1");
    opts.debug = 0;
    EXPECT_FALSE(DebugOfNewLoop(&opts));
  }
}

TEST(DebugMode, SetAndGet) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 0;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  EXPECT_FALSE(proa_loop_get_debug(loop));
  proa_loop_set_debug(loop, true);
  EXPECT_TRUE(proa_loop_get_debug(loop));
  proa_loop_set_debug(loop, false);
  EXPECT_FALSE(proa_loop_get_debug(loop));
}

TEST(DebugMode, SlowCallbackDuration) {
  Loop loop;
  ASSERT_EQ(0, loop.rc());
  EXPECT_DOUBLE_EQ(0.1, proa_loop_get_slow_callback_duration(loop));
  proa_loop_set_slow_callback_duration(loop, 0.01);
  EXPECT_DOUBLE_EQ(0.01, proa_loop_get_slow_callback_duration(loop));
  proa_loop_set_slow_callback_duration(loop, 2.5);
  EXPECT_DOUBLE_EQ(2.5, proa_loop_get_slow_callback_duration(loop));
}

// ---- slow callbacks ----

class SlowCallback : public ::testing::Test {
protected:
  void SetUp() override {
    proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
    opts.debug = 1;
    ASSERT_EQ(0, proa_loop_new_ex(&loop, &opts));
    log.Attach(loop);
  }
  void TearDown() override {
    if (loop != nullptr) {
      EXPECT_EQ(0, proa_loop_free(loop));
    }
  }
  // Runs one callback that sleeps `ms`; returns the warnings logged.
  std::vector<std::string> RunSleeper(int ms) {
    static int sleep_ms;
    sleep_ms = ms;
    EXPECT_EQ(0,
              proa_call_soon(
                  loop, [](void *) { SleepMs(sleep_ms); }, nullptr, nullptr));
    EXPECT_EQ(0, RunOnce(loop));
    std::vector<std::string> warnings;
    for (const LogEntry &e : log.Entries())
      if (e.level == PROA_LOG_WARNING)
        warnings.push_back(e.text);
    return warnings;
  }
  proa_loop *loop = nullptr;
  LogCapture log;
};

// True if `text` states a duration of at least `seconds`, written in
// seconds ("0.151 seconds", "0.151s") or milliseconds ("151 ms").
bool MentionsDurationAtLeast(const std::string &text, double seconds) {
  static const std::regex number(
      R"(([0-9]+(\.[0-9]+)?)\s*(ms|msec|milli|s\b|sec))");
  for (std::sregex_iterator it(text.begin(), text.end(), number), end;
       it != end; ++it) {
    double v = std::stod((*it)[1].str());
    std::string unit = (*it)[3].str();
    double secs = unit.compare(0, 1, "m") == 0 ? v / 1000.0 : v;
    // Allow rounding of the last printed digit.
    if (secs >= seconds * 0.99 && secs < 1000)
      return true;
  }
  return false;
}

TEST(SlowCallbackFormat, DurationParser) {
  EXPECT_TRUE(MentionsDurationAtLeast("took 0.151 seconds", 0.15));
  EXPECT_TRUE(MentionsDurationAtLeast("took 151 ms", 0.15));
  EXPECT_TRUE(MentionsDurationAtLeast("took 0.2s", 0.15));
  EXPECT_FALSE(MentionsDurationAtLeast("took 0.05 seconds", 0.15));
  EXPECT_FALSE(MentionsDurationAtLeast("slow callback", 0.15));
}

TEST_F(SlowCallback, DefaultThresholdIsReported) {
  std::vector<std::string> warnings = RunSleeper(150);
  ASSERT_EQ(1u, warnings.size()) << log.Dump();
  EXPECT_TRUE(MentionsDurationAtLeast(warnings[0], 0.15))
      << "no duration >= 0.15 s in: " << warnings[0];
}

TEST_F(SlowCallback, LowerThresholdIsReported) {
  proa_loop_set_slow_callback_duration(loop, 0.01);
  std::vector<std::string> warnings = RunSleeper(30);
  ASSERT_EQ(1u, warnings.size()) << log.Dump();
  EXPECT_TRUE(MentionsDurationAtLeast(warnings[0], 0.03))
      << "no duration >= 0.03 s in: " << warnings[0];
}

TEST_F(SlowCallback, HigherThresholdIsRespected) {
  proa_loop_set_slow_callback_duration(loop, 100);
  EXPECT_TRUE(RunSleeper(150).empty()) << log.Dump();
}

TEST_F(SlowCallback, NotReportedWithoutDebug) {
  proa_loop_set_debug(loop, false);
  EXPECT_TRUE(RunSleeper(150).empty()) << log.Dump();
}

TEST_F(SlowCallback, SlowTimerCallbackIsReported) {
  proa_loop_set_slow_callback_duration(loop, 0.01);
  ASSERT_EQ(0, proa_call_later(
                   loop, 0.001,
                   [](void *l) {
                     SleepMs(30);
                     proa_loop_stop(static_cast<proa_loop *>(l));
                   },
                   loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1u, log.Count(PROA_LOG_WARNING, "")) << log.Dump();
}

// ---- foreign-thread checks ----

void Noop(void *) {}

struct Foreign {
  proa_loop *loop;
  int call_soon = 1, call_later = 1, call_at = 1, future_new = 1, stop = 1,
      set_handler = 1, threadsafe = 1;
  std::thread::id loop_thread;
  int threadsafe_ran = 0;
};

void ForeignCalls(void *arg) {
  Foreign *s = static_cast<Foreign *>(arg);
  s->loop_thread = std::this_thread::get_id();
  std::thread t([s] {
    s->call_soon = proa_call_soon(s->loop, Noop, nullptr, nullptr);
    s->call_later = proa_call_later(s->loop, 0, Noop, nullptr, nullptr);
    s->call_at = proa_call_at(s->loop, 0, Noop, nullptr, nullptr);
    proa_future *f = nullptr;
    s->future_new = proa_future_new(s->loop, &f);
    if (s->future_new == 0)
      proa_future_unref(f);
    s->stop = proa_loop_stop(s->loop);
    s->set_handler = proa_loop_set_exception_handler(s->loop, nullptr, nullptr);
    // The thread-safe call is allowed from anywhere.
    s->threadsafe = proa_call_soon_threadsafe(s->loop, IncrementInt,
                                              &s->threadsafe_ran, nullptr);
  });
  t.join();
  // Let any deferred report arrive, then end the run.
  EXPECT_EQ(0, proa_call_later(s->loop, 0.02, StopLoop, s->loop, nullptr));
}

TEST(DebugThreads, ForeignThreadCallsFailAndAreReported) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  ExceptionCapture exc;
  exc.Attach(loop);
  Foreign s{loop};
  ASSERT_EQ(0, proa_call_soon(loop, ForeignCalls, &s, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(PROA_EWRONGTHREAD, s.call_soon);
  EXPECT_EQ(PROA_EWRONGTHREAD, s.call_later);
  EXPECT_EQ(PROA_EWRONGTHREAD, s.call_at);
  EXPECT_EQ(PROA_EWRONGTHREAD, s.future_new);
  EXPECT_EQ(PROA_EWRONGTHREAD, s.stop);
  EXPECT_EQ(PROA_EWRONGTHREAD, s.set_handler);
  EXPECT_EQ(0, s.threadsafe);
  EXPECT_EQ(1, s.threadsafe_ran);
  // Every rejected call reached the (still installed) exception handler.
  EXPECT_EQ(6u, exc.CountError(PROA_EWRONGTHREAD));
  void *arg = nullptr;
  EXPECT_EQ(ExceptionCapture::Handler,
            proa_loop_get_exception_handler(loop, &arg));
  for (const CapturedContext &c : exc.Calls()) {
    EXPECT_EQ(loop.get(), c.loop);
    EXPECT_TRUE(c.has_message);
  }
}

TEST(DebugThreads, LoopThreadCallsAreAllowed) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  ExceptionCapture exc;
  exc.Attach(loop);
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     int *n = static_cast<int *>(arg);
                     ++*n;
                   },
                   &n, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0.001, StopLoop, loop.get(), nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, n);
  EXPECT_TRUE(exc.Calls().empty());
}

TEST(DebugThreads, NotRunningLoopCanBeSetUpFromAnyThread) {
  // Only a running loop has an owning thread: setting a loop up on one thread
  // and running it on another is fine in debug mode too.
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  int n = 0, rc1 = 1, rc2 = 1;
  std::thread t([&] {
    rc1 = proa_call_soon(loop, IncrementInt, &n, nullptr);
    rc2 = proa_call_soon(loop, StopLoop, loop.get(), nullptr);
  });
  t.join();
  EXPECT_EQ(0, rc1);
  EXPECT_EQ(0, rc2);
  EXPECT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, n);
}

TEST(DebugThreads, WrongThreadReportIsLoggedOnLoopThread) {
  // exception.h: the loop's log messages come "from the loop thread, or
  // from the thread that frees an object". A rejected foreign-thread call
  // is neither, so its report must reach the (default handler's) log sink
  // on the loop thread, not on the offending thread.
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  Loop loop(&opts);
  ASSERT_EQ(0, loop.rc());
  struct Sink {
    std::mutex mu;
    std::vector<std::pair<std::thread::id, std::string>> calls;
  } sink;
  proa_loop_set_log_sink(
      loop,
      [](void *arg, proa_log_level, const char *msg) {
        Sink *s = static_cast<Sink *>(arg);
        std::lock_guard<std::mutex> lock(s->mu);
        s->calls.push_back({std::this_thread::get_id(), msg});
      },
      &sink);
  struct S {
    proa_loop *loop;
    int rc = 1;
  } s{loop};
  ASSERT_EQ(0, proa_call_soon(
                   loop,
                   [](void *arg) {
                     S *s = static_cast<S *>(arg);
                     std::thread t([s] {
                       s->rc = proa_call_soon(s->loop, Noop, nullptr, nullptr);
                     });
                     t.join();
                     EXPECT_EQ(0, proa_call_later(s->loop, 0.02, StopLoop,
                                                  s->loop, nullptr));
                   },
                   &s, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(PROA_EWRONGTHREAD, s.rc);
  std::lock_guard<std::mutex> lock(sink.mu);
  ASSERT_EQ(1u, sink.calls.size());
  EXPECT_NE(std::string::npos, sink.calls[0].second.find("EWRONGTHREAD"))
      << sink.calls[0].second;
  EXPECT_EQ(std::this_thread::get_id(), sink.calls[0].first)
      << "reported on the foreign thread: " << sink.calls[0].second;
}

// ---- objects freed without being closed ----

TEST(DebugUnclosed, LoopFreedWithoutCloseIsReported) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new_ex(&loop, &opts));
  LogCapture log;
  log.Attach(loop);
  proa_loop_unref(loop); // the last reference, never closed
  std::vector<LogEntry> entries = log.Entries();
  ASSERT_EQ(1u, entries.size()) << log.Dump();
  EXPECT_EQ(PROA_LOG_WARNING, entries[0].level);
}

TEST(DebugUnclosed, ClosedLoopIsNotReported) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 1;
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new_ex(&loop, &opts));
  LogCapture log;
  log.Attach(loop);
  EXPECT_EQ(0, proa_loop_free(loop));
  EXPECT_TRUE(log.Entries().empty()) << log.Dump();
}

TEST(DebugUnclosed, NotReportedWithoutDebug) {
  proa_loop_options opts = PROA_LOOP_OPTIONS_INIT;
  opts.debug = 0;
  proa_loop *loop = nullptr;
  ASSERT_EQ(0, proa_loop_new_ex(&loop, &opts));
  LogCapture log;
  log.Attach(loop);
  proa_loop_unref(loop);
  EXPECT_TRUE(log.Entries().empty()) << log.Dump();
}

} // namespace
