/* The UDP tables: ping-pong round trips and one-way pummel, proa vs libuv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define NSIZES 2
#define NCLIENTS 2
#define NSENDERS 2
#define PUMMEL_SIZE 64

static const size_t udp_sizes[NSIZES] = {64, 1024};
static const int udp_clients[NCLIENTS] = {1, 10};
static const int udp_senders[NSENDERS] = {1, 10};

/* One receiver's pummel results over the rounds. */
typedef struct pummel_cell {
  bench_pummel_result best; /* the round that received the most per second */
  double min_rate;          /* the worst round's received per second */
  double cpu_ns;            /* least receiver CPU per datagram, -1 unknown */
  int n;
  bool failed;
} pummel_cell;

typedef struct udp_tables {
  bench_cell pingpong[NSIZES][NCLIENTS][BENCH_NIMPLS];
  pummel_cell pummel[NSENDERS][BENCH_NIMPLS];
} udp_tables;

static const char *fmt_bytes(size_t size) {
  return size == 1024 ? "1 KiB" : size == 64 ? "64 B" : "?";
}

/* ---- ping-pong ---- */

static void pingpong_cell(const bench_server *servers, const bench_options *o,
                          int clients, size_t size, bench_cell *cells) {
  int r, i;
  for (r = 0; r < o->rounds; r++) {
    for (i = 0; i < BENCH_NIMPLS; i++) {
      bench_echo_result res = BENCH_ECHO_RESULT_INIT;
      if (!o->impls[i])
        continue;
      if (bench_udp_pingpong(servers[i].port, servers[i].pid, clients, size,
                             o->warmup, o->duration, &res) != 0)
        res.errors = 1;
      bench_cell_add(&cells[i], &res);
    }
  }
  fprintf(stderr, "udp ping-pong %d x %s done\n", clients, fmt_bytes(size));
}

static void print_pingpong_row(int clients, size_t size, const bench_cell *c,
                               bool cpu) {
  char a[48], b[48], u[48], r1[16], r2[16];
  double uv = cpu ? c[BENCH_LIBUV].cpu : bench_cell_best(&c[BENCH_LIBUV]);
  double ep = cpu ? c[BENCH_PROA_EPOLL].cpu : bench_cell_best(&c[0]);
  double po = cpu ? c[BENCH_PROA_POLL].cpu : bench_cell_best(&c[1]);
  const char *(*fmt)(const bench_cell *, char *, size_t) =
      cpu ? bench_fmt_cpu : bench_fmt_cell;
  printf("| %d | %s | %s | %s | %s | %s | %s |\n", clients, fmt_bytes(size),
         fmt(&c[BENCH_PROA_EPOLL], a, sizeof a),
         fmt(&c[BENCH_PROA_POLL], b, sizeof b),
         fmt(&c[BENCH_LIBUV], u, sizeof u),
         bench_fmt_ratio(ep, uv, r1, sizeof r1),
         bench_fmt_ratio(po, uv, r2, sizeof r2));
}

static void print_pingpong_table(const udp_tables *t, bool cpu) {
  int i, j, k;
  long lost[BENCH_NIMPLS] = {0};
  if (cpu)
    printf("\n### UDP ping-pong: server CPU time per round trip, user + "
           "system, best round (us; lower is better)\n\n");
  else
    printf("\n### UDP ping-pong: round trips per second (higher is "
           "better)\n\n");
  printf("| clients | datagram | proa epoll | proa poll | libuv | epoll / "
         "libuv | poll / libuv |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < NSIZES; i++)
    for (j = 0; j < NCLIENTS; j++) {
      const bench_cell *c = t->pingpong[i][j];
      if (c[0].n || c[1].n || c[2].n)
        print_pingpong_row(udp_clients[j], udp_sizes[i], c, cpu);
      for (k = 0; k < BENCH_NIMPLS; k++)
        lost[k] += c[k].lost;
    }
  if (!cpu && (lost[0] || lost[1] || lost[2]))
    printf("\nDatagrams lost (no echo within 0.2 s, then resent): proa "
           "epoll %ld, proa poll %ld, libuv %ld.\n",
           lost[0], lost[1], lost[2]);
}

static int pingpong_bench(const bench_options *o, udp_tables *t) {
  bench_server servers[BENCH_NIMPLS];
  int i, j, rc = 0;
  memset(servers, 0, sizeof servers);
  for (i = 0; i < BENCH_NIMPLS && !rc; i++)
    if (o->impls[i])
      rc = bench_server_start(&servers[i], (bench_impl)i, BENCH_UDP_ECHO, 0);
  for (i = 0; i < NSIZES && !rc; i++)
    for (j = 0; j < NCLIENTS; j++)
      if (!o->only_conns || o->only_conns == udp_clients[j])
        pingpong_cell(servers, o, udp_clients[j], udp_sizes[i],
                      t->pingpong[i][j]);
  for (i = 0; i < BENCH_NIMPLS; i++)
    bench_server_stop(&servers[i]);
  return rc;
}

/* ---- pummel ---- */

static void pummel_add(pummel_cell *c, int rc, const bench_pummel_result *r) {
  double cpu = r->cpu_ns >= 0 && r->received > 0 ? r->cpu_ns / r->received : -1;
  if (rc != 0 || r->received <= 0) {
    c->failed = true;
    return;
  }
  if (c->n == 0 || r->recv_rate > c->best.recv_rate)
    c->best = *r;
  if (c->n == 0 || r->recv_rate < c->min_rate)
    c->min_rate = r->recv_rate;
  if (c->n == 0 || (cpu >= 0 && (c->cpu_ns < 0 || cpu < c->cpu_ns)))
    c->cpu_ns = cpu;
  c->n++;
}

static void pummel_cell_run(const bench_server *servers, const bench_options *o,
                            int senders, pummel_cell *cells) {
  int r, i;
  for (r = 0; r < o->rounds; r++) {
    for (i = 0; i < BENCH_NIMPLS; i++) {
      bench_pummel_result res;
      int rc;
      if (!o->impls[i])
        continue;
      rc = bench_udp_pummel(servers[i].port, servers[i].pid, servers[i].shared,
                            senders, PUMMEL_SIZE, o->warmup, o->duration, &res);
      pummel_add(&cells[i], rc, &res);
    }
  }
  fprintf(stderr, "udp pummel %d senders done\n", senders);
}

static void print_pummel_row(int senders, bench_impl impl, const pummel_cell *c,
                             const pummel_cell *uv) {
  const bench_pummel_result *b = &c->best;
  char recv[32], sent[32], r1[16], r2[16], cpu[16];
  if (!c->n) {
    printf("| %d | %s | %s | - | - | - | - | - |\n", senders,
           bench_impl_names[impl], c->failed ? "failed" : "-");
    return;
  }
  snprintf(cpu, sizeof cpu, c->cpu_ns >= 0 ? "%.0f" : "-", c->cpu_ns);
  printf("| %d | %s | %s (-%.0f%%)%s | %s | %.1f%% | %s | %s | %s |\n", senders,
         bench_impl_names[impl], bench_fmt_int(b->recv_rate, recv, sizeof recv),
         100.0 * (b->recv_rate - c->min_rate) / b->recv_rate,
         c->failed ? " errors!" : "",
         bench_fmt_int(b->sent_rate, sent, sizeof sent),
         b->sent > 0 ? 100.0 * (double)(b->sent - b->received) / b->sent : 0.0,
         cpu,
         bench_fmt_ratio(b->recv_rate, uv->n ? uv->best.recv_rate : 0, r1,
                         sizeof r1),
         bench_fmt_ratio(c->cpu_ns, uv->n ? uv->cpu_ns : 0, r2, sizeof r2));
}

static void print_pummel_table(const bench_options *o, const udp_tables *t) {
  int i, k;
  printf("\n### UDP pummel: %d-byte datagrams received per second, one-way "
         "(higher is better)\n\n",
         PUMMEL_SIZE);
  printf("| senders | receiver | received/s | sent/s | lost | receiver CPU "
         "per datagram (ns) | received / libuv | CPU / libuv "
         "|\n|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < NSENDERS; i++)
    for (k = 0; k < BENCH_NIMPLS; k++)
      if (o->impls[k] && (!o->only_conns || o->only_conns == udp_senders[i]))
        print_pummel_row(udp_senders[i], (bench_impl)k, &t->pummel[i][k],
                         &t->pummel[i][BENCH_LIBUV]);
}

static int pummel_bench(const bench_options *o, udp_tables *t) {
  bench_server servers[BENCH_NIMPLS];
  int i, rc = 0;
  memset(servers, 0, sizeof servers);
  for (i = 0; i < BENCH_NIMPLS && !rc; i++)
    if (o->impls[i])
      rc = bench_server_start(&servers[i], (bench_impl)i, BENCH_UDP_SINK, 0);
  for (i = 0; i < NSENDERS && !rc; i++)
    if (!o->only_conns || o->only_conns == udp_senders[i])
      pummel_cell_run(servers, o, udp_senders[i], t->pummel[i]);
  for (i = 0; i < BENCH_NIMPLS; i++)
    bench_server_stop(&servers[i]);
  return rc;
}

int bench_udp(const bench_options *o) {
  udp_tables *t = calloc(1, sizeof *t);
  int rc = t ? 0 : -1;
  if (!rc)
    rc = pingpong_bench(o, t);
  if (!rc)
    rc = pummel_bench(o, t);
  if (!rc) {
    printf("\n## UDP datagrams: proa vs libuv\n\nPing-pong: each client socket "
           "sends a datagram, "
           "waits for its echo and sends the next (1 and 10 clients, "
           "one driver thread); the servers echo in datagram_received "
           "(proa_datagram_sendto) or recv_cb (uv_udp_try_send, else "
           "uv_udp_send of a copy). Pummel: 1 or 10 sockets in one driver "
           "thread send as fast as they can for %.2f s (after %.2f s of "
           "warm-up) to a receiver that only counts; \"lost\" is what was "
           "sent but never received (dropped by the kernel when the "
           "receiver's socket buffer was full), in the best round. %d "
           "rounds per cell, interleaved.\n",
           o->duration, o->warmup, o->rounds);
    print_pingpong_table(t, false);
    print_pingpong_table(t, true);
    print_pummel_table(o, t);
    fflush(stdout);
  }
  free(t);
  return rc;
}
