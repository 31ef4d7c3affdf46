/* Command-line helpers shared by the echo samples: "HOST:PORT", numbers. */
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

#endif /* PROA_SAMPLES_ECHO_ARGS_H */
