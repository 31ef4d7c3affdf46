/* Command-line helpers shared by the echo samples: targets, numbers. */
#ifndef PROA_SAMPLES_ECHO_ARGS_H
#define PROA_SAMPLES_ECHO_ARGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Splits "HOST:PORT" or "[V6HOST]:PORT" into host (copied into `host`, of
 * `size` bytes) and port. Returns 0, or -1 when the text is not of that form.
 */
static inline int parse_host_port(const char *text, char *host, size_t size,
                                  int *port) {
  const char *colon = strrchr(text, ':');
  const char *start = text, *end = colon;
  char *stop;
  long p;
  if (!colon || colon == text)
    return -1;
  if (text[0] == '[') {
    if (colon[-1] != ']')
      return -1;
    start = text + 1;
    end = colon - 1;
  }
  if ((size_t)(end - start) >= size || end == start)
    return -1;
  memcpy(host, start, (size_t)(end - start));
  host[end - start] = '\0';
  p = strtol(colon + 1, &stop, 10);
  if (*stop != '\0' || stop == colon + 1 || p < 0 || p > 65535)
    return -1;
  *port = (int)p;
  return 0;
}

/* Parses a positive count or size; returns -1 for anything else. */
static inline long parse_positive(const char *text) {
  char *stop;
  long v = strtol(text, &stop, 10);
  return *stop == '\0' && stop != text && v > 0 ? v : -1;
}

/* Where a client connects: --tcp / --udp HOST:PORT, --unix PATH or --pipe
 * NAME. */
typedef struct echo_target {
  const char *proto; /* "tcp", "udp", "unix", "pipe"; NULL: none given */
  char host[256];    /* tcp, udp */
  int port;
  const char *path; /* unix: the socket path; pipe: the name */
  char where[300];  /* "HOST:PORT", or the path: for the output line */
} echo_target;

/*
 * Takes "--PROTO VALUE" into *t: 1 when `flag` names a target, 0 when it is
 * some other flag, -1 when it is malformed or a second target.
 */
static inline int parse_target(const char *flag, const char *value,
                               echo_target *t) {
  static const char *const protos[] = {"tcp", "udp", "unix", "pipe"};
  size_t i;
  for (i = 0; i < 4; i++)
    if (flag[0] == '-' && flag[1] == '-' && strcmp(flag + 2, protos[i]) == 0)
      break;
  if (i == 4)
    return 0;
  if (t->proto)
    return -1;
  t->proto = protos[i];
  if (i >= 2) {
    t->path = value;
    snprintf(t->where, sizeof t->where, "%s", value);
    return 1;
  }
  if (parse_host_port(value, t->host, sizeof t->host, &t->port) != 0)
    return -1;
  snprintf(t->where, sizeof t->where, "%s:%d", t->host, t->port);
  return 1;
}

#endif /* PROA_SAMPLES_ECHO_ARGS_H */
