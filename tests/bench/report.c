/* Server-side helpers: clock, resident memory, reports to the driver. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size from /proc/self/statm (second field, in pages). */
long bench_rss_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

double bench_cpu_ns(int pid) {
  char path[64];
  unsigned long long ns;
  FILE *f;
  int ok;
  snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  f = fopen(path, "r");
  if (!f)
    return -1;
  ok = fscanf(f, "%llu", &ns) == 1;
  fclose(f);
  return ok ? (double)ns : -1;
}

double bench_self_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
    return -1;
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The driver reads the count while the server writes it: atomic, relaxed. */
void bench_shared_count(bench_shared *s) {
  __atomic_store_n(&s->received, s->received + 1, __ATOMIC_RELAXED);
}

void bench_report(int fd, const char *fmt, ...) {
  char line[256];
  va_list ap;
  int len;
  ssize_t n;
  va_start(ap, fmt);
  len = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (len < 0 || len >= (int)sizeof line - 1)
    return;
  line[len++] = '\n';
  do
    n = write(fd, line, (size_t)len);
  while (n < 0 && errno == EINTR);
}

void bench_count_init(bench_count *c, const bench_server_cfg *cfg) {
  c->cfg = cfg;
  c->open = 0;
  c->full = false;
  c->t_full = 0;
  c->rss_base = bench_rss_bytes();
}

bool bench_count_opened(bench_count *c) {
  c->open++;
  if (c->cfg->idle_target <= 0 || c->full || c->open != c->cfg->idle_target)
    return false;
  c->t_full = bench_now();
  return true;
}

void bench_count_report_full(bench_count *c) {
  c->full = true;
  bench_report(c->cfg->report_fd, "full %ld %ld %.6f", c->rss_base,
               bench_rss_bytes(), c->t_full);
}

void bench_count_closed(bench_count *c) {
  c->open--;
  if (c->full && c->open == 0) {
    c->full = false;
    bench_report(c->cfg->report_fd, "empty %.6f", bench_now());
  }
}

void bench_local_path(int pid, char *buf, size_t size) {
  snprintf(buf, size, "/tmp/proa-bench-%d.sock", pid);
}
