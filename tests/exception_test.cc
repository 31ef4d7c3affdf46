// Tests of the exception handler, the default handler and the log sink.
#include "proa_test.h"

using namespace proa_test;

namespace {

using ExceptionHandler = LoopTest;

int DummyHandler(proa_loop *, const proa_context *, void *) { return 0; }

TEST_F(ExceptionHandler, DefaultIsNull) {
  void *arg = &arg;
  EXPECT_EQ(nullptr, proa_loop_get_exception_handler(loop, &arg));
  EXPECT_EQ(nullptr, arg);
  EXPECT_EQ(nullptr, proa_loop_get_exception_handler(loop, nullptr));
}

TEST_F(ExceptionHandler, SetGetReset) {
  int token = 0;
  ASSERT_EQ(0, proa_loop_set_exception_handler(loop, DummyHandler, &token));
  void *arg = nullptr;
  EXPECT_EQ(DummyHandler, proa_loop_get_exception_handler(loop, &arg));
  EXPECT_EQ(&token, arg);
  EXPECT_EQ(DummyHandler, proa_loop_get_exception_handler(loop, nullptr));

  ASSERT_EQ(0, proa_loop_set_exception_handler(loop, nullptr, nullptr));
  arg = &arg;
  EXPECT_EQ(nullptr, proa_loop_get_exception_handler(loop, &arg));
  EXPECT_EQ(nullptr, arg);
}

TEST_F(ExceptionHandler, CallPassesTheContext) {
  ExceptionCapture exc;
  exc.Attach(loop);
  proa_future *fut = nullptr;
  ASSERT_EQ(0, proa_future_new(loop, &fut));
  proa_handle *h = nullptr;
  ASSERT_EQ(0, proa_call_later(loop, 10, IncrementInt, nullptr, &h));
  int transport = 0;
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "something broke";
  ctx.error = PROA_EPIPE;
  ctx.error_message = "write end closed";
  ctx.future = fut;
  ctx.handle = h;
  ctx.transport = &transport;
  ctx.socket = 42;
  proa_loop_call_exception_handler(loop, &ctx);
  std::vector<CapturedContext> calls = exc.Calls();
  ASSERT_EQ(1u, calls.size());
  const CapturedContext &c = calls[0];
  EXPECT_EQ(loop, c.loop);
  EXPECT_EQ("something broke", c.message);
  EXPECT_EQ(PROA_EPIPE, c.error);
  EXPECT_EQ("write end closed", c.error_message);
  EXPECT_EQ(fut, c.future);
  EXPECT_EQ(h, c.handle);
  EXPECT_EQ(&transport, c.transport);
  EXPECT_EQ(42, c.socket);
  EXPECT_EQ(std::this_thread::get_id(), c.thread);
  proa_handle_unref(h);
  proa_future_unref(fut);
}

TEST_F(ExceptionHandler, ContextInitDefaults) {
  proa_context ctx = PROA_CONTEXT_INIT;
  EXPECT_EQ(nullptr, ctx.message);
  EXPECT_EQ(0, ctx.error);
  EXPECT_EQ(nullptr, ctx.error_message);
  EXPECT_EQ(nullptr, ctx.future);
  EXPECT_EQ(nullptr, ctx.handle);
  EXPECT_EQ(nullptr, ctx.transport);
  EXPECT_EQ(-1, ctx.socket);
}

TEST_F(ExceptionHandler, CustomHandlerReplacesDefault) {
  LogCapture log;
  log.Attach(loop);
  ExceptionCapture exc;
  exc.Attach(loop);
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "handled quietly";
  ctx.error = PROA_EIO;
  proa_loop_call_exception_handler(loop, &ctx);
  EXPECT_EQ(1u, exc.Calls().size());
  EXPECT_TRUE(log.Entries().empty()) << log.Dump();
}

TEST_F(ExceptionHandler, FailingHandlerFallsBackToDefault) {
  LogCapture log;
  log.Attach(loop);
  ExceptionCapture exc;
  exc.set_return(-1);
  exc.Attach(loop);
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "original trouble";
  ctx.error = PROA_ECONNRESET;
  proa_loop_call_exception_handler(loop, &ctx);
  EXPECT_EQ(1u, exc.Calls().size());
  // The default handler got both the original context and the failure.
  EXPECT_GE(log.Count(PROA_LOG_ERROR, "original trouble"), 1u) << log.Dump();
  EXPECT_GE(log.Count(PROA_LOG_ERROR, "ECONNRESET"), 1u) << log.Dump();
  bool failure_reported = false;
  for (const LogEntry &e : log.Entries())
    if (e.level == PROA_LOG_ERROR &&
        Lower(e.text).find("handler") != std::string::npos)
      failure_reported = true;
  EXPECT_TRUE(failure_reported)
      << "no message about the failing exception handler:\n"
      << log.Dump();
  for (const LogEntry &e : log.Entries())
    EXPECT_EQ(PROA_LOG_ERROR, e.level) << e.text;
}

TEST_F(ExceptionHandler, DefaultHandlerLogsMessageAndErrorName) {
  LogCapture log;
  log.Attach(loop);
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "the widget fell over";
  ctx.error = PROA_ETIMEDOUT;
  proa_loop_default_exception_handler(loop, &ctx);
  std::vector<LogEntry> entries = log.Entries();
  ASSERT_EQ(1u, entries.size()) << log.Dump();
  EXPECT_EQ(PROA_LOG_ERROR, entries[0].level);
  EXPECT_NE(std::string::npos, entries[0].text.find("the widget fell over"))
      << entries[0].text;
  EXPECT_NE(std::string::npos, entries[0].text.find("ETIMEDOUT"))
      << entries[0].text;
  EXPECT_NE('\n', entries[0].text.empty() ? 'x' : entries[0].text.back());
}

TEST_F(ExceptionHandler, CallWithoutCustomHandlerUsesDefault) {
  LogCapture log;
  log.Attach(loop);
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "nobody is listening";
  ctx.error = PROA_EPIPE;
  proa_loop_call_exception_handler(loop, &ctx);
  EXPECT_EQ(1u, log.Count(PROA_LOG_ERROR, "nobody is listening")) << log.Dump();
  EXPECT_EQ(1u, log.Count(PROA_LOG_ERROR, "EPIPE")) << log.Dump();
}

TEST_F(ExceptionHandler, ResetRestoresDefault) {
  LogCapture log;
  log.Attach(loop);
  ExceptionCapture exc;
  exc.Attach(loop);
  ASSERT_EQ(0, proa_loop_set_exception_handler(loop, nullptr, nullptr));
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "back to default";
  proa_loop_call_exception_handler(loop, &ctx);
  EXPECT_TRUE(exc.Calls().empty());
  EXPECT_EQ(1u, log.Count(PROA_LOG_ERROR, "back to default")) << log.Dump();
}

TEST_F(ExceptionHandler, DefaultHandlerWithEmptyContext) {
  LogCapture log;
  log.Attach(loop);
  proa_context ctx = PROA_CONTEXT_INIT; // every pointer NULL
  proa_loop_default_exception_handler(loop, &ctx);
  std::vector<LogEntry> entries = log.Entries();
  ASSERT_EQ(1u, entries.size());
  EXPECT_EQ(PROA_LOG_ERROR, entries[0].level);
  EXPECT_FALSE(entries[0].text.empty());
}

// ---- log sink ----

using LogSink = LoopTest;

TEST_F(LogSink, LogGoesToSink) {
  LogCapture log;
  log.Attach(loop);
  proa_loop_log(loop, PROA_LOG_WARNING, "answer=%d name=%s", 42, "proa");
  proa_loop_log(loop, PROA_LOG_DEBUG, "%s", "low");
  std::vector<LogEntry> entries = log.Entries();
  ASSERT_EQ(2u, entries.size());
  EXPECT_EQ(PROA_LOG_WARNING, entries[0].level);
  EXPECT_EQ("answer=42 name=proa", entries[0].text);
  EXPECT_EQ(PROA_LOG_DEBUG, entries[1].level);
  EXPECT_EQ("low", entries[1].text);
}

TEST_F(LogSink, LongMessageIsNotTruncatedToNothing) {
  LogCapture log;
  log.Attach(loop);
  std::string big(5000, 'a');
  big += "END";
  proa_loop_log(loop, PROA_LOG_INFO, "%s", big.c_str());
  std::vector<LogEntry> entries = log.Entries();
  ASSERT_EQ(1u, entries.size());
  // A sink may cap very long messages, but must keep a sensible prefix.
  EXPECT_GE(entries[0].text.size(), 256u);
  EXPECT_EQ(0u, entries[0].text.find("aaaa"));
}

TEST_F(LogSink, NullSinkRestoresStderr) {
  LogCapture log;
  log.Attach(loop);
  proa_loop_set_log_sink(loop, nullptr, nullptr);
  ::testing::internal::CaptureStderr();
  proa_loop_log(loop, PROA_LOG_ERROR, "to stderr %d", 7);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(log.Entries().empty());
  EXPECT_NE(std::string::npos, err.find("to stderr 7")) << err;
}

TEST_F(LogSink, DefaultSinkIsStderr) {
  ::testing::internal::CaptureStderr();
  proa_context ctx = PROA_CONTEXT_INIT;
  ctx.message = "default sink check";
  ctx.error = PROA_EINVAL;
  proa_loop_call_exception_handler(loop, &ctx);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(std::string::npos, err.find("default sink check")) << err;
  EXPECT_NE(std::string::npos, err.find("EINVAL")) << err;
}

} // namespace
