// Helpers shared by the GoogleTest suite: loop fixtures, watchdog runs,
// log and exception-handler capture, environment and Wine detection.
#ifndef PROA_TEST_H
#define PROA_TEST_H

#include <proa.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

// ---- Wine detection ----

// The Wine version when running under Wine, else NULL.
inline const char *proa_test_wine_version() {
#ifdef _WIN32
  typedef const char *(*wine_get_version_fn)(void);
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  if (ntdll == NULL)
    return NULL;
  wine_get_version_fn fn = reinterpret_cast<wine_get_version_fn>(
      reinterpret_cast<void *>(GetProcAddress(ntdll, "wine_get_version")));
  return fn != NULL ? fn() : NULL;
#else
  return NULL;
#endif
}

inline bool proa_test_is_wine() {
#ifdef _WIN32
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
#else
  return false;
#endif
}

// Skips the current test under Wine only, naming the reason and the Wine
// version. On real Windows (and elsewhere) it does nothing, so the test runs.
#define PROA_SKIP_UNDER_WINE(reason)                                           \
  do {                                                                         \
    if (proa_test_is_wine())                                                   \
      GTEST_SKIP() << "not supported by Wine " << proa_test_wine_version()     \
                   << ": " << (reason);                                        \
  } while (0)

namespace proa_test {

// ---- environment ----

inline void SetEnv(const char *name, const char *value) {
#ifdef _WIN32
  _putenv_s(name, value != NULL ? value : "");
#else
  if (value != NULL)
    setenv(name, value, 1);
  else
    unsetenv(name);
#endif
}

// Sets (or, with NULL, unsets) an environment variable for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name_(name) {
    const char *old = std::getenv(name);
    had_ = old != NULL;
    if (had_)
      old_ = old;
    SetEnv(name, value);
  }
  ~ScopedEnv() { SetEnv(name_.c_str(), had_ ? old_.c_str() : NULL); }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  std::string name_, old_;
  bool had_ = false;
};

// ---- time ----

inline double WallSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void SleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// ---- running ----

struct Watchdog {
  proa_loop *loop;
  bool fired;
};

inline void WatchdogFire(void *arg) {
  Watchdog *w = static_cast<Watchdog *>(arg);
  w->fired = true;
  proa_loop_stop(w->loop);
}

// Runs the loop until something stops it. A watchdog timer stops it after
// `seconds` and records a test failure; *fired (if given) says whether it did.
// Returns what proa_loop_run_forever() returned.
inline int RunWithWatchdog(proa_loop *loop, double seconds = 10.0,
                           bool *fired = nullptr) {
  Watchdog w = {loop, false};
  proa_handle *h = nullptr;
  int rc = proa_call_later(loop, seconds, WatchdogFire, &w, &h);
  EXPECT_EQ(0, rc) << "cannot schedule the watchdog: " << proa_err_name(rc);
  if (rc != 0)
    return rc;
  rc = proa_loop_run_forever(loop);
  proa_handle_cancel(h);
  proa_handle_unref(h);
  if (w.fired && fired == nullptr)
    ADD_FAILURE() << "the watchdog stopped the loop after " << seconds << " s";
  if (fired != nullptr)
    *fired = w.fired;
  return rc;
}

// One iteration: stop() before run_forever() polls once with a zero timeout,
// runs what is ready and returns.
inline int RunOnce(proa_loop *loop) {
  int rc = proa_loop_stop(loop);
  if (rc != 0)
    return rc;
  return proa_loop_run_forever(loop);
}

// A callback that stops the loop passed as its argument.
inline void StopLoop(void *arg) {
  proa_loop_stop(static_cast<proa_loop *>(arg));
}

// A callback that increments the int its argument points at.
inline void IncrementInt(void *arg) { ++*static_cast<int *>(arg); }

// ---- RAII ----

// Owns a loop: creates it, and closes and frees it at the end of the scope.
class Loop {
public:
  explicit Loop(const proa_loop_options *opts = nullptr) {
    rc_ = proa_loop_new_ex(&loop_, opts);
    if (rc_ != 0)
      loop_ = nullptr;
  }
  ~Loop() { Free(); }
  Loop(const Loop &) = delete;
  Loop &operator=(const Loop &) = delete;

  int rc() const { return rc_; }
  proa_loop *get() const { return loop_; }
  operator proa_loop *() const { return loop_; }
  void Free() {
    if (loop_ != nullptr) {
      EXPECT_EQ(0, proa_loop_free(loop_));
      loop_ = nullptr;
    }
  }

private:
  proa_loop *loop_ = nullptr;
  int rc_ = 0;
};

// Fixture with a fresh loop (default options) in `loop`.
class LoopTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(0, proa_loop_new(&loop)) << "proa_loop_new failed";
    ASSERT_NE(nullptr, loop);
  }
  void TearDown() override {
    if (loop != nullptr) {
      EXPECT_EQ(0, proa_loop_free(loop));
    }
    loop = nullptr;
  }
  proa_loop *loop = nullptr;
};

// Releases a handle at the end of a scope.
struct HandleRef {
  proa_handle *h = nullptr;
  ~HandleRef() {
    if (h != nullptr)
      proa_handle_unref(h);
  }
};

// ---- log capture ----

struct LogEntry {
  proa_log_level level;
  std::string text;
};

class LogCapture {
public:
  static void Sink(void *arg, proa_log_level level, const char *message) {
    LogCapture *self = static_cast<LogCapture *>(arg);
    std::lock_guard<std::mutex> lock(self->mu_);
    self->entries_.push_back({level, message != nullptr ? message : "(null)"});
  }
  void Attach(proa_loop *loop) { proa_loop_set_log_sink(loop, Sink, this); }

  std::vector<LogEntry> Entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }
  // Messages at `level` containing `needle` (any level when level is 0).
  size_t Count(int level, const std::string &needle) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const LogEntry &e : entries_)
      if ((level == 0 || e.level == level) &&
          e.text.find(needle) != std::string::npos)
        ++n;
    return n;
  }
  std::string Dump() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s;
    for (const LogEntry &e : entries_)
      s += "  [" + std::to_string(e.level) + "] " + e.text + "\n";
    return s.empty() ? "  (no log messages)\n" : s;
  }

private:
  std::mutex mu_;
  std::vector<LogEntry> entries_;
};

// ---- exception handler capture ----

struct CapturedContext {
  proa_loop *loop;
  bool has_message;
  std::string message;
  int error;
  bool has_error_message;
  std::string error_message;
  proa_future *future;
  proa_handle *handle;
  void *transport;
  intptr_t socket;
  std::thread::id thread;
};

class ExceptionCapture {
public:
  static int Handler(proa_loop *loop, const proa_context *ctx, void *arg) {
    ExceptionCapture *self = static_cast<ExceptionCapture *>(arg);
    CapturedContext c;
    c.loop = loop;
    c.has_message = ctx->message != nullptr;
    c.message = ctx->message != nullptr ? ctx->message : "";
    c.error = ctx->error;
    c.has_error_message = ctx->error_message != nullptr;
    c.error_message = ctx->error_message != nullptr ? ctx->error_message : "";
    c.future = ctx->future;
    c.handle = ctx->handle;
    c.transport = ctx->transport;
    c.socket = ctx->socket;
    c.thread = std::this_thread::get_id();
    std::lock_guard<std::mutex> lock(self->mu_);
    self->calls_.push_back(c);
    return self->ret_;
  }
  void Attach(proa_loop *loop) {
    ASSERT_EQ(0, proa_loop_set_exception_handler(loop, Handler, this));
  }
  void set_return(int r) { ret_ = r; }
  std::vector<CapturedContext> Calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  size_t CountError(int error) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const CapturedContext &c : calls_)
      if (c.error == error)
        ++n;
    return n;
  }

private:
  std::mutex mu_;
  std::vector<CapturedContext> calls_;
  int ret_ = 0;
};

// Lower-cases ASCII (for case-insensitive substring checks).
inline std::string Lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

} // namespace proa_test

#endif // PROA_TEST_H
