/* The task tables: what an await costs, and 10,000 concurrent TCP round
 * trips written as tasks versus as callbacks (proa only: libuv has no
 * tasks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <proa.h>

#include "bench.h"

#define MICRO_ROUNDS 3
#define CHAIN_N 1000000     /* call_soon chain links */
#define FCHAIN_N 500000     /* future chain links */
#define DONE_N 20000000     /* awaits of a done future */
#define AWAIT_N 500000      /* awaits of a future completed by call_soon */
#define SPAWN_FEW_N 200000  /* short tasks, SPAWN_FEW_ALIVE at a time */
#define SPAWN_FEW_ALIVE 50  /* fewer than proa keeps stacks for */
#define SPAWN_MANY_N 10000  /* short tasks, all alive at once */
#define RT_SIZE 1024        /* the message of a connection round trip */
#define RT_SETTLE_US 100000 /* for the server to finish closing after a run */
#define RT_ROUNDS 3         /* at most; fewer with --rounds */

/* ---- part 1: the cost of an await ---- */

typedef struct micro {
  proa_loop *loop;
  long left;
  proa_future *done;       /* an already completed future */
  long alive;              /* spawned tasks not yet finished */
  proa_future *batch_done; /* completed by the last of them */
  long errors;
} micro;

/* One measured run: CPU and wall time of the whole process. */
typedef struct micro_result {
  double cpu_ns, wall_ns; /* per operation, best round */
} micro_result;

static void chain_step(void *arg) {
  micro *m = arg;
  if (--m->left > 0)
    proa_call_soon(m->loop, chain_step, m, NULL);
  else
    proa_loop_stop(m->loop);
}

static void complete(void *arg) { proa_future_set_result(arg, NULL, NULL); }

static void fchain_next(micro *m);

/* The done callback: drops the finished future, starts the next link. */
static void fchain_step(proa_future *f, void *arg) {
  micro *m = arg;
  proa_future_unref(f);
  if (--m->left > 0)
    fchain_next(m);
  else
    proa_loop_stop(m->loop);
}

/* The callback version of one await: a future that call_soon completes,
 * and a done callback that goes on from there. */
static void fchain_next(micro *m) {
  proa_future *f;
  if (proa_future_new(m->loop, &f) != 0)
    abort();
  proa_call_soon(m->loop, complete, f, NULL);
  proa_future_add_done_callback(f, fchain_step, m);
}

static void fchain_start(void *arg) { fchain_next(arg); }

static int await_done_task(void *arg, void **result) {
  micro *m = arg;
  (void)result;
  for (; m->left > 0; m->left--)
    if (proa_await(m->done, NULL) != 0)
      return PROA_EUNKNOWN;
  return 0;
}

static int await_soon_task(void *arg, void **result) {
  micro *m = arg;
  (void)result;
  for (; m->left > 0; m->left--) {
    proa_future *f;
    int err = proa_future_new(m->loop, &f);
    if (!err)
      err = proa_call_soon(m->loop, complete, f, NULL);
    if (!err)
      err = proa_await(f, NULL);
    proa_future_unref(f);
    if (err)
      return err;
  }
  return 0;
}

/* A short-lived task: one await of a future that call_soon completes. */
static int spawned_task(void *arg, void **result) {
  micro *m = arg;
  proa_future *f;
  int err = proa_future_new(m->loop, &f);
  (void)result;
  if (!err)
    err = proa_call_soon(m->loop, complete, f, NULL);
  if (!err)
    err = proa_await(f, NULL);
  proa_future_unref(f);
  m->errors += err != 0;
  if (--m->alive == 0)
    proa_future_set_result(m->batch_done, NULL, NULL);
  return 0; /* a failure is counted; nobody reads the task's outcome */
}

/* Spawns m->left tasks, `batch` of them alive at a time. */
static int spawn_run(micro *m, long batch) {
  while (m->left > 0 && !m->errors) {
    long i, k = m->left < batch ? m->left : batch;
    int err = proa_future_new(m->loop, &m->batch_done);
    m->alive = k;
    for (i = 0; i < k && !err; i++) {
      proa_future *task;
      err = proa_create_task(m->loop, spawned_task, m, NULL, &task);
      proa_future_unref(task); /* the task keeps itself alive */
    }
    if (!err)
      err = proa_loop_run_until_complete(m->loop, m->batch_done, NULL);
    proa_future_unref(m->batch_done);
    if (err)
      return err;
    m->left -= k;
  }
  return m->errors ? PROA_EUNKNOWN : 0;
}

enum micro_kind {
  CALL_SOON_CHAIN,
  FUTURE_CHAIN,
  AWAIT_DONE,
  AWAIT_SOON,
  SPAWN_FEW,
  SPAWN_MANY,
  NMICRO
};

/* Runs one benchmark of n operations on a fresh loop; 0 or -1. */
static int micro_once(enum micro_kind kind, long n, double *cpu, double *wall) {
  micro m = {NULL, n, NULL, 0, NULL, 0};
  proa_future *task = NULL;
  double c0, t0;
  int err;
  if (proa_loop_new(&m.loop) != 0 || proa_future_new(m.loop, &m.done) != 0)
    return -1;
  proa_future_set_result(m.done, NULL, NULL);
  c0 = bench_self_cpu_ns();
  t0 = bench_now();
  if (kind == CALL_SOON_CHAIN || kind == FUTURE_CHAIN) {
    err = proa_call_soon(
        m.loop, kind == CALL_SOON_CHAIN ? chain_step : fchain_start, &m, NULL);
    if (!err)
      err = proa_loop_run_forever(m.loop);
  } else if (kind == SPAWN_FEW || kind == SPAWN_MANY) {
    err = spawn_run(&m, kind == SPAWN_FEW ? SPAWN_FEW_ALIVE : n);
  } else {
    err = proa_create_task(
        m.loop, kind == AWAIT_DONE ? await_done_task : await_soon_task, &m,
        NULL, &task);
    if (!err)
      err = proa_loop_run_until_complete(m.loop, task, NULL);
  }
  *cpu = (bench_self_cpu_ns() - c0) / (double)n;
  *wall = (bench_now() - t0) * 1e9 / (double)n;
  proa_future_unref(task);
  proa_future_unref(m.done);
  proa_loop_free(m.loop);
  return err || m.left > 0 ? -1 : 0;
}

static int micro_run(enum micro_kind kind, long n, micro_result *out) {
  int r;
  out->cpu_ns = out->wall_ns = -1;
  for (r = 0; r < MICRO_ROUNDS; r++) {
    double cpu, wall;
    if (micro_once(kind, n, &cpu, &wall) != 0)
      return -1;
    if (out->cpu_ns < 0 || cpu < out->cpu_ns)
      out->cpu_ns = cpu;
    if (out->wall_ns < 0 || wall < out->wall_ns)
      out->wall_ns = wall;
  }
  return 0;
}

static const char *const micro_labels[NMICRO] = {
    "callbacks: call_soon chain (each callback schedules the next)",
    "callbacks: future chain (call_soon completes a future, its done "
    "callback starts the next link)",
    "task: await of a done future (returns at once: no switch)",
    "task: await of a future completed by call_soon (out and back: 2 "
    "switches)",
    "task: create, one await as above, end; 50 alive at a time",
    "task: the same, all alive at once"};

static void print_micro_row(int k, long n, const micro_result *r) {
  char num[32], sw[16] = "-";
  if (k == AWAIT_SOON)
    snprintf(sw, sizeof sw, "%.1f", r->cpu_ns / 2);
  printf("| %s | %s | %.1f | %.1f | %s |\n", micro_labels[k],
         bench_fmt_int((double)n, num, sizeof num), r->cpu_ns, r->wall_ns, sw);
}

static void print_micro(const long *counts, const micro_result *res) {
  const micro_result *chain = &res[CALL_SOON_CHAIN],
                     *fchain = &res[FUTURE_CHAIN];
  const micro_result *soon = &res[AWAIT_SOON];
  int k;
  printf("\n## Tasks (proa only: libuv has no tasks)\n\n"
         "Each micro-benchmark runs on a fresh loop (epoll) in the driver "
         "process, %d rounds; the table gives the best round's process CPU "
         "time and wall time divided by the operations (awaits, links, "
         "tasks).\n",
         MICRO_ROUNDS);
  printf("\n### Tasks: the cost of an await (ns per operation; lower is "
         "better)\n\n");
  printf("| operation | operations | ns per op (CPU) | ns per op (wall) | ns "
         "per switch |\n|---|---:|---:|---:|---:|\n");
  for (k = 0; k < NMICRO; k++)
    print_micro_row(k, k == SPAWN_MANY ? SPAWN_MANY_N * 1L : counts[k],
                    &res[k]);
  printf("\nThe await costs %.1f ns more than one link of the call_soon "
         "chain, but it takes two loop iterations and a future where the "
         "link takes one iteration. Against its exact callback equivalent, "
         "the future chain (same future, same two iterations), the task "
         "adds %.1f ns per await, %.1f ns per switch (%.2fx). A short task "
         "among 50 costs less than one await of a lone task because the 50 "
         "share each loop iteration (and its poll for I/O). Among %d alive "
         "at once it costs %.1fx as much: proa pools up to 1,024 stacks; "
         "beyond them each task maps and guards a fresh stack, and "
         "first touches its pages.\n",
         soon->cpu_ns - chain->cpu_ns, soon->cpu_ns - fchain->cpu_ns,
         (soon->cpu_ns - fchain->cpu_ns) / 2,
         fchain->cpu_ns > 0 ? soon->cpu_ns / fchain->cpu_ns : 0.0, SPAWN_MANY_N,
         res[SPAWN_FEW].cpu_ns > 0
             ? res[SPAWN_MANY].cpu_ns / res[SPAWN_FEW].cpu_ns
             : 0.0);
}

static int micro_bench(void) {
  static const long counts[NMICRO] = {CHAIN_N, FCHAIN_N,    DONE_N,
                                      AWAIT_N, SPAWN_FEW_N, SPAWN_MANY_N};
  micro_result res[NMICRO];
  int k;
  for (k = 0; k < NMICRO; k++)
    if (micro_run((enum micro_kind)k, counts[k], &res[k]) != 0) {
      fprintf(stderr, "task micro-benchmark %d failed\n", k);
      return -1;
    }
  fprintf(stderr, "task micro-benchmarks done\n");
  print_micro(counts, res);
  return 0;
}

/* ---- part 2: concurrent connections, tasks versus callbacks ---- */

typedef struct rt_run {
  proa_loop *loop;
  int port;
  char msg[RT_SIZE];
  int remaining; /* round trips not finished */
  int failed;
  proa_future *all_done;
} rt_run;

static void rt_finished(rt_run *r, bool ok) {
  if (!ok)
    r->failed++;
  if (--r->remaining == 0)
    proa_future_set_result(r->all_done, NULL, NULL);
}

/* The stream that open_connection made (a reference of our own). */
static int open_stream(rt_run *r, proa_stream **out) {
  proa_future *f;
  void *v = NULL;
  int err = proa_open_connection(r->loop, "127.0.0.1", r->port, NULL, 0, &f);
  if (err)
    return err;
  err = proa_await(f, &v);
  if (!err)
    *out = proa_stream_ref(v);
  proa_future_unref(f);
  return err;
}

/* The echo, checked byte for byte. */
static int read_echo(rt_run *r, proa_stream *s) {
  proa_future *f;
  void *v = NULL;
  int err = proa_stream_readexactly(s, RT_SIZE, &f);
  if (err)
    return err;
  err = proa_await(f, &v);
  if (!err && memcmp(((proa_bytes *)v)->data, r->msg, RT_SIZE) != 0)
    err = PROA_EPROTO;
  proa_future_unref(f);
  return err;
}

/* open_connection, write, readexactly, close and wait_closed. */
static int rt_task(void *arg, void **result) {
  rt_run *r = arg;
  proa_stream *s = NULL;
  proa_future *f;
  int err = open_stream(r, &s);
  (void)result;
  if (!err)
    err = proa_stream_write(s, r->msg, RT_SIZE);
  if (!err)
    err = read_echo(r, s);
  if (s) {
    proa_stream_close(s);
    if (proa_stream_wait_closed(s, &f) == 0) {
      proa_await(f, NULL);
      proa_future_unref(f);
    }
    proa_stream_unref(s);
  }
  rt_finished(r, err == 0);
  return 0; /* a failure is counted; nobody reads the task's outcome */
}

static int start_tasks(rt_run *r, int n) {
  int i;
  for (i = 0; i < n; i++) {
    proa_future *task;
    if (proa_create_task(r->loop, rt_task, r, NULL, &task) != 0)
      return -1;
    proa_future_unref(task); /* the task keeps itself alive */
  }
  return 0;
}

/* The same round trip as a protocol: write on connection_made, close
 * once the whole echo is in, count in connection_lost. */
typedef struct rt_conn {
  rt_run *r;
  proa_transport *t;
  size_t got;
  bool ok;
} rt_conn;

static void conn_made(void *self, proa_transport *t) {
  rt_conn *c = self;
  c->t = t;
  if (proa_transport_write(t, c->r->msg, RT_SIZE) != 0)
    proa_transport_abort(t);
}

static void conn_data(void *self, const void *data, size_t len) {
  rt_conn *c = self;
  if (c->got + len > RT_SIZE || memcmp(data, c->r->msg + c->got, len) != 0)
    c->ok = false;
  c->got += len;
  if (c->got >= RT_SIZE)
    proa_transport_close(c->t);
}

static bool conn_eof(void *self) {
  (void)self;
  return false;
}

static void conn_lost(void *self, int error) {
  rt_conn *c = self;
  rt_finished(c->r, c->ok && !error && c->got == RT_SIZE);
  free(c);
}

static const proa_protocol rt_protocol = {
    conn_made, conn_data, conn_eof, conn_lost, NULL, NULL, NULL, NULL};

/* A connection that failed never gets connection_made nor _lost. */
static void conn_connected(proa_future *f, void *arg) {
  if (proa_future_error(f) != 0) {
    rt_conn *c = arg;
    rt_finished(c->r, false);
    free(c);
  }
  proa_future_unref(f);
}

static int start_conns(rt_run *r, int n) {
  int i;
  for (i = 0; i < n; i++) {
    rt_conn *c = calloc(1, sizeof *c);
    proa_future *f;
    if (!c)
      return -1;
    c->r = r;
    c->ok = true;
    if (proa_create_connection(r->loop, &rt_protocol, c, "127.0.0.1", r->port,
                               NULL, &f) != 0 ||
        proa_future_add_done_callback(f, conn_connected, c) != 0)
      return -1;
  }
  return 0;
}

/* TcpExt ListenOverflows from /proc/net/netstat: SYNs dropped because an
 * accept queue was full (each costs the client a 1 s retransmission). */
static long listen_overflows(void) {
  char names[4096], values[4096];
  long result = -1;
  FILE *f = fopen("/proc/net/netstat", "r");
  while (f && fgets(names, sizeof names, f) &&
         fgets(values, sizeof values, f)) {
    char *sn, *sv, *n = strtok_r(names, " \n", &sn);
    char *v = strtok_r(values, " \n", &sv);
    for (; n && v;
         n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
      if (strcmp(n, "ListenOverflows") == 0)
        result = atol(v);
  }
  if (f)
    fclose(f);
  return result;
}

typedef struct rt_result {
  double seconds;       /* from the first connect to the last close */
  double client_cpu_us; /* per round trip, the driver process */
  double server_cpu_us; /* per round trip, the echo server */
  long overflows;       /* SYNs dropped by the server's full accept queue */
  int failed;
} rt_result;

static int rt_once(const bench_server *srv, bool tasks, int n, rt_result *out) {
  rt_run r;
  double t0, c0, s0, s1;
  long o0 = listen_overflows();
  int err, i;
  memset(out, 0, sizeof *out);
  memset(&r, 0, sizeof r);
  for (i = 0; i < RT_SIZE; i++)
    r.msg[i] = (char)('a' + i % 23);
  r.port = srv->port;
  r.remaining = n;
  if (proa_loop_new(&r.loop) != 0 || proa_future_new(r.loop, &r.all_done))
    return -1;
  s0 = bench_cpu_ns(srv->pid);
  c0 = bench_self_cpu_ns();
  t0 = bench_now();
  err = tasks ? start_tasks(&r, n) : start_conns(&r, n);
  if (!err)
    err = proa_loop_run_until_complete(r.loop, r.all_done, NULL);
  out->seconds = bench_now() - t0;
  out->client_cpu_us = (bench_self_cpu_ns() - c0) / 1e3 / n;
  usleep(RT_SETTLE_US); /* the server closes its ends */
  s1 = bench_cpu_ns(srv->pid);
  out->server_cpu_us = s0 >= 0 && s1 >= 0 ? (s1 - s0) / 1e3 / n : -1;
  out->overflows = o0 >= 0 ? listen_overflows() - o0 : -1;
  out->failed = r.failed + (err ? 1 : 0);
  proa_future_unref(r.all_done);
  proa_loop_free(r.loop);
  return err ? -1 : 0;
}

/*
 * One run against a freshly forked server: its port is new, so the
 * client's TIME_WAIT sockets from earlier runs (the client closes first)
 * never collide with the new connections; with the same port, connect()
 * must search for a free 4-tuple and costs twice as much.
 */
static int rt_fresh(bool tasks, int n, rt_result *out) {
  bench_server srv;
  int rc;
  if (bench_server_start(&srv, BENCH_PROA_EPOLL, BENCH_TCP_ECHO, 0) != 0)
    return -1;
  rc = rt_once(&srv, tasks, n, out);
  bench_server_stop(&srv);
  return rc;
}

static void rt_keep_best(rt_result *best, const rt_result *res, bool first) {
  best->failed += res->failed;
  best->overflows += res->overflows;
  if (first || res->seconds < best->seconds)
    best->seconds = res->seconds;
  if (first || res->client_cpu_us < best->client_cpu_us)
    best->client_cpu_us = res->client_cpu_us;
  if (first || res->server_cpu_us < best->server_cpu_us)
    best->server_cpu_us = res->server_cpu_us;
}

/* The best round of each variant, rounds interleaved. */
static void rt_bench(const bench_options *o, rt_result best[2]) {
  int r, k, rounds = o->rounds < RT_ROUNDS ? o->rounds : RT_ROUNDS;
  memset(best, 0, 2 * sizeof *best);
  for (r = 0; r < rounds; r++)
    for (k = 0; k < 2; k++) {
      rt_result res;
      if (rt_fresh(k == 0, o->task_conns, &res) != 0)
        res.failed++;
      rt_keep_best(&best[k], &res, r == 0);
    }
  fprintf(stderr, "%d concurrent round trips done\n", o->task_conns);
}

static void print_rt_row(const char *name, const rt_result *x, int n) {
  char rate[32];
  printf("| %s | %.0f | %s | %.2f | %.2f | %ld | %d |\n", name,
         x->seconds * 1e3, bench_fmt_int(n / x->seconds, rate, sizeof rate),
         x->client_cpu_us, x->server_cpu_us, x->overflows, x->failed);
}

static void print_rt(const bench_options *o, const rt_result best[2]) {
  char r1[16], r2[16], r3[16], r4[16];
  int n = o->task_conns;
  printf("\n### Tasks: %d concurrent TCP echo round trips (%d B), tasks vs "
         "callbacks (best of %d rounds)\n\n",
         n, RT_SIZE, o->rounds < RT_ROUNDS ? o->rounds : RT_ROUNDS);
  printf("Every round trip starts at once: connect, write %d B, read the "
         "echo, close, on the driver's proa loop (epoll) against a proa "
         "echo server (epoll) in its own process, a new one for each run. "
         "Tasks: one task each "
         "(proa_open_connection, proa_stream_write, proa_stream_readexactly, "
         "proa_stream_close + wait_closed; default 256 KiB stacks). "
         "Callbacks: proa_create_connection with a protocol that writes in "
         "connection_made and closes once the echo is in; a round trip "
         "counts at connection_lost. Time: from the first connect to the "
         "last close. Overflows: SYNs the kernel dropped because the "
         "server's accept queue (backlog 4096) was full, summed over the "
         "rounds; each costs its connection a 1 s retransmission.\n\n",
         RT_SIZE);
  printf("| client | total time (ms) | round trips/s | client CPU per round "
         "trip (us) | server CPU per round trip (us) | listen overflows | "
         "failed |\n|---|---:|---:|---:|---:|---:|---:|\n");
  print_rt_row("tasks", &best[0], n);
  print_rt_row("callbacks", &best[1], n);
  printf("| tasks / callbacks | %s | %s | %s | %s | | |\n",
         bench_fmt_ratio(best[0].seconds, best[1].seconds, r1, sizeof r1),
         bench_fmt_ratio(best[1].seconds, best[0].seconds, r2, sizeof r2),
         bench_fmt_ratio(best[0].client_cpu_us, best[1].client_cpu_us, r3,
                         sizeof r3),
         bench_fmt_ratio(best[0].server_cpu_us, best[1].server_cpu_us, r4,
                         sizeof r4));
}

int bench_micro(const char *kind, long n) {
  static const char *const names[NMICRO] = {"call-soon-chain", "future-chain",
                                            "await-done",      "await-soon",
                                            "spawn-few",       "spawn-many"};
  double cpu, wall;
  int k;
  for (k = 0; k < NMICRO && strcmp(kind, names[k]) != 0; k++)
    ;
  if (k == NMICRO || n <= 0 ||
      micro_once((enum micro_kind)k, n, &cpu, &wall) != 0)
    return -1;
  printf("%s x %ld: %.1f ns per op (CPU), %.1f ns (wall)\n", kind, n, cpu,
         wall);
  return 0;
}

int bench_roundtrips(int port, bool tasks, int n) {
  bench_server srv;
  rt_result res;
  int rc;
  memset(&srv, 0, sizeof srv);
  srv.port = port;
  srv.pid = -1; /* the server's CPU time is not measured */
  rc = rt_once(&srv, tasks, n, &res);
  printf("%d round trips with %s: %.0f ms, client CPU %.2f us per round "
         "trip, %ld listen overflows, %d failed\n",
         n, tasks ? "tasks" : "callbacks", res.seconds * 1e3, res.client_cpu_us,
         res.overflows, res.failed);
  return rc;
}

int bench_tasks(const bench_options *o) {
  rt_result best[2];
  if (micro_bench() != 0)
    return -1;
  rt_bench(o, best);
  print_rt(o, best);
  fflush(stdout);
  return 0;
}
