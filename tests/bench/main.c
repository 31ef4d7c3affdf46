/* The benchmark driver: the TCP echo and idle tables, the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"

#define MAX_SERVER_SECONDS 600.0 /* for the serve commands */
#define REPORT_TIMEOUT 60.0      /* seconds to wait for a server's report */
#define MAX_ROUNDS 16

static const char *const impl_args[BENCH_NIMPLS] = {"proa-epoll", "proa-poll",
                                                    "libuv"};

static const char *fmt_size(size_t size) {
  return size == 1024    ? "1 KiB"
         : size == 10240 ? "10 KiB"
         : size == 65536 ? "64 KiB"
                         : "100 KiB";
}

/* ---- the echo benchmarks: TCP, and local (Unix) sockets ---- */

#define NSIZES 3
#define NCONNS 3

/* What one echo benchmark runs: its cells and the title of its tables. */
typedef struct echo_spec {
  bench_kind kind;
  const char *title;
  size_t sizes[NSIZES]; /* 0-ended when fewer */
  int conns[NCONNS];    /* 0-ended when fewer */
} echo_spec;

static const echo_spec tcp_spec = {
    BENCH_TCP_ECHO, "TCP echo", {1024, 10240, 102400}, {1, 10, 100}};
static const echo_spec local_spec = {BENCH_LOCAL_ECHO,
                                     "Unix-socket echo (libuv: uv_pipe)",
                                     {1024, 65536, 0},
                                     {1, 10, 0}};

typedef struct echo_table {
  const echo_spec *spec;
  bench_cell cells[NSIZES][NCONNS][BENCH_NIMPLS];
} echo_table;

static void print_rate_row(int conns, size_t size, const bench_cell *cells) {
  char a[48], b[48], c[48], r1[16], r2[16];
  double uv = bench_cell_best(&cells[BENCH_LIBUV]);
  printf("| %d | %s | %s | %s | %s | %s | %s |\n", conns, fmt_size(size),
         bench_fmt_cell(&cells[BENCH_PROA_EPOLL], a, sizeof a),
         bench_fmt_cell(&cells[BENCH_PROA_POLL], b, sizeof b),
         bench_fmt_cell(&cells[BENCH_LIBUV], c, sizeof c),
         bench_fmt_ratio(bench_cell_best(&cells[BENCH_PROA_EPOLL]), uv, r1,
                         sizeof r1),
         bench_fmt_ratio(bench_cell_best(&cells[BENCH_PROA_POLL]), uv, r2,
                         sizeof r2));
}

static void print_cpu_row(int conns, size_t size, const bench_cell *cells) {
  char a[16], b[16], c[16], r1[16], r2[16];
  double uv = cells[BENCH_LIBUV].cpu;
  printf("| %d | %s | %s | %s | %s | %s | %s |\n", conns, fmt_size(size),
         bench_fmt_cpu(&cells[BENCH_PROA_EPOLL], a, sizeof a),
         bench_fmt_cpu(&cells[BENCH_PROA_POLL], b, sizeof b),
         bench_fmt_cpu(&cells[BENCH_LIBUV], c, sizeof c),
         bench_fmt_ratio(cells[BENCH_PROA_EPOLL].cpu, uv, r1, sizeof r1),
         bench_fmt_ratio(cells[BENCH_PROA_POLL].cpu, uv, r2, sizeof r2));
}

static void print_echo_table(const echo_table *t, bool cpu) {
  const echo_spec *sp = t->spec;
  int i, j;
  if (cpu)
    printf("\n### %s: server CPU time per round trip, user + system, best "
           "round (us; lower is better)\n\n",
           sp->title);
  else
    printf("\n### %s: round trips per second (higher is better)\n\n",
           sp->title);
  printf("| conns | message | proa epoll | proa poll | libuv | epoll / libuv "
         "| poll / libuv |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < NSIZES && sp->sizes[i]; i++)
    for (j = 0; j < NCONNS && sp->conns[j]; j++)
      if (t->cells[i][j][0].n || t->cells[i][j][1].n || t->cells[i][j][2].n)
        (cpu ? print_cpu_row : print_rate_row)(sp->conns[j], sp->sizes[i],
                                               t->cells[i][j]);
  fflush(stdout);
}

/* Rounds alternate between the servers so that drift hits all alike. */
static void echo_cell(const bench_server *servers, const bench_options *o,
                      int conns, size_t size, bench_cell *cells) {
  int r, i;
  for (r = 0; r < o->rounds; r++) {
    for (i = 0; i < BENCH_NIMPLS; i++) {
      bench_echo_result res = BENCH_ECHO_RESULT_INIT;
      if (!o->impls[i])
        continue;
      if (bench_echo(&servers[i], conns, size, o->warmup, o->duration, &res) !=
          0)
        res.errors = 1;
      bench_cell_add(&cells[i], &res);
    }
  }
  fprintf(stderr, "echo %d x %s done\n", conns, fmt_size(size));
}

static bool cell_wanted(const bench_options *o, const echo_spec *sp, int i,
                        int j) {
  return sp->sizes[i] && sp->conns[j] &&
         (!o->only_size || o->only_size == sp->sizes[i]) &&
         (!o->only_conns || o->only_conns == sp->conns[j]);
}

static int echo_bench(const bench_options *o, const echo_spec *sp) {
  bench_server servers[BENCH_NIMPLS];
  echo_table *t = calloc(1, sizeof *t);
  int i, j, rc = t ? 0 : -1;
  memset(servers, 0, sizeof servers);
  for (i = 0; i < BENCH_NIMPLS && !rc; i++)
    if (o->impls[i])
      rc = bench_server_start(&servers[i], (bench_impl)i, sp->kind, 0);
  for (i = 0; i < NSIZES && !rc; i++)
    for (j = 0; j < NCONNS; j++)
      if (cell_wanted(o, sp, i, j))
        echo_cell(servers, o, sp->conns[j], sp->sizes[i], t->cells[i][j]);
  for (i = 0; i < BENCH_NIMPLS; i++)
    bench_server_stop(&servers[i]);
  if (!rc) {
    t->spec = sp;
    print_echo_table(t, false);
    print_echo_table(t, true);
  }
  free(t);
  return rc;
}

/* ---- the idle-connection memory benchmark ---- */

typedef struct idle_result {
  double per_conn; /* RSS growth per connection, bytes */
  double accept_ms, drop_ms;
  bool ok;
} idle_result;

/* Opens n connections, reads the "full" report, resets them all. */
static void idle_measure(bench_server *s, int n, int *fds, idle_result *out) {
  char line[256];
  long rss0, rss1;
  double t0 = bench_now(), t1, t_full, t_empty;
  int opened = bench_idle_open(s, n, fds);
  if (opened < n) {
    fprintf(stderr, "only %d of %d connections opened\n", opened, n);
    bench_idle_close(fds, opened);
    return;
  }
  if (bench_server_read_line(s, line, sizeof line, REPORT_TIMEOUT) != 0 ||
      sscanf(line, "full %ld %ld %lf", &rss0, &rss1, &t_full) != 3) {
    bench_idle_close(fds, n);
    return;
  }
  t1 = bench_now();
  bench_idle_close(fds, n);
  out->per_conn = (double)(rss1 - rss0) / n;
  out->accept_ms = (t_full - t0) * 1e3;
  out->ok = bench_server_read_line(s, line, sizeof line, REPORT_TIMEOUT) == 0 &&
            sscanf(line, "empty %lf", &t_empty) == 1;
  out->drop_ms = out->ok ? (t_empty - t1) * 1e3 : 0;
}

static void idle_run(bench_impl impl, int n, idle_result *out) {
  bench_server s;
  int *fds = malloc((size_t)n * sizeof *fds);
  memset(out, 0, sizeof *out);
  if (fds && bench_server_start(&s, impl, BENCH_TCP_ECHO, n) == 0) {
    idle_measure(&s, n, fds, out);
    bench_server_stop(&s);
  }
  free(fds);
}

static void print_idle_row(bench_impl impl, const idle_result *r,
                           const idle_result *uv) {
  char ratio[16];
  if (!r->ok) {
    printf("| %s | failed | - | - | - |\n", bench_impl_names[impl]);
    return;
  }
  printf("| %s | %.0f | %s | %.0f | %.0f |\n", bench_impl_names[impl],
         r->per_conn,
         bench_fmt_ratio(r->per_conn, uv->ok ? uv->per_conn : 0, ratio,
                         sizeof ratio),
         r->accept_ms, r->drop_ms);
}

static void idle_bench(const bench_options *o) {
  idle_result res[BENCH_NIMPLS];
  int i;
  memset(res, 0, sizeof res);
  for (i = 0; i < BENCH_NIMPLS; i++)
    if (o->impls[i])
      idle_run((bench_impl)i, o->idle_n, &res[i]);
  printf("\n### %d idle connections: server RSS growth\n\n", o->idle_n);
  printf("| server | bytes per connection | vs libuv | connect+accept all "
         "(ms) | reset+close all (ms) |\n|---|---:|---:|---:|---:|\n");
  for (i = 0; i < BENCH_NIMPLS; i++)
    if (o->impls[i])
      print_idle_row((bench_impl)i, &res[i], &res[BENCH_LIBUV]);
  fflush(stdout);
}

/* ---- set-up and command line ---- */

/* Raises the descriptor limit to the hard limit; returns the new limit. */
static long raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

static int parse_impl(const char *name) {
  int i;
  for (i = 0; i < BENCH_NIMPLS; i++)
    if (strcmp(name, impl_args[i]) == 0)
      return i;
  return -1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: proa_bench [--warmup S] [--duration S] [--rounds N]\n"
          "                  [--idle N] [--task-conns N]\n"
          "                  [--echo-only | --idle-only | --udp-only | "
          "--tasks-only |\n"
          "                   --local-only]\n"
          "                  [--conns 1|10|100] [--size "
          "1024|10240|65536|102400]\n"
          "                  [--impl proa-epoll|proa-poll|libuv]...\n"
          "       proa_bench serve IMPL        (prints its port; SIGTERM "
          "stops it)\n"
          "       proa_bench serve-udp IMPL echo|sink\n"
          "       proa_bench client PORT CONNS BYTES SECONDS [SERVER_PID]\n"
          "       proa_bench udp-client PORT CLIENTS BYTES SECONDS "
          "[SERVER_PID]\n"
          "       proa_bench udp-pummel PORT SENDERS BYTES SECONDS "
          "[SERVER_PID]\n"
          "       proa_bench roundtrips tasks|callbacks PORT N\n"
          "       proa_bench micro call-soon-chain|future-chain|await-done|"
          "await-soon N\n");
  return 2;
}

/* --echo-only, --idle-only, --udp-only, --tasks-only, --local-only. */
static bool parse_only(bench_options *o, const char *a) {
  bool echo = strcmp(a, "--echo-only") == 0,
       idle = strcmp(a, "--idle-only") == 0;
  bool udp = strcmp(a, "--udp-only") == 0,
       tasks = strcmp(a, "--tasks-only") == 0;
  bool local = strcmp(a, "--local-only") == 0;
  if (!echo && !idle && !udp && !tasks && !local)
    return false;
  o->echo = echo;
  o->idle = idle;
  o->udp = udp;
  o->tasks = tasks;
  o->local = local;
  return true;
}

/* Parses one option at argv[*i]; false if it is not understood. */
static bool parse_option(bench_options *o, int argc, char **argv, int *i,
                         bool *impl_given) {
  const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
  int impl;
  if (parse_only(o, a))
    return true;
  if (!v)
    return false;
  ++*i;
  if (strcmp(a, "--warmup") == 0)
    o->warmup = atof(v);
  else if (strcmp(a, "--duration") == 0)
    o->duration = atof(v);
  else if (strcmp(a, "--rounds") == 0)
    o->rounds = atoi(v);
  else if (strcmp(a, "--idle") == 0)
    o->idle_n = atoi(v);
  else if (strcmp(a, "--task-conns") == 0)
    o->task_conns = atoi(v);
  else if (strcmp(a, "--conns") == 0)
    o->only_conns = atoi(v);
  else if (strcmp(a, "--size") == 0)
    o->only_size = (size_t)atol(v);
  else if (strcmp(a, "--impl") == 0 && (impl = parse_impl(v)) >= 0) {
    if (!*impl_given)
      memset(o->impls, 0, sizeof o->impls);
    *impl_given = true;
    o->impls[impl] = true;
  } else
    return false;
  return true;
}

static bool parse_options(bench_options *o, int argc, char **argv) {
  bool impl_given = false;
  int i;
  o->warmup = 0.2;
  o->duration = 0.5;
  o->rounds = 4;
  o->idle_n = 10000;
  o->task_conns = 10000;
  o->only_conns = 0;
  o->only_size = 0;
  o->echo = o->idle = o->udp = o->tasks = o->local = true;
  for (i = 0; i < BENCH_NIMPLS; i++)
    o->impls[i] = true;
  for (i = 1; i < argc; i++)
    if (!parse_option(o, argc, argv, &i, &impl_given))
      return false;
  return o->warmup >= 0 && o->duration > 0 && o->rounds > 0 &&
         o->rounds <= MAX_ROUNDS && o->idle_n > 0 && o->task_conns > 0;
}

/* `serve IMPL` / `serve-udp IMPL echo|sink`: a server on its own, for
 * strace, perf or callgrind. A sink prints its count when it stops. */
static int serve_command(const char *name, const char *kind) {
  bench_shared shared = {0};
  bench_server_cfg cfg = {STDOUT_FILENO, 0, MAX_SERVER_SECONDS, BENCH_TCP_ECHO,
                          &shared};
  int impl = parse_impl(name), rc;
  if (impl < 0)
    return usage();
  if (kind && strcmp(kind, "echo") == 0)
    cfg.kind = BENCH_UDP_ECHO;
  else if (kind && strcmp(kind, "sink") == 0)
    cfg.kind = BENCH_UDP_SINK;
  else if (kind)
    return usage();
  raise_nofile();
  rc = bench_run_server((bench_impl)impl, &cfg);
  if (cfg.kind == BENCH_UDP_SINK)
    printf("received %ld\n", shared.received);
  return rc;
}

/* `client PORT CONNS BYTES SECONDS [PID]` and `udp-client ...`: the load
 * generator on its own; with the server's PID it also measures the
 * server's CPU time. */
static int client_command(bool udp, int argc, char **argv) {
  bench_echo_result res = BENCH_ECHO_RESULT_INIT;
  int pid = argc > 4 ? atoi(argv[4]) : 0, rc;
  bench_server server = {0};
  if (udp)
    rc = bench_udp_pingpong(atoi(argv[0]), pid, atoi(argv[1]),
                            (size_t)atol(argv[2]), 0.25, atof(argv[3]), &res);
  else {
    server.port = atoi(argv[0]);
    server.pid = pid;
    rc = bench_echo(&server, atoi(argv[1]), (size_t)atol(argv[2]), 0.25,
                    atof(argv[3]), &res);
  }
  if (rc != 0)
    return 1;
  printf("%.0f round trips/s, %ld in all", res.rate, res.total);
  if (res.cpu_us >= 0)
    printf(", server CPU %.2f us per round trip", res.cpu_us);
  if (res.lost)
    printf(", %ld datagrams lost", res.lost);
  printf("%s\n", res.errors || !res.verified ? " (errors)" : "");
  return 0;
}

/* `udp-pummel PORT SENDERS BYTES SECONDS [PID]`: the senders on their own
 * (what arrived is what the sink prints when it stops). */
static int pummel_command(int argc, char **argv) {
  bench_pummel_result res;
  int pid = argc > 4 ? atoi(argv[4]) : 0;
  if (bench_udp_pummel(atoi(argv[0]), pid, NULL, atoi(argv[1]),
                       (size_t)atol(argv[2]), 0.25, atof(argv[3]), &res) != 0)
    return 1;
  printf("%ld datagrams sent (%.0f/s)", res.sent, res.sent_rate);
  if (res.cpu_ns >= 0)
    printf(", receiver CPU %.0f ms", res.cpu_ns / 1e6);
  printf("\n");
  return 0;
}

static void print_setup(const bench_options *o, long nofile) {
  printf("## proa vs libuv %s (%ld CPUs, loopback)\n\n", uv_version_string(),
         sysconf(_SC_NPROCESSORS_ONLN));
  if (o->echo)
    printf("Echo: the uvloop method (each connection sends a message, waits "
           "for the whole echo, sends again); each server is its own "
           "process, the load generator another. Each cell: %d rounds x "
           "(%.2f s warm-up + %.2f s measured) per server, the servers' "
           "rounds interleaved. Round trips: the best round (and how much "
           "lower the worst one was). CPU: the server process's CPU time "
           "(/proc/PID/schedstat) in its best round, divided by its round "
           "trips. ",
           o->rounds, o->warmup, o->duration);
  printf("RLIMIT_NOFILE %ld.\n", nofile);
}

static int run_command(int argc, char **argv, bool *handled) {
  *handled = true;
  if (argc == 3 && strcmp(argv[1], "serve") == 0)
    return serve_command(argv[2], NULL);
  if (argc == 4 && strcmp(argv[1], "serve-udp") == 0)
    return serve_command(argv[2], argv[3]);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "client") == 0)
    return client_command(false, argc - 2, argv + 2);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "udp-client") == 0)
    return client_command(true, argc - 2, argv + 2);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "udp-pummel") == 0)
    return pummel_command(argc - 2, argv + 2);
  if (argc == 4 && strcmp(argv[1], "micro") == 0)
    return bench_micro(argv[2], atol(argv[3])) == 0 ? 0 : usage();
  if (argc == 5 && strcmp(argv[1], "roundtrips") == 0 &&
      (strcmp(argv[2], "tasks") == 0 || strcmp(argv[2], "callbacks") == 0)) {
    raise_nofile();
    return bench_roundtrips(atoi(argv[3]), argv[2][0] == 't', atoi(argv[4]));
  }
  *handled = false;
  return 0;
}

int main(int argc, char **argv) {
  bench_options o;
  long nofile;
  bool handled;
  int rc = run_command(argc, argv, &handled);
  if (handled)
    return rc;
  if (!parse_options(&o, argc, argv))
    return usage();
  nofile = raise_nofile();
  if (o.idle && nofile < o.idle_n + 64) {
    fprintf(stderr, "RLIMIT_NOFILE hard limit %ld: idle test cut to %ld\n",
            nofile, nofile - 64);
    o.idle_n = (int)(nofile - 64);
  }
  if (o.tasks && nofile < o.task_conns + 64) {
    fprintf(stderr, "RLIMIT_NOFILE hard limit %ld: task test cut to %ld\n",
            nofile, nofile - 64);
    o.task_conns = (int)(nofile - 64);
  }
  print_setup(&o, nofile);
  if (o.echo && echo_bench(&o, &tcp_spec) != 0)
    return 1;
  if (o.idle)
    idle_bench(&o);
  if (o.udp && bench_udp(&o) != 0)
    return 1;
  if (o.tasks && bench_tasks(&o) != 0)
    return 1;
  if (o.local && echo_bench(&o, &local_spec) != 0)
    return 1;
  return 0;
}
