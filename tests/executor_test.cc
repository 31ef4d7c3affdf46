// Tests of executors: run_in_executor on the default pool, thread pools and
// their thread limit, custom executors, shutdown and loop close with jobs in
// flight.
#include "net_test.h"

#include "alloc_fail.h"

#include <condition_variable>
#include <mutex>
#include <set>

#if defined(__linux__)
#include <dirent.h>
#endif

using namespace proa_test;
using proa_net_test::RunIterations;
using proa_net_test::RunUntil;

namespace {

// A gate that jobs wait at until the test opens it; waits are bounded so a
// broken executor fails the test instead of hanging it.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void Open() {
    std::lock_guard<std::mutex> lock(m);
    open = true;
    cv.notify_all();
  }
  bool Wait(double seconds = 10.0) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds),
                       [this] { return open; });
  }
};

// Waits (on the test thread, the loop not running) until pred() holds.
bool WaitFor(const std::function<bool()> &pred, double seconds = 10.0) {
  double end = WallSeconds() + seconds;
  while (!pred()) {
    if (WallSeconds() > end)
      return false;
    SleepMs(1);
  }
  return true;
}

// What a job saw and did; shared by the job (worker thread) and the test.
struct Job {
  int value = 0; // stored as the result
  int error = 0; // returned instead of a result when non-zero
  Gate *gate = nullptr;
  std::atomic<int> runs{0};
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  std::thread::id thread;
};

// The result a job hands over; freeing it counts in `frees`.
struct Result {
  int value;
  std::atomic<int> *frees;
};

std::atomic<int> g_frees{0};

void FreeResult(void *p) {
  Result *r = static_cast<Result *>(p);
  r->frees->fetch_add(1);
  delete r;
}

int RunJob(void *arg, void **result) {
  Job *j = static_cast<Job *>(arg);
  j->thread = std::this_thread::get_id();
  j->runs.fetch_add(1);
  j->started = true;
  if (j->gate != nullptr) {
    EXPECT_TRUE(j->gate->Wait()) << "the gate never opened";
  }
  int rc = j->error;
  if (rc == 0)
    *result = new Result{j->value, &g_frees};
  j->finished = true;
  return rc;
}

int ResultValue(proa_future *f) {
  void *v = nullptr;
  int rc = proa_future_result(f, &v);
  EXPECT_EQ(0, rc) << proa_err_name(rc);
  return rc == 0 && v != nullptr ? static_cast<Result *>(v)->value : -1;
}

class executor : public LoopTest {
protected:
  void SetUp() override {
    LoopTest::SetUp();
    g_frees = 0;
  }
};

TEST_F(executor, ResultArrivesAndIsFreedOnce) {
  Job job;
  job.value = 42;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  ASSERT_NE(nullptr, f);
  EXPECT_EQ(0, proa_net_test::Await(loop, f));
  EXPECT_EQ(42, ResultValue(f));
  EXPECT_EQ(1, job.runs.load());
  EXPECT_NE(std::this_thread::get_id(), job.thread)
      << "the job ran on the loop thread";
  EXPECT_EQ(0, g_frees.load()) << "the future still owns its result";
  proa_future_unref(f);
  EXPECT_EQ(1, g_frees.load());
}

// The worker hands the outcome over with an allocation that fails: the
// future must complete all the same (it used to stay pending for good).
int RunJobThenFailNextAllocation(void *arg, void **result) {
  int rc = RunJob(arg, result);
  proa_alloc_fail::FailNth(1); // on this worker thread
  return rc;
}

TEST_F(executor, OutcomeArrivesEvenWithoutMemoryOnTheWorker) {
  PROA_NEED_ALLOC_FAIL();
  Job job;
  job.value = 7;
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_run_in_executor(loop, nullptr, RunJobThenFailNextAllocation,
                                    &job, FreeResult, &f));
  ASSERT_NE(nullptr, f);
  // The watchdog only decides a failure: the future never completing.
  EXPECT_EQ(0, proa_net_test::Await(loop, f));
  proa_alloc_fail::FailNth(0);
  EXPECT_EQ(7, ResultValue(f));
  proa_future_unref(f);
  EXPECT_EQ(1, g_frees.load());
}

TEST_F(executor, ErrorBecomesTheFutureError) {
  Job job;
  job.error = PROA_EIO;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  EXPECT_EQ(PROA_EIO, proa_net_test::Await(loop, f));
  EXPECT_FALSE(proa_future_cancelled(f));
  EXPECT_EQ(1, job.runs.load());
  proa_future_unref(f);
  EXPECT_EQ(0, g_frees.load()) << "no result was made, nothing to free";
}

TEST_F(executor, DoneCallbackRunsOnTheLoopThread) {
  Job job;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  struct Seen {
    int calls = 0;
    std::thread::id thread;
  } seen;
  ASSERT_EQ(0, proa_future_add_done_callback(
                   f,
                   [](proa_future *, void *arg) {
                     Seen *s = static_cast<Seen *>(arg);
                     s->calls++;
                     s->thread = std::this_thread::get_id();
                   },
                   &seen));
  EXPECT_TRUE(RunUntil(loop, [&] { return seen.calls > 0; }));
  EXPECT_EQ(1, seen.calls);
  EXPECT_EQ(std::this_thread::get_id(), seen.thread);
  proa_future_unref(f);
}

TEST_F(executor, CancelledFutureStillReleasesTheResult) {
  Gate gate;
  Job job;
  job.gate = &gate;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  ASSERT_TRUE(WaitFor([&] { return job.started.load(); }));
  EXPECT_TRUE(proa_future_cancel(f, "not needed"));
  gate.Open();
  // The job still runs to its end; its result goes to free_result once.
  EXPECT_TRUE(RunUntil(loop, [&] { return g_frees.load() > 0; }))
      << "the cancelled job's result was never released";
  RunIterations(loop, 3);
  EXPECT_EQ(1, g_frees.load());
  EXPECT_EQ(1, job.runs.load());
  EXPECT_TRUE(proa_future_cancelled(f));
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(f));
  proa_future_unref(f);
  EXPECT_EQ(1, g_frees.load());
}

#if defined(__linux__)
int ThreadCount() {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == nullptr)
    return -1;
  while (struct dirent *e = readdir(d))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}
#endif

TEST_F(executor, DefaultPoolStartsOnFirstUse) {
  // A fresh loop starts no thread; the first job does.
#if defined(__linux__)
  proa_loop_free(loop);
  loop = nullptr;
  int before = ThreadCount();
  ASSERT_GT(before, 0);
  ASSERT_EQ(0, proa_loop_new(&loop));
  RunIterations(loop, 2);
  // Workers of earlier tests' pools may still be exiting: the count can
  // only fall by itself.
  EXPECT_LE(ThreadCount(), before) << "proa_loop_new started threads";
#endif
  Gate gate;
  Job job;
  job.gate = &gate;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  ASSERT_TRUE(WaitFor([&] { return job.started.load(); }))
      << "the default pool never ran the job";
  EXPECT_NE(std::this_thread::get_id(), job.thread);
  gate.Open();
  EXPECT_EQ(0, proa_net_test::Await(loop, f));
  proa_future_unref(f);
}

TEST_F(executor, ManyJobsAllComplete) {
  const int n = 200;
  std::vector<Job> jobs(n);
  std::vector<proa_future *> fs(n, nullptr);
  for (int i = 0; i < n; i++) {
    jobs[i].value = i;
    ASSERT_EQ(0, proa_run_in_executor(loop, nullptr, RunJob, &jobs[i],
                                      FreeResult, &fs[i]));
  }
  EXPECT_TRUE(RunUntil(loop, [&] {
    for (proa_future *f : fs)
      if (!proa_future_done(f))
        return false;
    return true;
  }));
  for (int i = 0; i < n; i++) {
    EXPECT_EQ(i, ResultValue(fs[i]));
    EXPECT_EQ(1, jobs[i].runs.load());
    proa_future_unref(fs[i]);
  }
  EXPECT_EQ(n, g_frees.load());
}

TEST_F(executor, BadArguments) {
  Job job;
  proa_future *f = reinterpret_cast<proa_future *>(&job); // overwritten
  EXPECT_EQ(PROA_EINVAL,
            proa_run_in_executor(loop, nullptr, nullptr, &job, nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EINVAL, proa_run_in_executor(loop, nullptr, RunJob, &job,
                                              nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL,
            proa_run_in_executor(nullptr, nullptr, RunJob, &job, nullptr, &f));
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(PROA_ECLOSED,
            proa_run_in_executor(loop, nullptr, RunJob, &job, nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_ECLOSED, proa_loop_set_default_executor(loop, nullptr));
  SleepMs(20);
  EXPECT_EQ(0, job.runs.load());
}

// ---- thread pools ----

// Counts how many jobs run at once; each waits at a barrier of `parties`.
struct Concurrency {
  std::mutex m;
  std::condition_variable cv;
  int parties = 2;
  int arrived = 0;
  int generation = 0;
  int running = 0;
  int max_running = 0;
  int barrier_timeouts = 0;
  std::vector<int> order; // the ids of the jobs, in the order they started
};

struct PoolJob {
  Concurrency *c;
  int id;
  bool barrier;
};

int RunPoolJob(void *arg, void **result) {
  PoolJob *j = static_cast<PoolJob *>(arg);
  Concurrency *c = j->c;
  std::unique_lock<std::mutex> lock(c->m);
  c->order.push_back(j->id);
  c->running++;
  c->max_running = std::max(c->max_running, c->running);
  if (j->barrier) {
    int gen = c->generation;
    if (++c->arrived == c->parties) {
      c->arrived = 0;
      c->generation++;
      c->cv.notify_all();
    } else if (!c->cv.wait_for(lock, std::chrono::seconds(10),
                               [&] { return c->generation != gen; })) {
      c->barrier_timeouts++;
    }
  } else {
    lock.unlock();
    SleepMs(2); // long enough for a second worker to overlap, if any
    lock.lock();
  }
  c->running--;
  *result = nullptr;
  return 0;
}

bool AllDone(const std::vector<proa_future *> &fs) {
  for (proa_future *f : fs)
    if (!proa_future_done(f))
      return false;
  return true;
}

TEST_F(executor, ThreadPoolHonoursMaxThreads) {
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(2, &pool));
  ASSERT_NE(nullptr, pool);
  Concurrency c;
  c.parties = 2;
  std::vector<PoolJob> jobs;
  for (int i = 0; i < 4; i++)
    jobs.push_back({&c, i, true});
  std::vector<proa_future *> fs(4, nullptr);
  for (int i = 0; i < 4; i++)
    ASSERT_EQ(0, proa_run_in_executor(loop, pool, RunPoolJob, &jobs[i], nullptr,
                                      &fs[i]));
  EXPECT_TRUE(RunUntil(
      loop, [&] { return AllDone(fs); }, 30.0));
  for (proa_future *f : fs) {
    EXPECT_EQ(0, proa_future_error(f));
    proa_future_unref(f);
  }
  std::lock_guard<std::mutex> lock(c.m);
  // Two workers: the pairs meet at the barrier, and never three at once.
  EXPECT_EQ(0, c.barrier_timeouts) << "two jobs never ran at the same time";
  EXPECT_EQ(2, c.max_running);
  EXPECT_EQ(4u, c.order.size());
  proa_thread_pool_free(pool);
}

TEST_F(executor, ThreadPoolOfOneRunsJobsInOrder) {
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(1, &pool));
  Concurrency c;
  std::vector<PoolJob> jobs;
  for (int i = 0; i < 6; i++)
    jobs.push_back({&c, i, false});
  std::vector<proa_future *> fs(jobs.size(), nullptr);
  for (size_t i = 0; i < jobs.size(); i++)
    ASSERT_EQ(0, proa_run_in_executor(loop, pool, RunPoolJob, &jobs[i], nullptr,
                                      &fs[i]));
  EXPECT_TRUE(RunUntil(loop, [&] { return AllDone(fs); }));
  for (proa_future *f : fs) {
    EXPECT_EQ(0, proa_future_error(f));
    proa_future_unref(f);
  }
  std::lock_guard<std::mutex> lock(c.m);
  EXPECT_EQ(1, c.max_running);
  EXPECT_EQ((std::vector<int>{0, 1, 2, 3, 4, 5}), c.order);
  proa_thread_pool_free(pool);
}

TEST_F(executor, ThreadPoolSharedByTwoLoops) {
  // submit is called on the threads of several loops at once.
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(3, &pool));
  const int n = 50;
  auto run = [pool](proa_loop *l, std::vector<Job> *jobs, int *ok) {
    std::vector<proa_future *> fs(jobs->size(), nullptr);
    for (size_t i = 0; i < jobs->size(); i++)
      if (proa_run_in_executor(l, pool, RunJob, &(*jobs)[i], FreeResult,
                               &fs[i]) != 0)
        return;
    if (!RunUntil(
            l, [&] { return AllDone(fs); }, 20.0))
      return;
    for (size_t i = 0; i < fs.size(); i++) {
      void *v = nullptr;
      if (proa_future_result(fs[i], &v) == 0 && v != nullptr &&
          static_cast<Result *>(v)->value == (*jobs)[i].value)
        ++*ok;
      proa_future_unref(fs[i]);
    }
  };
  std::vector<Job> mine(n), theirs(n);
  for (int i = 0; i < n; i++) {
    mine[i].value = i;
    theirs[i].value = 1000 + i;
  }
  int ok_mine = 0, ok_theirs = 0;
  proa_loop *other = nullptr;
  ASSERT_EQ(0, proa_loop_new(&other));
  std::thread th([&] { run(other, &theirs, &ok_theirs); });
  run(loop, &mine, &ok_mine);
  th.join();
  EXPECT_EQ(0, proa_loop_free(other));
  EXPECT_EQ(n, ok_mine);
  EXPECT_EQ(n, ok_theirs);
  EXPECT_EQ(2 * n, g_frees.load());
  proa_thread_pool_free(pool);
}

TEST_F(executor, ThreadPoolNewBadArguments) {
  EXPECT_EQ(PROA_EINVAL, proa_thread_pool_new(2, nullptr));
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(0, &pool)); // CPUs + 4, at most 32
  ASSERT_NE(nullptr, pool);
  EXPECT_NE(nullptr, pool->submit);
  EXPECT_NE(nullptr, pool->shutdown);
  proa_thread_pool_free(pool);
  proa_thread_pool_free(nullptr);
}

TEST_F(executor, ShutdownDropsQueuedJobs) {
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(1, &pool));
  Gate gate;
  Job running, queued1, queued2;
  running.gate = &gate;
  running.value = 7;
  proa_future *fr = nullptr, *f1 = nullptr, *f2 = nullptr;
  ASSERT_EQ(
      0, proa_run_in_executor(loop, pool, RunJob, &running, FreeResult, &fr));
  ASSERT_TRUE(WaitFor([&] { return running.started.load(); }));
  ASSERT_EQ(
      0, proa_run_in_executor(loop, pool, RunJob, &queued1, FreeResult, &f1));
  ASSERT_EQ(
      0, proa_run_in_executor(loop, pool, RunJob, &queued2, FreeResult, &f2));
  pool->shutdown(pool);
  // The queued jobs end cancelled without running.
  EXPECT_TRUE(RunUntil(
      loop, [&] { return proa_future_done(f1) && proa_future_done(f2); }));
  EXPECT_TRUE(proa_future_cancelled(f1));
  EXPECT_TRUE(proa_future_cancelled(f2));
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(f1));
  // After shutdown the pool refuses new jobs.
  Job late;
  proa_future *fl = nullptr;
  int rc = proa_run_in_executor(loop, pool, RunJob, &late, FreeResult, &fl);
  EXPECT_NE(0, rc);
  EXPECT_EQ(nullptr, fl);
  if (fl != nullptr)
    proa_future_unref(fl);
  // The running job is not stopped: it finishes and delivers.
  EXPECT_FALSE(proa_future_done(fr));
  gate.Open();
  EXPECT_EQ(0, proa_net_test::Await(loop, fr));
  EXPECT_EQ(7, ResultValue(fr));
  EXPECT_EQ(1, running.runs.load());
  EXPECT_EQ(0, queued1.runs.load());
  EXPECT_EQ(0, queued2.runs.load());
  EXPECT_EQ(0, late.runs.load());
  proa_future_unref(fr);
  proa_future_unref(f1);
  proa_future_unref(f2);
  EXPECT_EQ(1, g_frees.load());
  proa_thread_pool_free(pool);
}

TEST_F(executor, ThreadPoolFreeDropsQueuedJobs) {
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(1, &pool));
  Gate gate;
  Job running, queued;
  running.gate = &gate;
  proa_future *fr = nullptr, *fq = nullptr;
  ASSERT_EQ(
      0, proa_run_in_executor(loop, pool, RunJob, &running, FreeResult, &fr));
  ASSERT_TRUE(WaitFor([&] { return running.started.load(); }));
  ASSERT_EQ(0,
            proa_run_in_executor(loop, pool, RunJob, &queued, FreeResult, &fq));
  proa_thread_pool_free(pool); // does not wait for the running job
  EXPECT_TRUE(RunUntil(loop, [&] { return proa_future_done(fq); }));
  EXPECT_TRUE(proa_future_cancelled(fq));
  gate.Open();
  EXPECT_EQ(0, proa_net_test::Await(loop, fr));
  EXPECT_EQ(0, queued.runs.load());
  proa_future_unref(fr);
  proa_future_unref(fq);
  EXPECT_EQ(1, g_frees.load());
}

// ---- loop close with jobs in flight ----

struct DoneFlag {
  int calls = 0;
};

void CountDone(proa_future *, void *arg) {
  static_cast<DoneFlag *>(arg)->calls++;
}

TEST_F(executor, LoopCloseWithJobsInFlight) {
  // A pool of one as the default: one job runs, one waits in the queue.
  proa_executor *pool = nullptr;
  ASSERT_EQ(0, proa_thread_pool_new(1, &pool));
  ASSERT_EQ(0, proa_loop_set_default_executor(loop, pool));
  Gate gate;
  Job running, queued;
  running.gate = &gate;
  proa_future *fr = nullptr, *fq = nullptr;
  ASSERT_EQ(0, proa_run_in_executor(loop, nullptr, RunJob, &running, FreeResult,
                                    &fr));
  ASSERT_TRUE(WaitFor([&] { return running.started.load(); }));
  ASSERT_EQ(
      0, proa_run_in_executor(loop, nullptr, RunJob, &queued, FreeResult, &fq));
  DoneFlag done_r, done_q;
  ASSERT_EQ(0, proa_future_add_done_callback(fr, CountDone, &done_r));
  ASSERT_EQ(0, proa_future_add_done_callback(fq, CountDone, &done_q));

  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_TRUE(proa_future_cancelled(fr));
  EXPECT_TRUE(proa_future_cancelled(fq));
  // The running job finishes after the close; its outcome must not reach
  // the closed loop, and its result is released exactly once.
  gate.Open();
  EXPECT_TRUE(WaitFor([&] { return g_frees.load() > 0; }))
      << "the result of a job that finished after close was never freed";
  SleepMs(20);
  EXPECT_EQ(1, g_frees.load());
  EXPECT_EQ(1, running.runs.load());
  EXPECT_EQ(0, queued.runs.load()) << "a job dropped at close still ran";
  EXPECT_EQ(PROA_ECLOSED, proa_loop_run_forever(loop));
  EXPECT_EQ(0, done_r.calls);
  EXPECT_EQ(0, done_q.calls);
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(fr));
  EXPECT_EQ(PROA_ECANCELED, proa_future_error(fq));
  proa_future_unref(fr);
  proa_future_unref(fq);
  proa_thread_pool_free(pool); // the loop does not own it
}

TEST_F(executor, LoopCloseWithDefaultPoolJobRunning) {
  Gate gate;
  Job running;
  running.gate = &gate;
  proa_future *f = nullptr;
  ASSERT_EQ(
      0, proa_run_in_executor(loop, nullptr, RunJob, &running, FreeResult, &f));
  ASSERT_TRUE(WaitFor([&] { return running.started.load(); }));
  DoneFlag done;
  ASSERT_EQ(0, proa_future_add_done_callback(f, CountDone, &done));
  // Free the loop entirely: the job's call keeps what it needs alive.
  proa_loop_ref(loop);
  ASSERT_EQ(0, proa_loop_free(loop));
  EXPECT_TRUE(proa_future_cancelled(f));
  gate.Open();
  EXPECT_TRUE(WaitFor([&] { return running.finished.load(); }));
  EXPECT_TRUE(WaitFor([&] { return g_frees.load() > 0; }));
  SleepMs(20);
  EXPECT_EQ(1, g_frees.load());
  EXPECT_EQ(0, done.calls);
  proa_future_unref(f);
  proa_loop_unref(loop);
  loop = nullptr;
}

// ---- a custom executor ----

// Jobs wait in a queue until the test runs them on a thread of its own.
struct ManualExecutor {
  proa_executor base; // first: the library sees &base
  std::mutex m;
  std::vector<std::pair<proa_executor_job, void *>> jobs;
  int submits = 0;
  int shutdowns = 0;
  int submit_error = 0;
  bool shut = false;

  ManualExecutor() {
    base.submit = Submit;
    base.shutdown = Shutdown;
  }
  static int Submit(proa_executor *self, proa_executor_job job, void *ctx) {
    ManualExecutor *e = reinterpret_cast<ManualExecutor *>(self);
    std::lock_guard<std::mutex> lock(e->m);
    e->submits++;
    if (e->submit_error != 0)
      return e->submit_error;
    if (e->shut)
      return PROA_ECLOSED;
    e->jobs.emplace_back(job, ctx);
    return 0;
  }
  static void Shutdown(proa_executor *self) {
    ManualExecutor *e = reinterpret_cast<ManualExecutor *>(self);
    std::vector<std::pair<proa_executor_job, void *>> dropped;
    {
      std::lock_guard<std::mutex> lock(e->m);
      e->shutdowns++;
      e->shut = true;
      dropped.swap(e->jobs);
    }
    for (auto &j : dropped)
      j.first(j.second, PROA_ECANCELED);
  }
  // Runs every queued job on a new thread and waits for it.
  size_t RunQueued() {
    std::vector<std::pair<proa_executor_job, void *>> run;
    {
      std::lock_guard<std::mutex> lock(m);
      run.swap(jobs);
    }
    std::thread th([&run] {
      for (auto &j : run)
        j.first(j.second, 0);
    });
    th.join();
    return run.size();
  }
};

TEST_F(executor, CustomDefaultExecutorRunsJobs) {
  ManualExecutor ex;
  ASSERT_EQ(0, proa_loop_set_default_executor(loop, &ex.base));
  Job job;
  job.value = 5;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  EXPECT_EQ(1, ex.submits);
  RunIterations(loop, 2);
  EXPECT_FALSE(proa_future_done(f)) << "completed before the executor ran it";
  EXPECT_EQ(0, job.runs.load());
  EXPECT_EQ(1u, ex.RunQueued());
  EXPECT_EQ(0, proa_net_test::Await(loop, f));
  EXPECT_EQ(5, ResultValue(f));
  proa_future_unref(f);

  // The resolver runs on the default executor too.
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_getaddrinfo(loop, "127.0.0.1", "80", nullptr, &g));
  EXPECT_EQ(2, ex.submits);
  EXPECT_EQ(1u, ex.RunQueued());
  EXPECT_EQ(0, proa_net_test::Await(loop, g));
  proa_future_unref(g);

  // Back to the built-in pool: the custom executor sees no more jobs.
  ASSERT_EQ(0, proa_loop_set_default_executor(loop, nullptr));
  Job job2;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job2, FreeResult, &f));
  EXPECT_EQ(0, proa_net_test::Await(loop, f));
  proa_future_unref(f);
  EXPECT_EQ(2, ex.submits);
  EXPECT_EQ(1, job2.runs.load());
  EXPECT_EQ(0, ex.shutdowns);
  ASSERT_EQ(0, proa_loop_free(loop));
  loop = nullptr;
}

TEST_F(executor, LoopCloseShutsDownTheCustomExecutor) {
  ManualExecutor ex;
  ASSERT_EQ(0, proa_loop_set_default_executor(loop, &ex.base));
  Job job;
  proa_future *f = nullptr;
  ASSERT_EQ(0,
            proa_run_in_executor(loop, nullptr, RunJob, &job, FreeResult, &f));
  DoneFlag done;
  ASSERT_EQ(0, proa_future_add_done_callback(f, CountDone, &done));
  // A lookup dropped the same way releases its request (ASan checks).
  proa_future *g = nullptr;
  ASSERT_EQ(0, proa_getaddrinfo(loop, "localhost", "80", nullptr, &g));
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(1, ex.shutdowns) << "close must call the executor's shutdown";
  EXPECT_TRUE(proa_future_cancelled(g));
  proa_future_unref(g);
  EXPECT_EQ(0, job.runs.load()) << "a dropped job ran";
  EXPECT_TRUE(proa_future_cancelled(f));
  EXPECT_EQ(0u, ex.RunQueued());
  EXPECT_EQ(0, done.calls);
  proa_future_unref(f);
  EXPECT_EQ(0, g_frees.load());
  ASSERT_EQ(0, proa_loop_free(loop));
  loop = nullptr;
  EXPECT_EQ(1, ex.shutdowns) << "shutdown called more than once";
}

TEST_F(executor, CustomExecutorSubmitError) {
  ManualExecutor ex;
  ex.submit_error = PROA_EBUSY;
  Job job;
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EBUSY,
            proa_run_in_executor(loop, &ex.base, RunJob, &job, FreeResult, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(1, ex.submits);
  RunIterations(loop, 2);
  EXPECT_EQ(0, job.runs.load());
  EXPECT_EQ(0, g_frees.load());
  // Passed explicitly, it is not the loop's: close does not shut it down.
  ASSERT_EQ(0, proa_loop_free(loop));
  loop = nullptr;
  EXPECT_EQ(0, ex.shutdowns);
}

} // namespace
