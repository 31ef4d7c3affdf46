// Tests of futures: states, results and errors, done callbacks, lifetime,
// never-retrieved errors and run_until_complete.
#include "proa_test.h"

#include "alloc_fail.h"

using namespace proa_test;

namespace {

// A value whose free function counts how often it was called.
struct Value {
  int frees = 0;
};

void FreeValue(void *v) { ++static_cast<Value *>(v)->frees; }

class Future : public LoopTest {
protected:
  void SetUp() override {
    LoopTest::SetUp();
    ASSERT_EQ(0, proa_future_new(loop, &f));
    ASSERT_NE(nullptr, f);
  }
  void TearDown() override {
    if (f != nullptr)
      proa_future_unref(f);
    f = nullptr;
    LoopTest::TearDown();
  }
  proa_future *f = nullptr;
};

TEST_F(Future, NewIsPending) {
  EXPECT_EQ(loop, proa_future_loop(f));
  EXPECT_FALSE(proa_future_done(f));
  EXPECT_FALSE(proa_future_cancelled(f));
  void *v = &v;
  EXPECT_EQ(PROA_ENOTDONE, proa_future_result(f, &v));
  EXPECT_EQ(PROA_ENOTDONE, proa_future_result(f, nullptr));
  EXPECT_EQ(PROA_ENOTDONE, proa_future_error(f));
  EXPECT_EQ(nullptr, proa_future_error_message(f));
}

TEST_F(Future, NewBadArguments) {
  EXPECT_EQ(PROA_EINVAL, proa_future_new(loop, nullptr));
}

TEST_F(Future, SetResult) {
  Value val;
  ASSERT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  EXPECT_TRUE(proa_future_done(f));
  EXPECT_FALSE(proa_future_cancelled(f));
  void *got = nullptr;
  EXPECT_EQ(0, proa_future_result(f, &got));
  EXPECT_EQ(&val, got);
  EXPECT_EQ(0, proa_future_result(f, nullptr));
  EXPECT_EQ(0, proa_future_error(f));
  EXPECT_EQ(nullptr, proa_future_error_message(f));
  EXPECT_EQ(0, val.frees); // still owned by the future
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, ResultNullValueWithoutFreeFunction) {
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  void *got = &got;
  EXPECT_EQ(0, proa_future_result(f, &got));
  EXPECT_EQ(nullptr, got);
}

TEST_F(Future, ValueFreedOnceWhenLastReferenceGoes) {
  Value val;
  ASSERT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  EXPECT_EQ(f, proa_future_ref(f));
  EXPECT_EQ(f, proa_future_ref(f));
  proa_future_unref(f);
  proa_future_unref(f);
  EXPECT_EQ(0, val.frees);
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(0, val.frees);
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, DoubleSetIsInvalidState) {
  Value first, second;
  ASSERT_EQ(0, proa_future_set_result(f, &first, FreeValue));
  EXPECT_EQ(PROA_ESTATE, proa_future_set_result(f, &second, FreeValue));
  EXPECT_EQ(PROA_ESTATE, proa_future_set_error(f, PROA_EIO, "late"));
  EXPECT_FALSE(proa_future_cancel(f, nullptr));
  EXPECT_FALSE(proa_future_cancelled(f));
  void *got = nullptr;
  EXPECT_EQ(0, proa_future_result(f, &got));
  EXPECT_EQ(&first, got);
  EXPECT_EQ(nullptr, proa_future_error_message(f));
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(1, first.frees);
  EXPECT_EQ(0, second.frees); // not taken
}

TEST_F(Future, SetError) {
  char msg[] = "disk on fire";
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EIO, msg));
  std::memset(msg, 'x', sizeof msg - 1); // the message was copied
  EXPECT_TRUE(proa_future_done(f));
  EXPECT_FALSE(proa_future_cancelled(f));
  void *got = &got;
  EXPECT_EQ(PROA_EIO, proa_future_result(f, &got));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
  ASSERT_NE(nullptr, proa_future_error_message(f));
  EXPECT_STREQ("disk on fire", proa_future_error_message(f));
  Value val;
  EXPECT_EQ(PROA_ESTATE, proa_future_set_result(f, &val, FreeValue));
  EXPECT_EQ(PROA_ESTATE, proa_future_set_error(f, PROA_EPIPE, nullptr));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(0, val.frees);
}

TEST_F(Future, SetErrorWithoutMessage) {
  ASSERT_EQ(0, proa_future_set_error(f, PROA_ETIMEDOUT, nullptr));
  EXPECT_EQ(PROA_ETIMEDOUT, proa_future_error(f));
  EXPECT_EQ(nullptr, proa_future_error_message(f));
}

TEST_F(Future, SetErrorNonNegativeIsInvalid) {
  EXPECT_EQ(PROA_EINVAL, proa_future_set_error(f, 0, "zero"));
  EXPECT_EQ(PROA_EINVAL, proa_future_set_error(f, 5, "positive"));
  EXPECT_FALSE(proa_future_done(f));
  EXPECT_EQ(PROA_ENOTDONE, proa_future_error(f));
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EUNKNOWN, nullptr));
  EXPECT_EQ(PROA_EUNKNOWN, proa_future_error(f));
}

TEST_F(Future, Cancel) {
  EXPECT_TRUE(proa_future_cancel(f, "no longer needed"));
  EXPECT_TRUE(proa_future_done(f));
  EXPECT_TRUE(proa_future_cancelled(f));
  EXPECT_EQ(PROA_ECANCELED, proa_future_result(f, nullptr));
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(f));
  ASSERT_NE(nullptr, proa_future_error_message(f));
  EXPECT_STREQ("no longer needed", proa_future_error_message(f));
  EXPECT_FALSE(proa_future_cancel(f, "again"));
  EXPECT_STREQ("no longer needed", proa_future_error_message(f));
  Value val;
  EXPECT_EQ(PROA_ESTATE, proa_future_set_result(f, &val, FreeValue));
  EXPECT_EQ(PROA_ESTATE, proa_future_set_error(f, PROA_EIO, nullptr));
  EXPECT_TRUE(proa_future_cancelled(f));
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(0, val.frees);
}

TEST_F(Future, CancelWithoutMessage) {
  EXPECT_TRUE(proa_future_cancel(f, nullptr));
  EXPECT_EQ(nullptr, proa_future_error_message(f));
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(f));
}

TEST_F(Future, CancelDoneFutureFails) {
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EIO, nullptr));
  EXPECT_FALSE(proa_future_cancel(f, nullptr));
  EXPECT_FALSE(proa_future_cancelled(f));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
}

// ---- done callbacks ----

struct DoneLog {
  std::vector<std::pair<proa_future *, int>> calls;
  std::vector<bool> done_when_called;
};

struct DoneArg {
  DoneLog *log;
  int id;
};

void OnDone(proa_future *fut, void *arg) {
  DoneArg *a = static_cast<DoneArg *>(arg);
  a->log->calls.push_back({fut, a->id});
  a->log->done_when_called.push_back(proa_future_done(fut));
}

// ---- ownership when memory runs out (future.h) ----

struct Ran {
  int calls = 0;
  bool done = false;
};
void RanCb(proa_future *fut, void *arg) {
  Ran *r = static_cast<Ran *>(arg);
  r->calls++;
  r->done = proa_future_done(fut);
}

TEST_F(Future, SetResultTakesTheValueEvenWithoutMemoryForTheCallbacks) {
  // The loop has run nothing: queueing the callbacks needs a new handle,
  // and that allocation fails. set_result must still succeed (the future
  // owns the value: a caller freeing on an error would free it twice) and
  // the callback must still run.
  PROA_NEED_ALLOC_FAIL();
  Value val;
  Ran ran;
  ASSERT_EQ(0, proa_future_add_done_callback(f, RanCb, &ran));
  proa_alloc_fail::FailNth(1);
  EXPECT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  EXPECT_EQ(1, proa_alloc_fail::Failures()) << "no allocation was failed";
  proa_alloc_fail::FailNth(0);
  EXPECT_TRUE(proa_future_done(f));
  EXPECT_EQ(0, ran.calls) << "callbacks never run from inside set_result";
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, ran.calls);
  EXPECT_TRUE(ran.done);
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, ran.calls);
  EXPECT_EQ(0, val.frees);
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, StalledCallbacksAreDroppedAtClose) {
  PROA_NEED_ALLOC_FAIL();
  Value val;
  Ran ran;
  ASSERT_EQ(0, proa_future_add_done_callback(f, RanCb, &ran));
  proa_alloc_fail::FailNth(1);
  EXPECT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  EXPECT_EQ(1, proa_alloc_fail::Failures());
  proa_alloc_fail::FailNth(0);
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(0, ran.calls);
  proa_future_unref(f); // the last reference: the loop let go of its own
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, SetErrorWithoutMemoryForTheMessageStillCompletes) {
  PROA_NEED_ALLOC_FAIL();
  Ran ran;
  ASSERT_EQ(0, proa_future_add_done_callback(f, RanCb, &ran));
  proa_alloc_fail::FailNth(1); // the copy of the message
  EXPECT_EQ(0, proa_future_set_error(f, PROA_EIO, "details"));
  EXPECT_EQ(1, proa_alloc_fail::Failures());
  proa_alloc_fail::FailNth(0);
  EXPECT_TRUE(proa_future_done(f));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
  EXPECT_EQ(nullptr, proa_future_error_message(f));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, ran.calls);
}

TEST_F(Future, CancelKeepsItsMessageWithoutMemoryForTheCallbacks) {
  // The message is copied, then the handle for the callbacks cannot be
  // had. The cancel used to retry without the message, losing (and
  // leaking) the copy.
  PROA_NEED_ALLOC_FAIL();
  Ran ran;
  ASSERT_EQ(0, proa_future_add_done_callback(f, RanCb, &ran));
  proa_alloc_fail::FailNth(2);
  EXPECT_TRUE(proa_future_cancel(f, "bye"));
  EXPECT_EQ(1, proa_alloc_fail::Failures()) << "no allocation was failed";
  proa_alloc_fail::FailNth(0);
  EXPECT_TRUE(proa_future_cancelled(f));
  ASSERT_NE(nullptr, proa_future_error_message(f));
  EXPECT_STREQ("bye", proa_future_error_message(f));
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, ran.calls);
}

TEST_F(Future, DoneCallbacksAreScheduledNotCalled) {
  DoneLog log;
  DoneArg a{&log, 1};
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  EXPECT_TRUE(log.calls.empty()) << "done callback called synchronously";
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(1u, log.calls.size());
  EXPECT_EQ(f, log.calls[0].first);
  EXPECT_EQ(1, log.calls[0].second);
  EXPECT_TRUE(log.done_when_called[0]);
  ASSERT_EQ(0, RunOnce(loop)); // exactly once
  EXPECT_EQ(1u, log.calls.size());
}

TEST_F(Future, DoneCallbacksRunInOrderAdded) {
  DoneLog log;
  std::vector<DoneArg> args;
  for (int i = 0; i < 8; ++i)
    args.push_back({&log, i});
  for (DoneArg &a : args)
    ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EIO, nullptr));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(8u, log.calls.size());
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(i, log.calls[i].second);
}

TEST_F(Future, DoneCallbacksOnCancel) {
  DoneLog log;
  DoneArg a{&log, 7};
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  EXPECT_TRUE(proa_future_cancel(f, nullptr));
  EXPECT_TRUE(log.calls.empty());
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(1u, log.calls.size());
  EXPECT_EQ(7, log.calls[0].second);
}

TEST_F(Future, AddDoneCallbackOnDoneFuture) {
  DoneLog log;
  DoneArg a{&log, 3};
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  EXPECT_TRUE(log.calls.empty()) << "called synchronously";
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(1u, log.calls.size());
  EXPECT_EQ(f, log.calls[0].first);
}

TEST_F(Future, AddDoneCallbackBadArguments) {
  EXPECT_EQ(PROA_EINVAL, proa_future_add_done_callback(f, nullptr, nullptr));
}

TEST_F(Future, AddDoneCallbackOnDoneFutureOfClosedLoop) {
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  ASSERT_EQ(0, proa_loop_close(loop));
  DoneLog log;
  DoneArg a{&log, 1};
  EXPECT_EQ(PROA_ECLOSED, proa_future_add_done_callback(f, OnDone, &a));
  EXPECT_TRUE(log.calls.empty());
}

TEST_F(Future, RemoveDoneCallback) {
  DoneLog log;
  DoneArg a{&log, 1}, b{&log, 2};
  auto other = [](proa_future *, void *arg) {
    static_cast<DoneArg *>(arg)->log->calls.push_back({nullptr, 99});
  };
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &b));
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  ASSERT_EQ(0, proa_future_add_done_callback(f, other, &a));
  EXPECT_EQ(2, proa_future_remove_done_callback(f, OnDone, &a));
  EXPECT_EQ(0, proa_future_remove_done_callback(f, OnDone, &a));
  EXPECT_EQ(0, proa_future_remove_done_callback(f, OnDone, nullptr));
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  ASSERT_EQ(0, RunOnce(loop));
  ASSERT_EQ(2u, log.calls.size());
  EXPECT_EQ(2, log.calls[0].second);
  EXPECT_EQ(99, log.calls[1].second);
}

TEST_F(Future, DoneCallbackKeepsFutureAlive) {
  // The caller drops its reference right after completing the future; the
  // scheduled callback still gets a valid future, and the value is freed
  // once, after the callback.
  Value val;
  struct S {
    Value *val;
    int calls = 0;
    int frees_seen = -1;
    void *result = nullptr;
  } s{&val};
  ASSERT_EQ(0, proa_future_add_done_callback(
                   f,
                   [](proa_future *fut, void *arg) {
                     S *s = static_cast<S *>(arg);
                     ++s->calls;
                     s->frees_seen = s->val->frees;
                     EXPECT_TRUE(proa_future_done(fut));
                     EXPECT_EQ(0, proa_future_result(fut, &s->result));
                   },
                   &s));
  ASSERT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1, s.calls);
  EXPECT_EQ(0, s.frees_seen);
  EXPECT_EQ(&val, s.result);
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, PendingFutureDroppedWithCallbacks) {
  // A pending future with callbacks is released: nothing runs, nothing leaks.
  DoneLog log;
  DoneArg a{&log, 1};
  ASSERT_EQ(0, proa_future_add_done_callback(f, OnDone, &a));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_TRUE(log.calls.empty());
}

// ---- never-retrieved errors ----

TEST_F(Future, UnretrievedErrorIsReported) {
  ExceptionCapture exc;
  exc.Attach(loop);
  ASSERT_EQ(0, proa_future_set_error(f, PROA_ECONNRESET, "peer went away"));
  proa_future *raw = f;
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop)); // in case the report is deferred
  std::vector<CapturedContext> calls = exc.Calls();
  ASSERT_EQ(1u, calls.size());
  EXPECT_EQ(loop, calls[0].loop);
  EXPECT_TRUE(calls[0].has_message);
  EXPECT_NE("", calls[0].message);
  EXPECT_EQ(PROA_ECONNRESET, calls[0].error);
  EXPECT_NE(nullptr, calls[0].future);
  EXPECT_EQ(raw, calls[0].future);
}

TEST_F(Future, RetrievedErrorIsNotReported) {
  ExceptionCapture exc;
  exc.Attach(loop);
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EIO, nullptr));
  EXPECT_EQ(PROA_EIO, proa_future_result(f, nullptr));
  proa_future_unref(f);

  ASSERT_EQ(0, proa_future_new(loop, &f));
  ASSERT_EQ(0, proa_future_set_error(f, PROA_EIO, nullptr));
  EXPECT_EQ(PROA_EIO, proa_future_error(f));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_TRUE(exc.Calls().empty());
}

TEST_F(Future, ResultAndCancellationAreNotReported) {
  // Only errors are reported: not results, not cancellations (as asyncio,
  // which logs only a never-retrieved exception), not pending futures.
  ExceptionCapture exc;
  exc.Attach(loop);
  ASSERT_EQ(0, proa_future_set_result(f, nullptr, nullptr));
  proa_future_unref(f);
  ASSERT_EQ(0, proa_future_new(loop, &f));
  EXPECT_TRUE(proa_future_cancel(f, "bye"));
  proa_future_unref(f);
  ASSERT_EQ(0, proa_future_new(loop, &f));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_TRUE(exc.Calls().empty());
}

TEST_F(Future, UnretrievedErrorReportedThroughDefaultHandler) {
  LogCapture log;
  log.Attach(loop);
  ASSERT_EQ(0, proa_future_set_error(f, PROA_ECONNRESET, nullptr));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_EQ(1u, log.Count(PROA_LOG_ERROR, "ECONNRESET")) << log.Dump();
}

// ---- run_until_complete ----

struct Completer {
  proa_future *f;
  Value *val;
  int error;
};

void CompleteWithResult(void *arg) {
  Completer *c = static_cast<Completer *>(arg);
  EXPECT_EQ(0, proa_future_set_result(c->f, c->val,
                                      c->val != nullptr ? FreeValue : nullptr));
}

void CompleteWithError(void *arg) {
  Completer *c = static_cast<Completer *>(arg);
  EXPECT_EQ(0, proa_future_set_error(c->f, c->error, "failed"));
}

void CancelFuture(void *arg) {
  Completer *c = static_cast<Completer *>(arg);
  EXPECT_TRUE(proa_future_cancel(c->f, nullptr));
}

TEST_F(Future, RunUntilCompleteReturnsResult) {
  Value val;
  Completer c{f, &val, 0};
  ASSERT_EQ(0, proa_call_later(loop, 0.01, CompleteWithResult, &c, nullptr));
  void *got = nullptr;
  EXPECT_EQ(0, proa_loop_run_until_complete(loop, f, &got));
  EXPECT_EQ(&val, got);
  EXPECT_FALSE(proa_loop_is_running(loop));
  EXPECT_EQ(0, val.frees);
  proa_future_unref(f);
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, RunUntilCompleteWithNullResult) {
  Completer c{f, nullptr, 0};
  ASSERT_EQ(0, proa_call_soon(loop, CompleteWithResult, &c, nullptr));
  EXPECT_EQ(0, proa_loop_run_until_complete(loop, f, nullptr));
}

TEST_F(Future, RunUntilCompleteReturnsError) {
  Completer c{f, nullptr, PROA_ETIMEDOUT};
  ASSERT_EQ(0, proa_call_soon(loop, CompleteWithError, &c, nullptr));
  void *got = &got;
  EXPECT_EQ(PROA_ETIMEDOUT, proa_loop_run_until_complete(loop, f, &got));
  EXPECT_STREQ("failed", proa_future_error_message(f));
}

TEST_F(Future, RunUntilCompleteReturnsCancelled) {
  Completer c{f, nullptr, 0};
  ASSERT_EQ(0, proa_call_soon(loop, CancelFuture, &c, nullptr));
  EXPECT_EQ(PROA_ECANCELED, proa_loop_run_until_complete(loop, f, nullptr));
}

TEST_F(Future, RunUntilCompleteRetrievesTheError) {
  ExceptionCapture exc;
  exc.Attach(loop);
  Completer c{f, nullptr, PROA_EIO};
  ASSERT_EQ(0, proa_call_soon(loop, CompleteWithError, &c, nullptr));
  EXPECT_EQ(PROA_EIO, proa_loop_run_until_complete(loop, f, nullptr));
  proa_future_unref(f);
  f = nullptr;
  ASSERT_EQ(0, RunOnce(loop));
  EXPECT_TRUE(exc.Calls().empty()) << "an awaited error was reported";
}

TEST_F(Future, RunUntilCompleteOnDoneFuture) {
  Value val;
  ASSERT_EQ(0, proa_future_set_result(f, &val, FreeValue));
  void *got = nullptr;
  EXPECT_EQ(0, proa_loop_run_until_complete(loop, f, &got));
  EXPECT_EQ(&val, got);
  proa_future_unref(f); // before `val` goes out of scope
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, RunUntilCompleteStoppedEarly) {
  ASSERT_EQ(0, proa_call_later(loop, 0.005, StopLoop, loop, nullptr));
  void *got = &got;
  EXPECT_EQ(PROA_ESTOPPED, proa_loop_run_until_complete(loop, f, &got));
  EXPECT_FALSE(proa_future_done(f));
  EXPECT_FALSE(proa_loop_is_running(loop));

  // The stale run_until_complete must not stop a later run: completing the
  // future now does not end this run_forever early.
  Value val;
  Completer c{f, &val, 0};
  int late = 0;
  ASSERT_EQ(0, proa_call_soon(loop, CompleteWithResult, &c, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0.05, IncrementInt, &late, nullptr));
  ASSERT_EQ(0, proa_call_later(loop, 0.06, StopLoop, loop, nullptr));
  ASSERT_EQ(0, RunWithWatchdog(loop));
  EXPECT_EQ(1, late);
  EXPECT_TRUE(proa_future_done(f));
  // And it can be awaited again.
  got = nullptr;
  EXPECT_EQ(0, proa_loop_run_until_complete(loop, f, &got));
  EXPECT_EQ(&val, got);
  proa_future_unref(f); // before `val` goes out of scope
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

TEST_F(Future, RunUntilCompleteStopBeforeRun) {
  // stop() before run_until_complete: one iteration, then ESTOPPED.
  int n = 0;
  ASSERT_EQ(0, proa_call_soon(loop, IncrementInt, &n, nullptr));
  ASSERT_EQ(0, proa_loop_stop(loop));
  EXPECT_EQ(PROA_ESTOPPED, proa_loop_run_until_complete(loop, f, nullptr));
  EXPECT_EQ(1, n);
}

TEST_F(Future, RunUntilCompleteFutureOfAnotherLoop) {
  Loop other;
  ASSERT_EQ(0, other.rc());
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_future_new(other, &g));
  ASSERT_EQ(0, proa_future_set_result(g, nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL, proa_loop_run_until_complete(loop, g, nullptr));
  EXPECT_FALSE(proa_loop_is_running(loop));
  proa_future_unref(g);
}

TEST_F(Future, RunUntilCompleteOnClosedLoop) {
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(PROA_ECLOSED, proa_loop_run_until_complete(loop, f, nullptr));
}

TEST_F(Future, NewOnClosedLoop) {
  ASSERT_EQ(0, proa_loop_close(loop));
  proa_future *g = nullptr;
  EXPECT_EQ(PROA_ECLOSED, proa_future_new(loop, &g));
}

TEST_F(Future, CompletedFromAnotherThreadViaThreadsafe) {
  Value val;
  Completer c{f, &val, 0};
  std::thread t([&] {
    SleepMs(20);
    EXPECT_EQ(0,
              proa_call_soon_threadsafe(loop, CompleteWithResult, &c, nullptr));
  });
  void *got = nullptr;
  int rc = proa_loop_run_until_complete(loop, f, &got);
  t.join();
  EXPECT_EQ(0, rc);
  EXPECT_EQ(&val, got);
  proa_future_unref(f); // before `val` goes out of scope
  f = nullptr;
  EXPECT_EQ(1, val.frees);
}

} // namespace
