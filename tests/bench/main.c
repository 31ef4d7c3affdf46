/* The benchmark driver: forks the servers, drives them, prints Markdown. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"

#define MAX_SERVER_SECONDS 600.0 /* a forgotten server stops by itself */
#define REPORT_TIMEOUT 60.0      /* seconds to wait for a server's report */
#define MAX_ROUNDS 16

static const char *const impl_names[BENCH_NIMPLS] = {"proa epoll", "proa poll",
                                                     "libuv"};
static const char *const impl_args[BENCH_NIMPLS] = {"proa-epoll", "proa-poll",
                                                    "libuv"};

typedef struct options {
  double warmup, duration;
  int rounds;
  int idle_n;
  int only_conns;   /* 0, or the one concurrency to run */
  size_t only_size; /* 0, or the one message size to run */
  bool echo, idle;
  bool impls[BENCH_NIMPLS];
} options;

/* A forked server and the read end of its report pipe. */
typedef struct server {
  pid_t pid;
  int fd;
  int port;
  char buf[512];
  size_t len;
} server;

/* ---- running a server ---- */

static int run_server(bench_impl impl, const bench_server_cfg *cfg) {
  if (impl == BENCH_LIBUV)
    return bench_serve_uv(cfg);
  return bench_serve_proa(impl == BENCH_PROA_EPOLL ? "epoll" : "poll", cfg);
}

/* Reads one report line, waiting up to `timeout` seconds; -1 if none. */
static int read_line(server *s, char *out, size_t size, double timeout) {
  double end = bench_now() + timeout;
  for (;;) {
    char *nl = memchr(s->buf, '\n', s->len);
    struct pollfd p = {s->fd, POLLIN, 0};
    ssize_t n;
    if (nl) {
      size_t len = (size_t)(nl - s->buf);
      snprintf(out, size, "%.*s", (int)len, s->buf);
      memmove(s->buf, nl + 1, s->len - len - 1);
      s->len -= len + 1;
      return 0;
    }
    if (bench_now() > end || poll(&p, 1, 100) < 0 || s->len == sizeof s->buf)
      return -1;
    n = p.revents ? read(s->fd, s->buf + s->len, sizeof s->buf - s->len) : -2;
    if (n == 0 || (n == -1 && errno != EINTR))
      return -1;
    s->len += n > 0 ? (size_t)n : 0;
  }
}

static void child_main(bench_impl impl, int report_fd, int idle_target) {
  bench_server_cfg cfg = {report_fd, idle_target, MAX_SERVER_SECONDS};
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
  _exit(run_server(impl, &cfg));
}

/* SIGTERM (the server stops its loop), then SIGKILL if it lingers. */
static void server_stop(server *s) {
  int i, status;
  if (s->pid <= 0)
    return;
  kill(s->pid, SIGTERM);
  for (i = 0; i < 100 && waitpid(s->pid, &status, WNOHANG) == 0; i++)
    usleep(50000);
  if (i == 100) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
  }
  close(s->fd);
  s->pid = 0;
}

/* Forks a server and waits for its "port" line; 0 or -1. */
static int server_start(server *s, bench_impl impl, int idle_target) {
  int fds[2];
  char line[128];
  memset(s, 0, sizeof *s);
  if (pipe2(fds, O_CLOEXEC) != 0)
    return -1;
  fflush(NULL);
  s->pid = fork();
  if (s->pid == 0) {
    close(fds[0]);
    child_main(impl, fds[1], idle_target);
  }
  close(fds[1]);
  s->fd = fds[0];
  if (s->pid < 0 || read_line(s, line, sizeof line, REPORT_TIMEOUT) != 0 ||
      sscanf(line, "port %d", &s->port) != 1) {
    fprintf(stderr, "%s server did not start\n", impl_names[impl]);
    server_stop(s);
    return -1;
  }
  return 0;
}

/* ---- formatting ---- */

/* 1234567.8 -> "1,234,568". */
static const char *fmt_int(double v, char *buf, size_t size) {
  char digits[32], *p = buf;
  int len = snprintf(digits, sizeof digits, "%.0f", v), i;
  for (i = 0; i < len && (size_t)(p - buf) + 2 < size; i++) {
    if (i > 0 && (len - i) % 3 == 0)
      *p++ = ',';
    *p++ = digits[i];
  }
  *p = '\0';
  return buf;
}

static const char *fmt_ratio(double a, double b, char *buf, size_t size) {
  if (a > 0 && b > 0)
    snprintf(buf, size, "%.2f", a / b);
  else
    snprintf(buf, size, "-");
  return buf;
}

static const char *fmt_size(size_t size) {
  return size == 1024 ? "1 KiB" : size == 10240 ? "10 KiB" : "100 KiB";
}

/* ---- the echo benchmark ---- */

#define NSIZES 3
#define NCONNS 3
static const size_t echo_sizes[NSIZES] = {1024, 10240, 102400};
static const int echo_conns[NCONNS] = {1, 10, 100};

/* One server's results in one cell, over the rounds. */
typedef struct cell {
  double min, max; /* round trips per second */
  double cpu;      /* least server CPU per round trip (us), -1 unknown */
  int n;
  bool bad; /* a connection failed or an echo did not match */
} cell;

typedef struct echo_table {
  cell cells[NSIZES][NCONNS][BENCH_NIMPLS];
} echo_table;

static void cell_add(cell *c, const bench_echo_result *r) {
  if (c->n == 0 || r->rate < c->min)
    c->min = r->rate;
  if (c->n == 0 || r->rate > c->max)
    c->max = r->rate;
  if (c->n == 0 || (r->cpu_us >= 0 && (c->cpu < 0 || r->cpu_us < c->cpu)))
    c->cpu = r->cpu_us;
  c->n++;
  c->bad = c->bad || r->errors || !r->verified;
}

/* The best round: interference from other processes only slows runs down,
 * so the fastest round is the estimate least disturbed by it. */
static double cell_best(const cell *c) { return c->n ? c->max : 0; }

/* "41,230 (-3%)": the best round, and how far below it the worst was. */
static const char *fmt_cell(const cell *c, char *buf, size_t size) {
  char num[32];
  if (!c->n)
    return snprintf(buf, size, "-"), buf;
  if (c->max <= 0)
    return snprintf(buf, size, "failed"), buf;
  snprintf(buf, size, "%s (-%.0f%%)%s", fmt_int(c->max, num, sizeof num),
           100.0 * (c->max - c->min) / c->max, c->bad ? " errors!" : "");
  return buf;
}

static const char *fmt_cpu(const cell *c, char *buf, size_t size) {
  if (!c->n || c->cpu < 0)
    snprintf(buf, size, "-");
  else
    snprintf(buf, size, "%.2f", c->cpu);
  return buf;
}

static void print_rate_row(int conns, size_t size, const cell *cells) {
  char a[48], b[48], c[48], r1[16], r2[16];
  double uv = cell_best(&cells[BENCH_LIBUV]);
  printf("| %d | %s | %s | %s | %s | %s | %s |\n", conns, fmt_size(size),
         fmt_cell(&cells[BENCH_PROA_EPOLL], a, sizeof a),
         fmt_cell(&cells[BENCH_PROA_POLL], b, sizeof b),
         fmt_cell(&cells[BENCH_LIBUV], c, sizeof c),
         fmt_ratio(cell_best(&cells[BENCH_PROA_EPOLL]), uv, r1, sizeof r1),
         fmt_ratio(cell_best(&cells[BENCH_PROA_POLL]), uv, r2, sizeof r2));
}

static void print_cpu_row(int conns, size_t size, const cell *cells) {
  char a[16], b[16], c[16], r1[16], r2[16];
  double uv = cells[BENCH_LIBUV].cpu;
  printf("| %d | %s | %s | %s | %s | %s | %s |\n", conns, fmt_size(size),
         fmt_cpu(&cells[BENCH_PROA_EPOLL], a, sizeof a),
         fmt_cpu(&cells[BENCH_PROA_POLL], b, sizeof b),
         fmt_cpu(&cells[BENCH_LIBUV], c, sizeof c),
         fmt_ratio(cells[BENCH_PROA_EPOLL].cpu, uv, r1, sizeof r1),
         fmt_ratio(cells[BENCH_PROA_POLL].cpu, uv, r2, sizeof r2));
}

static void print_echo_tables(const echo_table *t) {
  int i, j;
  printf("\n### TCP echo: round trips per second (higher is better)\n\n");
  printf("| conns | message | proa epoll | proa poll | libuv | epoll / libuv "
         "| poll / libuv |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < NSIZES; i++)
    for (j = 0; j < NCONNS; j++)
      if (t->cells[i][j][0].n || t->cells[i][j][1].n || t->cells[i][j][2].n)
        print_rate_row(echo_conns[j], echo_sizes[i], t->cells[i][j]);
  printf("\n### TCP echo: server CPU time per round trip, user + system, "
         "best round (us; lower is better)\n\n");
  printf("| conns | message | proa epoll | proa poll | libuv | epoll / libuv "
         "| poll / libuv |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < NSIZES; i++)
    for (j = 0; j < NCONNS; j++)
      if (t->cells[i][j][0].n || t->cells[i][j][1].n || t->cells[i][j][2].n)
        print_cpu_row(echo_conns[j], echo_sizes[i], t->cells[i][j]);
  fflush(stdout);
}

/* Rounds alternate between the servers so that drift hits all alike. */
static void echo_cell(const server *servers, const options *o, int conns,
                      size_t size, cell *cells) {
  int r, i;
  for (r = 0; r < o->rounds; r++) {
    for (i = 0; i < BENCH_NIMPLS; i++) {
      bench_echo_result res = {0, -1, 0, 0, true};
      if (!o->impls[i])
        continue;
      if (bench_echo(servers[i].port, servers[i].pid, conns, size, o->warmup,
                     o->duration, &res) != 0)
        res.errors = 1;
      cell_add(&cells[i], &res);
    }
  }
  fprintf(stderr, "echo %d x %s done\n", conns, fmt_size(size));
}

static bool cell_wanted(const options *o, int i, int j) {
  return (!o->only_size || o->only_size == echo_sizes[i]) &&
         (!o->only_conns || o->only_conns == echo_conns[j]);
}

static int echo_bench(const options *o) {
  server servers[BENCH_NIMPLS];
  echo_table *t = calloc(1, sizeof *t);
  int i, j, rc = t ? 0 : -1;
  memset(servers, 0, sizeof servers);
  for (i = 0; i < BENCH_NIMPLS && !rc; i++)
    if (o->impls[i])
      rc = server_start(&servers[i], (bench_impl)i, 0);
  for (i = 0; i < NSIZES && !rc; i++)
    for (j = 0; j < NCONNS; j++)
      if (cell_wanted(o, i, j))
        echo_cell(servers, o, echo_conns[j], echo_sizes[i], t->cells[i][j]);
  for (i = 0; i < BENCH_NIMPLS; i++)
    server_stop(&servers[i]);
  if (!rc)
    print_echo_tables(t);
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
static void idle_measure(server *s, int n, int *fds, idle_result *out) {
  char line[256];
  long rss0, rss1;
  double t0 = bench_now(), t1, t_full, t_empty;
  int opened = bench_idle_open(s->port, n, fds);
  if (opened < n) {
    fprintf(stderr, "only %d of %d connections opened\n", opened, n);
    bench_idle_close(fds, opened);
    return;
  }
  if (read_line(s, line, sizeof line, REPORT_TIMEOUT) != 0 ||
      sscanf(line, "full %ld %ld %lf", &rss0, &rss1, &t_full) != 3) {
    bench_idle_close(fds, n);
    return;
  }
  t1 = bench_now();
  bench_idle_close(fds, n);
  out->per_conn = (double)(rss1 - rss0) / n;
  out->accept_ms = (t_full - t0) * 1e3;
  out->ok = read_line(s, line, sizeof line, REPORT_TIMEOUT) == 0 &&
            sscanf(line, "empty %lf", &t_empty) == 1;
  out->drop_ms = out->ok ? (t_empty - t1) * 1e3 : 0;
}

static void idle_run(bench_impl impl, int n, idle_result *out) {
  server s;
  int *fds = malloc((size_t)n * sizeof *fds);
  memset(out, 0, sizeof *out);
  if (fds && server_start(&s, impl, n) == 0) {
    idle_measure(&s, n, fds, out);
    server_stop(&s);
  }
  free(fds);
}

static void print_idle_row(bench_impl impl, const idle_result *r,
                           const idle_result *uv) {
  char ratio[16];
  if (!r->ok) {
    printf("| %s | failed | - | - | - |\n", impl_names[impl]);
    return;
  }
  printf("| %s | %.0f | %s | %.0f | %.0f |\n", impl_names[impl], r->per_conn,
         fmt_ratio(r->per_conn, uv->ok ? uv->per_conn : 0, ratio, sizeof ratio),
         r->accept_ms, r->drop_ms);
}

static void idle_bench(const options *o) {
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
          "                  [--idle N] [--echo-only | --idle-only]\n"
          "                  [--conns 1|10|100] [--size 1024|10240|102400]\n"
          "                  [--impl proa-epoll|proa-poll|libuv]...\n"
          "       proa_bench serve IMPL        (prints its port; SIGTERM "
          "stops it)\n"
          "       proa_bench client PORT CONNS BYTES SECONDS [SERVER_PID]\n");
  return 2;
}

/* Parses one option at argv[*i]; false if it is not understood. */
static bool parse_option(options *o, int argc, char **argv, int *i,
                         bool *impl_given) {
  const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
  int impl;
  if (strcmp(a, "--echo-only") == 0 || strcmp(a, "--idle-only") == 0) {
    o->idle = a[2] == 'i';
    o->echo = !o->idle;
    return true;
  }
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

static bool parse_options(options *o, int argc, char **argv) {
  bool impl_given = false;
  int i;
  o->warmup = 0.2;
  o->duration = 0.5;
  o->rounds = 4;
  o->idle_n = 10000;
  o->only_conns = 0;
  o->only_size = 0;
  o->echo = o->idle = true;
  for (i = 0; i < BENCH_NIMPLS; i++)
    o->impls[i] = true;
  for (i = 1; i < argc; i++)
    if (!parse_option(o, argc, argv, &i, &impl_given))
      return false;
  return o->warmup >= 0 && o->duration > 0 && o->rounds > 0 &&
         o->rounds <= MAX_ROUNDS && o->idle_n > 0;
}

/* `serve IMPL`: a server on its own, for strace, perf or callgrind. */
static int serve_command(const char *name) {
  bench_server_cfg cfg = {STDOUT_FILENO, 0, MAX_SERVER_SECONDS};
  int impl = parse_impl(name);
  if (impl < 0)
    return usage();
  raise_nofile();
  return run_server((bench_impl)impl, &cfg);
}

/* `client PORT CONNS BYTES SECONDS [PID]`: the load generator on its own;
 * with the server's PID it also measures the server's CPU time. */
static int client_command(int argc, char **argv) {
  bench_echo_result res = {0, -1, 0, 0, true};
  int pid = argc > 4 ? atoi(argv[4]) : 0;
  if (bench_echo(atoi(argv[0]), pid, atoi(argv[1]), (size_t)atol(argv[2]), 0.25,
                 atof(argv[3]), &res) != 0)
    return 1;
  printf("%.0f round trips/s, %ld in all", res.rate, res.total);
  if (res.cpu_us >= 0)
    printf(", server CPU %.2f us per round trip", res.cpu_us);
  printf("%s\n", res.errors || !res.verified ? " (errors)" : "");
  return 0;
}

static void print_setup(const options *o, long nofile) {
  printf("## proa vs libuv %s (%ld CPUs, loopback)\n\n", uv_version_string(),
         sysconf(_SC_NPROCESSORS_ONLN));
  printf("Echo: the uvloop method (each connection sends a message, waits for "
         "the whole echo, sends again); each server is its own process, the "
         "load generator another. Each cell: %d rounds x (%.2f s warm-up + "
         "%.2f s measured) per server, the servers' rounds interleaved. "
         "Round trips: the best round (and how much lower the worst one "
         "was). CPU: the server process's CPU time (/proc/PID/schedstat) "
         "in its best round, divided by its round trips. "
         "RLIMIT_NOFILE %ld.\n",
         o->rounds, o->warmup, o->duration, nofile);
}

int main(int argc, char **argv) {
  options o;
  long nofile;
  if (argc == 3 && strcmp(argv[1], "serve") == 0)
    return serve_command(argv[2]);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "client") == 0)
    return client_command(argc - 2, argv + 2);
  if (!parse_options(&o, argc, argv))
    return usage();
  nofile = raise_nofile();
  if (o.idle && nofile < o.idle_n + 64) {
    fprintf(stderr, "RLIMIT_NOFILE hard limit %ld: idle test cut to %ld\n",
            nofile, nofile - 64);
    o.idle_n = (int)(nofile - 64);
  }
  print_setup(&o, nofile);
  if (o.echo && echo_bench(&o) != 0)
    return 1;
  if (o.idle)
    idle_bench(&o);
  return 0;
}
