/* The driver's shared parts: forked servers, result cells, formatting. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_SERVER_SECONDS 600.0 /* a forgotten server stops by itself */
#define REPORT_TIMEOUT 60.0      /* seconds to wait for a server's report */

const char *const bench_impl_names[BENCH_NIMPLS] = {"proa epoll", "proa poll",
                                                    "libuv"};

/* ---- running a server ---- */

int bench_run_server(bench_impl impl, const bench_server_cfg *cfg) {
  const char *backend = impl == BENCH_PROA_EPOLL ? "epoll" : "poll";
  if (cfg->kind == BENCH_UDP_ECHO || cfg->kind == BENCH_UDP_SINK)
    return impl == BENCH_LIBUV ? bench_serve_uv_udp(cfg)
                               : bench_serve_proa_udp(backend, cfg);
  return impl == BENCH_LIBUV ? bench_serve_uv(cfg)
                             : bench_serve_proa(backend, cfg);
}

int bench_server_read_line(bench_server *s, char *out, size_t size,
                           double timeout) {
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

static void child_main(bench_impl impl, bench_kind kind, int report_fd,
                       int idle_target, bench_shared *shared) {
  bench_server_cfg cfg = {report_fd, idle_target, MAX_SERVER_SECONDS, kind,
                          shared};
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
  _exit(bench_run_server(impl, &cfg));
}

void bench_server_stop(bench_server *s) {
  char path[108];
  int i, status;
  if (s->shared)
    munmap(s->shared, sizeof *s->shared);
  s->shared = NULL;
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
  bench_local_path(s->pid, path, sizeof path); /* if it made one */
  unlink(path);
  s->pid = 0;
}

int bench_server_start(bench_server *s, bench_impl impl, bench_kind kind,
                       int idle_target) {
  int fds[2];
  char line[128];
  void *shared;
  memset(s, 0, sizeof *s);
  shared = mmap(NULL, sizeof *s->shared, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED)
    return -1;
  s->shared = shared;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    bench_server_stop(s);
    return -1;
  }
  fflush(NULL);
  s->pid = fork();
  if (s->pid == 0) {
    close(fds[0]);
    child_main(impl, kind, fds[1], idle_target, s->shared);
  }
  close(fds[1]);
  s->fd = fds[0];
  if (s->pid < 0 ||
      bench_server_read_line(s, line, sizeof line, REPORT_TIMEOUT) != 0 ||
      sscanf(line, "port %d", &s->port) != 1) {
    fprintf(stderr, "%s server did not start\n", bench_impl_names[impl]);
    bench_server_stop(s);
    return -1;
  }
  return 0;
}

/* ---- cells ---- */

void bench_cell_add(bench_cell *c, const bench_echo_result *r) {
  if (c->n == 0 || r->rate < c->min)
    c->min = r->rate;
  if (c->n == 0 || r->rate > c->max)
    c->max = r->rate;
  if (c->n == 0 || (r->cpu_us >= 0 && (c->cpu < 0 || r->cpu_us < c->cpu)))
    c->cpu = r->cpu_us;
  c->lost += r->lost;
  c->n++;
  c->bad = c->bad || r->errors || !r->verified;
}

double bench_cell_best(const bench_cell *c) { return c->n ? c->max : 0; }

const char *bench_fmt_cell(const bench_cell *c, char *buf, size_t size) {
  char num[32];
  if (!c->n)
    return snprintf(buf, size, "-"), buf;
  if (c->max <= 0)
    return snprintf(buf, size, "failed"), buf;
  snprintf(buf, size, "%s (-%.0f%%)%s", bench_fmt_int(c->max, num, sizeof num),
           100.0 * (c->max - c->min) / c->max, c->bad ? " errors!" : "");
  return buf;
}

const char *bench_fmt_cpu(const bench_cell *c, char *buf, size_t size) {
  if (!c->n || c->cpu < 0)
    snprintf(buf, size, "-");
  else
    snprintf(buf, size, "%.2f", c->cpu);
  return buf;
}

/* ---- formatting ---- */

const char *bench_fmt_int(double v, char *buf, size_t size) {
  char digits[32], *p = buf;
  int len = snprintf(digits, sizeof digits, "%.0f", v), i;
  for (i = 0; i < len && (size_t)(p - buf) + 2 < size; i++) {
    if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0)
      *p++ = ',';
    *p++ = digits[i];
  }
  *p = '\0';
  return buf;
}

const char *bench_fmt_ratio(double a, double b, char *buf, size_t size) {
  if (a > 0 && b > 0)
    snprintf(buf, size, "%.2f", a / b);
  else
    snprintf(buf, size, "-");
  return buf;
}
