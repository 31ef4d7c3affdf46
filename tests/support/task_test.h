// Helpers for the task and stream tests: C++ lambdas as task bodies, awaits
// and sleeps from inside a task, a gated executor that holds jobs until the
// test releases them, and a fixture with stream servers and clients.
#ifndef PROA_TASK_TEST_H
#define PROA_TASK_TEST_H

#include "net_test.h"

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef _WIN32
#include <sys/ioctl.h>
#endif

namespace proa_task_test {

using proa_net_test::Conn;
using proa_net_test::NetTest;
using proa_net_test::Server;

// A task body: returns 0 or a PROA_E* code, may store a result.
using Body = std::function<int(void **result)>;

inline int RunBody(void *arg, void **result) {
  return (*static_cast<Body *>(arg))(result);
}

// Drops a future reference at the end of a scope.
struct FutureUnref {
  void operator()(proa_future *f) const { proa_future_unref(f); }
};
using Fut = std::unique_ptr<proa_future, FutureUnref>;

// ---- inside a task ----

// Awaits a sleep of `seconds`; returns what proa_await returned.
inline int TaskSleep(proa_loop *loop, double seconds) {
  proa_future *f = nullptr;
  int rc = proa_sleep(loop, seconds, &f);
  if (rc != 0)
    return rc;
  rc = proa_await(f, nullptr);
  proa_future_unref(f);
  return rc;
}

// Sleeps in 1 ms steps until pred() holds (true) or `seconds` of loop time
// pass (false).
inline bool TaskUntil(proa_loop *loop, const std::function<bool()> &pred,
                      double seconds = 10.0) {
  double end = proa_loop_time(loop) + seconds;
  while (!pred()) {
    if (proa_loop_time(loop) > end)
      return false;
    if (TaskSleep(loop, 0.001) != 0)
      return false;
  }
  return true;
}

// Awaits a future whose result is a proa_bytes (a stream read), copies the
// bytes into *out and drops the reference. *message receives the error's
// message. Returns the await's outcome.
inline int AwaitBytes(proa_future *f, std::string *out,
                      std::string *message = nullptr) {
  void *v = nullptr;
  int rc = proa_await(f, &v);
  if (out != nullptr)
    out->clear();
  if (rc == 0 && v != nullptr && out != nullptr) {
    const proa_bytes *b = static_cast<const proa_bytes *>(v);
    out->assign(reinterpret_cast<const char *>(b->data), b->len);
  }
  if (message != nullptr) {
    const char *m = proa_future_error_message(f);
    *message = m != nullptr ? m : "";
  }
  proa_future_unref(f);
  return rc;
}

// The read operations, awaited: the immediate error, or the await's.
inline int Read(proa_stream *s, size_t n, std::string *out) {
  proa_future *f = nullptr;
  int rc = proa_stream_read(s, n, &f);
  return rc != 0 ? rc : AwaitBytes(f, out);
}
inline int ReadExactly(proa_stream *s, size_t n, std::string *out,
                       std::string *message = nullptr) {
  proa_future *f = nullptr;
  int rc = proa_stream_readexactly(s, n, &f);
  return rc != 0 ? rc : AwaitBytes(f, out, message);
}
inline int ReadUntil(proa_stream *s, const std::string &sep, std::string *out,
                     std::string *message = nullptr) {
  proa_future *f = nullptr;
  int rc = proa_stream_readuntil(s, sep.data(), sep.size(), &f);
  return rc != 0 ? rc : AwaitBytes(f, out, message);
}
inline int ReadLine(proa_stream *s, std::string *out) {
  proa_future *f = nullptr;
  int rc = proa_stream_readline(s, &f);
  return rc != 0 ? rc : AwaitBytes(f, out);
}

// Writes a string, then awaits drain.
inline int WriteDrain(proa_stream *s, const std::string &data) {
  int rc = proa_stream_write(s, data.data(), data.size());
  if (rc != 0)
    return rc;
  proa_future *f = nullptr;
  rc = proa_stream_drain(s, &f);
  if (rc != 0)
    return rc;
  rc = proa_await(f, nullptr);
  proa_future_unref(f);
  return rc;
}

// Closes the stream and awaits wait_closed.
inline int CloseWait(proa_stream *s) {
  proa_stream_close(s);
  proa_future *f = nullptr;
  int rc = proa_stream_wait_closed(s, &f);
  if (rc != 0)
    return rc;
  rc = proa_await(f, nullptr);
  proa_future_unref(f);
  return rc;
}

// ---- sockets ----

// Bytes the kernel holds unread on a socket (FIONREAD), or -1.
inline long Unread(intptr_t sock) {
#ifdef _WIN32
  u_long n = 0;
  if (ioctlsocket(static_cast<SOCKET>(sock), FIONREAD, &n) != 0)
    return -1;
  return static_cast<long>(n);
#else
  int n = 0;
  if (ioctl(static_cast<int>(sock), FIONREAD, &n) != 0)
    return -1;
  return n;
#endif
}

// ---- a gated executor ----

// An executor that keeps the jobs it accepts until Release() runs each on
// a thread of its own. Install it (or pass it) before use; destroy it after
// the loop is closed: the destructor joins the threads.
struct GateExecutor {
  proa_executor base; // first: the library sees a proa_executor
  std::mutex mu;
  std::vector<std::pair<proa_executor_job, void *>> jobs;
  std::vector<std::thread> threads;
  bool shut = false;
  int submitted = 0;

  GateExecutor() {
    base.submit = Submit;
    base.shutdown = Shutdown;
  }
  ~GateExecutor() {
    Shutdown(&base);
    for (std::thread &t : threads)
      t.join();
  }
  GateExecutor(const GateExecutor &) = delete;
  GateExecutor &operator=(const GateExecutor &) = delete;

  static int Submit(proa_executor *self, proa_executor_job job, void *ctx) {
    GateExecutor *g = reinterpret_cast<GateExecutor *>(self);
    std::lock_guard<std::mutex> lock(g->mu);
    if (g->shut)
      return PROA_ECLOSED;
    g->jobs.emplace_back(job, ctx);
    g->submitted++;
    return 0;
  }
  static void Shutdown(proa_executor *self) {
    GateExecutor *g = reinterpret_cast<GateExecutor *>(self);
    std::vector<std::pair<proa_executor_job, void *>> dropped;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      g->shut = true;
      dropped.swap(g->jobs);
    }
    for (auto &j : dropped)
      j.first(j.second, PROA_ECANCELED);
  }
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu);
    return jobs.size();
  }
  // Waits for the threads Release() started.
  void Join() {
    for (std::thread &t : threads)
      t.join();
    threads.clear();
  }
  // Runs every job held so far, each on a new thread.
  void Release() {
    std::vector<std::pair<proa_executor_job, void *>> run;
    {
      std::lock_guard<std::mutex> lock(mu);
      run.swap(jobs);
    }
    for (auto &j : run)
      threads.emplace_back([j] { j.first(j.second, 0); });
  }
};

// ---- the fixture ----

// NetTest (a loop whose exception handler fails the test on unexpected
// reports) plus task bodies written as lambdas, stream servers whose
// handlers are lambdas, and stream clients closed at the end of the test.
class TaskFixture : public NetTest {
protected:
  using Handler = std::function<int(proa_stream *)>;

  void TearDown() override {
    if (loop != nullptr) {
      for (proa_stream *s : streams_)
        proa_stream_close(s);
      for (proa_server *srv : stream_servers_) {
        proa_server_close(srv);
        proa_server_close_clients(srv);
        proa_future *f = nullptr;
        EXPECT_EQ(0, proa_server_wait_closed(srv, &f));
        if (f != nullptr) {
          EXPECT_EQ(0, proa_net_test::Await(loop, f))
              << "a stream server did not close";
          proa_future_unref(f);
        }
      }
      for (proa_stream *s : streams_) {
        proa_future *f = nullptr;
        EXPECT_EQ(0, proa_stream_wait_closed(s, &f));
        if (f != nullptr) {
          EXPECT_EQ(0, proa_net_test::Await(loop, f))
              << "a stream did not close";
          proa_future_unref(f);
        }
      }
    }
    for (proa_stream *s : streams_)
      proa_stream_unref(s);
    streams_.clear();
    for (proa_server *srv : stream_servers_)
      proa_server_unref(srv);
    stream_servers_.clear();
    NetTest::TearDown();
  }

  // Creates a task (through proa_create_task) running `body`. The caller
  // owns the returned reference; nullptr (and a failure) on error.
  proa_future *Spawn(Body body, const proa_task_options *opts = nullptr) {
    bodies_.push_back(std::move(body));
    proa_future *t = nullptr;
    int rc = proa_create_task(loop, RunBody, &bodies_.back(), opts, &t);
    EXPECT_EQ(0, rc) << "proa_create_task: " << proa_err_name(rc);
    return t;
  }

  // As Spawn, for a body that returns 0 (gtest assertions may return early).
  proa_future *SpawnV(std::function<void()> body,
                      const proa_task_options *opts = nullptr) {
    return Spawn(
        [body](void **) {
          body();
          return 0;
        },
        opts);
  }

  // proa_loop_run_until_complete(f) with a watchdog: a failure (and
  // PROA_ESTOPPED) if `f` is still pending after `seconds`.
  int Complete(proa_future *f, void **value = nullptr, double seconds = 10.0) {
    proa_test::Watchdog w = {loop, false};
    proa_handle *h = nullptr;
    EXPECT_EQ(0,
              proa_call_later(loop, seconds, proa_test::WatchdogFire, &w, &h));
    int rc = proa_loop_run_until_complete(loop, f, value);
    proa_handle_cancel(h);
    proa_handle_unref(h);
    if (w.fired)
      ADD_FAILURE() << "still pending after " << seconds << " s";
    return rc;
  }

  // Complete(), and if the task is still pending afterwards (a failure),
  // cancels it and closes every stream, so that the task ends before the
  // test's locals, which its body may use, go out of scope.
  int Finish(proa_future *t, void **value = nullptr, double seconds = 10.0) {
    int rc = Complete(t, value, seconds);
    if (!proa_future_done(t)) {
      allow_exceptions = true; // what the abandoned task leaves behind
      proa_future_cancel(t, nullptr);
      for (proa_stream *s : streams_)
        proa_stream_close(s);
      for (proa_server *srv : stream_servers_)
        proa_server_close_clients(srv);
      EXPECT_TRUE(Until([t] { return proa_future_done(t); }))
          << "the task did not end after it was cancelled";
    }
    return rc;
  }

  // A stream server made by `start` (proa_start_server or one of its kin,
  // given the handler and its argument), running `handler` for each
  // connection; awaited, and closed at the end of the test. Returns the
  // server (borrowed), or nullptr on failure.
  using StartFn =
      std::function<int(proa_stream_handler, void *, proa_future **)>;
  proa_server *StartServerWith(const StartFn &start, Handler handler) {
    handlers_.push_back(std::move(handler));
    proa_future *f = nullptr;
    int rc = start(RunHandler, &handlers_.back(), &f);
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    if (rc != 0)
      return nullptr;
    rc = proa_net_test::Await(loop, f);
    EXPECT_EQ(0, rc) << "start_server: " << proa_err_name(rc);
    void *v = nullptr;
    proa_server *srv = nullptr;
    if (rc == 0 && proa_future_result(f, &v) == 0 && v != nullptr) {
      srv = proa_server_ref(static_cast<proa_server *>(v));
      stream_servers_.push_back(srv);
    }
    proa_future_unref(f);
    return srv;
  }

  // A stream server on 127.0.0.1 (free port) running `handler` for each
  // connection. Returns the port, or 0 on failure.
  int StartServer(Handler handler, size_t limit = 0,
                  const proa_server_options *opts = nullptr) {
    proa_server *srv = StartServerWith(
        [this, limit, opts](proa_stream_handler h, void *arg, proa_future **f) {
          return proa_start_server(loop, h, arg, "127.0.0.1", 0, opts, limit,
                                   f);
        },
        std::move(handler));
    int port = 0;
    proa_sockaddr a;
    if (srv != nullptr && proa_server_sockname(srv, 0, &a) == 0)
      port = proa_sockaddr_port(&a);
    EXPECT_GT(port, 0);
    return port;
  }

  // A stream that `open` makes (proa_open_connection or one of its kin),
  // awaited from outside a task. The stream is closed and released at the
  // end of the test.
  proa_stream *OpenWith(const std::function<int(proa_future **)> &open) {
    proa_future *f = nullptr;
    int rc = open(&f);
    EXPECT_EQ(0, rc) << proa_err_name(rc);
    if (rc != 0)
      return nullptr;
    rc = proa_net_test::Await(loop, f);
    EXPECT_EQ(0, rc) << "open_connection: " << proa_err_name(rc);
    void *v = nullptr;
    proa_stream *s = nullptr;
    if (rc == 0 && proa_future_result(f, &v) == 0 && v != nullptr)
      s = Track(static_cast<proa_stream *>(v));
    proa_future_unref(f);
    return s;
  }

  // open_connection to 127.0.0.1:port, awaited from outside a task.
  proa_stream *Open(int port, size_t limit = 0) {
    return OpenWith([this, port, limit](proa_future **f) {
      return proa_open_connection(loop, "127.0.0.1", port, nullptr, limit, f);
    });
  }

  // Keeps a reference to `s` until the end of the test, then closes it.
  proa_stream *Track(proa_stream *s) {
    streams_.push_back(proa_stream_ref(s));
    return s;
  }

  // A client stream connected to a recording peer (net_test.h's Conn,
  // keeping what it receives). *peer receives the server side.
  proa_stream *OpenToPeer(Conn **peer, size_t limit = 0,
                          const std::function<void(Conn &)> &configure = {}) {
    *peer = nullptr;
    Server *srv = LocalServer([configure](Conn &c) {
      c.keep_data = true;
      if (configure)
        configure(c);
    });
    if (srv->port == 0)
      return nullptr;
    proa_stream *s = Open(srv->port, limit);
    EXPECT_TRUE(Until([srv] {
      return !srv->conns.empty() && srv->conns.back()->made != 0;
    })) << "the peer never saw the connection";
    if (!srv->conns.empty())
      *peer = srv->conns.back().get();
    return s;
  }

  // The client's socket.
  static intptr_t Sock(proa_stream *s) {
    return proa_transport_socket(proa_stream_transport(s));
  }

  // Inside a task: waits until what the peer wrote has left its buffer and
  // the client's kernel queue is empty, i.e. the client stream has read it.
  bool Settled(Conn *peer, proa_stream *s) {
    return TaskUntil(loop, [peer, s] {
      return proa_transport_get_write_buffer_size(peer->t) == 0 &&
             Unread(Sock(s)) == 0;
    });
  }

  static int PeerWrite(Conn *peer, const std::string &data) {
    return proa_transport_write(peer->t, data.data(), data.size());
  }

private:
  static int RunHandler(proa_stream *s, void *arg) {
    return (*static_cast<Handler *>(arg))(s);
  }

  std::list<Body> bodies_;
  std::list<Handler> handlers_;

protected:
  // Destroyed after TearDown closed the loop (a loop may use it as its
  // default executor until then).
  GateExecutor gate;

private:
  std::vector<proa_stream *> streams_;
  std::vector<proa_server *> stream_servers_;
};

} // namespace proa_task_test

#endif // PROA_TASK_TEST_H
