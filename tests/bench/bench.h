/* Shared declarations of the proa-versus-libuv benchmark (Linux only). */
#ifndef PROA_BENCH_H
#define PROA_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The servers under test; each runs in its own forked process. */
typedef enum bench_impl {
  BENCH_PROA_EPOLL,
  BENCH_PROA_POLL,
  BENCH_LIBUV,
  BENCH_NIMPLS
} bench_impl;

/* What a server does: echo TCP, echo UDP datagrams, or count datagrams. */
typedef enum bench_kind {
  BENCH_TCP_ECHO,
  BENCH_UDP_ECHO,
  BENCH_UDP_SINK,
  BENCH_LOCAL_ECHO /* a Unix-domain stream socket, at bench_local_path */
} bench_kind;

/*
 * Counters a server shares with the driver: a MAP_SHARED page mapped before
 * the fork. Only the server writes; the driver reads while it runs.
 */
typedef struct bench_shared {
  long received; /* UDP sink: datagrams received */
} bench_shared;

/* What a server process is told when it is forked. */
typedef struct bench_server_cfg {
  int report_fd;        /* pipe to the driver, one line per report */
  int idle_target;      /* report "full" once this many are open; 0: never */
  double max_seconds;   /* the server stops by itself after this long */
  bench_kind kind;      /* TCP echo, UDP echo or UDP sink */
  bench_shared *shared; /* where a UDP sink counts */
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
/* The UDP servers (cfg->kind BENCH_UDP_ECHO or BENCH_UDP_SINK). */
int bench_serve_proa_udp(const char *backend, const bench_server_cfg *cfg);
int bench_serve_uv_udp(const bench_server_cfg *cfg);

/* Where the local server of process `pid` listens. */
void bench_local_path(int pid, char *buf, size_t size);

/* Server-side helpers (report.c). */
double bench_now(void);
long bench_rss_bytes(void);
/* CPU time a process has used, in ns (/proc/PID/schedstat); -1 if unknown. */
double bench_cpu_ns(int pid);
/* CPU time of the calling process, all threads, in ns. */
double bench_self_cpu_ns(void);
void bench_report(int fd, const char *fmt, ...);
void bench_count_init(bench_count *c, const bench_server_cfg *cfg);
/* Returns true when the target was just reached: report after settling. */
bool bench_count_opened(bench_count *c);
void bench_count_report_full(bench_count *c);
void bench_count_closed(bench_count *c);
/* A UDP sink counted one more datagram. */
void bench_shared_count(bench_shared *s);

/* ---- the driver: options, server processes, cells, formatting ---- */

typedef struct bench_options {
  double warmup, duration;
  int rounds;
  int idle_n;
  int only_conns;   /* 0, or the one concurrency to run */
  size_t only_size; /* 0, or the one message size to run */
  int task_conns;   /* concurrent connections of the task benchmark */
  bool echo, idle, udp, tasks, local;
  bool impls[BENCH_NIMPLS];
} bench_options;

extern const char *const bench_impl_names[BENCH_NIMPLS];

/* A forked server and the read end of its report pipe. */
typedef struct bench_server {
  pid_t pid;
  int fd;
  int port; /* 0 for a local server: it listens at bench_local_path(pid) */
  bench_shared *shared; /* mapped for the server's life */
  char buf[512];
  size_t len;
} bench_server;

/* Forks a server of `impl` doing `kind` and waits for its port; 0 or -1. */
int bench_server_start(bench_server *s, bench_impl impl, bench_kind kind,
                       int idle_target);
/* SIGTERM (the server stops its loop), then SIGKILL if it lingers. */
void bench_server_stop(bench_server *s);
/* Reads one report line, waiting up to `timeout` seconds; -1 if none. */
int bench_server_read_line(bench_server *s, char *out, size_t size,
                           double timeout);
/* Runs a server in this process (the serve commands). */
int bench_run_server(bench_impl impl, const bench_server_cfg *cfg);

/* One measured round of a rate benchmark. */
typedef struct bench_echo_result {
  double rate;   /* round trips (or datagrams) per second */
  double cpu_us; /* server CPU per measured round trip, -1 if unknown */
  long total;    /* round trips in all, warm-up included */
  long errors;   /* connections that failed; 0 for a clean run */
  long lost;     /* UDP: datagrams resent after a time-out */
  bool verified; /* every echo seen during warm-up matched */
} bench_echo_result;

#define BENCH_ECHO_RESULT_INIT                                                 \
  { 0, -1, 0, 0, 0, true }

/* One server's results in one table cell, over the rounds. */
typedef struct bench_cell {
  double min, max; /* rate */
  double cpu;      /* least server CPU per operation (us), -1 unknown */
  long lost;
  int n;
  bool bad; /* a connection failed or an echo did not match */
} bench_cell;

void bench_cell_add(bench_cell *c, const bench_echo_result *r);
/* The best round: interference only ever slows a run down. */
double bench_cell_best(const bench_cell *c);
/* "41,230 (-3%)": the best round, and how far below it the worst was. */
const char *bench_fmt_cell(const bench_cell *c, char *buf, size_t size);
const char *bench_fmt_cpu(const bench_cell *c, char *buf, size_t size);
/* 1234567.8 -> "1,234,568". */
const char *bench_fmt_int(double v, char *buf, size_t size);
/* a / b with two decimals, or "-". */
const char *bench_fmt_ratio(double a, double b, char *buf, size_t size);

/* ---- client side (client.c, udp_client.c), run in the driver ---- */

/* Drives the echo server s: at 127.0.0.1:port, or at its local path when
 * the port is 0; measures the CPU time of s->pid unless it is 0. Returns
 * 0, or -1 if the connections failed. */
int bench_echo(const bench_server *s, int nconns, size_t size, double warmup,
               double duration, bench_echo_result *out);
/* Opens n idle connections to s; returns how many, their fds in fds[]. */
int bench_idle_open(const bench_server *s, int n, int *fds);
void bench_idle_close(int *fds, int n);

/* UDP ping-pong: nclients sockets, one datagram in flight each. */
int bench_udp_pingpong(int port, int server_pid, int nclients, size_t size,
                       double warmup, double duration, bench_echo_result *out);

/* One round of the UDP pummel: what was sent and what arrived. */
typedef struct bench_pummel_result {
  double sent_rate, recv_rate; /* datagrams per second */
  long sent, received;         /* while measuring */
  double cpu_ns;               /* receiver CPU while measuring, -1 unknown */
} bench_pummel_result;

/* nsenders sockets blast size-byte datagrams at 127.0.0.1:port; `shared`
 * is the receiver's counter (NULL: not known). */
int bench_udp_pummel(int port, int server_pid, const bench_shared *shared,
                     int nsenders, size_t size, double warmup, double duration,
                     bench_pummel_result *out);

/* ---- the benchmarks beyond TCP (udp_bench.c, task_bench.c) ---- */

int bench_udp(const bench_options *o);
int bench_tasks(const bench_options *o);
/* One await micro-benchmark: call-soon-chain, future-chain, await-done or
 * await-soon, n operations. */
int bench_micro(const char *kind, long n);
/* n concurrent round trips against an echo server at 127.0.0.1:port. */
int bench_roundtrips(int port, bool tasks, int n);

#endif /* PROA_BENCH_H */
