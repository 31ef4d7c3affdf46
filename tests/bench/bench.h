/* Shared declarations of the proa-versus-libuv benchmark (Linux only). */
#ifndef PROA_BENCH_H
#define PROA_BENCH_H

#include <stdbool.h>
#include <stddef.h>

/* The servers under test; each runs in its own forked process. */
typedef enum bench_impl {
  BENCH_PROA_EPOLL,
  BENCH_PROA_POLL,
  BENCH_LIBUV,
  BENCH_NIMPLS
} bench_impl;

/* What a server process is told when it is forked. */
typedef struct bench_server_cfg {
  int report_fd;      /* pipe to the driver, one line per report */
  int idle_target;    /* report "full" once this many are open; 0: never */
  double max_seconds; /* the server stops by itself after this long */
} bench_server_cfg;

/*
 * Connection accounting shared by both servers. Reports, one line each:
 * "port P" once listening, "full RSS0 RSS1 T" when idle_target connections
 * are open (RSS in bytes before the first and after the last, T the
 * CLOCK_MONOTONIC time in seconds), "empty T" when all of them are gone.
 */
typedef struct bench_count {
  const bench_server_cfg *cfg;
  int open;
  long rss_base;
  double t_full; /* when the target was reached */
  bool full;
} bench_count;

/* Runs a server until SIGTERM or cfg->max_seconds; returns an exit code. */
int bench_serve_proa(const char *backend, const bench_server_cfg *cfg);
int bench_serve_uv(const bench_server_cfg *cfg);

/* Server-side helpers (report.c). */
double bench_now(void);
long bench_rss_bytes(void);
/* CPU time a process has used, in ns (/proc/PID/schedstat); -1 if unknown. */
double bench_cpu_ns(int pid);
void bench_report(int fd, const char *fmt, ...);
void bench_count_init(bench_count *c, const bench_server_cfg *cfg);
/* Returns true when the target was just reached: report after settling. */
bool bench_count_opened(bench_count *c);
void bench_count_report_full(bench_count *c);
void bench_count_closed(bench_count *c);

/* Client side (client.c), run in the driver process. */
typedef struct bench_echo_result {
  double rate;   /* round trips per second */
  double cpu_us; /* server CPU per measured round trip, -1 if unknown */
  long total;    /* round trips in all, warm-up included */
  long errors;   /* connections that failed; 0 for a clean run */
  bool verified; /* every echo seen during warm-up matched */
} bench_echo_result;

/* Drives the echo server at 127.0.0.1:port, process server_pid (0: do not
 * measure its CPU time). Returns 0, or -1 if the connections failed. */
int bench_echo(int port, int server_pid, int nconns, size_t size, double warmup,
               double duration, bench_echo_result *out);
/* Opens n idle connections; returns how many, their fds in fds[]. */
int bench_idle_open(int port, int n, int *fds);
void bench_idle_close(int *fds, int n);

#endif /* PROA_BENCH_H */
