/* getaddrinfo / getnameinfo on the executor, results owned by futures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockets.h"

/* EAI_* to PROA_EAI_*; the values differ per OS, the names do not. */
static int translate_eai(int rc) {
  switch (rc) {
  case 0:
    return 0;
  case EAI_NONAME:
    return PROA_EAI_NONAME;
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
  case EAI_NODATA:
    return PROA_EAI_NODATA;
#endif
#if defined(EAI_ADDRFAMILY)
  case EAI_ADDRFAMILY:
    return PROA_EAI_NODATA;
#endif
  case EAI_AGAIN:
    return PROA_EAI_AGAIN;
  case EAI_FAIL:
    return PROA_EAI_FAIL;
  case EAI_FAMILY:
    return PROA_EAI_FAMILY;
  case EAI_SERVICE:
    return PROA_EAI_SERVICE;
  case EAI_MEMORY:
    return PROA_ENOMEM;
  case EAI_BADFLAGS:
  case EAI_SOCKTYPE:
    return PROA_EINVAL;
#if defined(EAI_SYSTEM)
  case EAI_SYSTEM:
    return proa__translate_socket_error(errno);
#endif
  default:
    return PROA_EUNKNOWN;
  }
}

/* ---- getaddrinfo ---- */

typedef struct gai_request {
  char *host, *port;
  proa_addrinfo_hints hints;
} gai_request;

static void gai_request_free(void *p) {
  gai_request *r = p;
  free(r->host);
  free(r->port);
  free(r);
}

static void addrinfo_list_free(void *p) {
  proa_addrinfo_list *list = p;
  if (!list)
    return;
  free(list->items);
  free(list->canonname);
  free(list);
}

static int proa_socktype(int t) {
  return t == SOCK_STREAM  ? PROA_SOCK_STREAM
         : t == SOCK_DGRAM ? PROA_SOCK_DGRAM
                           : 0;
}

static int os_ai_flags(int f) {
  return ((f & PROA_AI_PASSIVE) ? AI_PASSIVE : 0) |
         ((f & PROA_AI_CANONNAME) ? AI_CANONNAME : 0) |
         ((f & PROA_AI_NUMERICHOST) ? AI_NUMERICHOST : 0) |
         ((f & PROA_AI_NUMERICSERV) ? AI_NUMERICSERV : 0) |
         ((f & PROA_AI_ADDRCONFIG) ? AI_ADDRCONFIG : 0) |
         ((f & PROA_AI_V4MAPPED) ? AI_V4MAPPED : 0);
}

/* Copies the OS list into one array, keeping only IPv4 and IPv6. */
static int convert(const struct addrinfo *res, proa_addrinfo_list **out) {
  const struct addrinfo *ai;
  proa_addrinfo_list *list = calloc(1, sizeof *list);
  size_t n = 0;
  if (!list)
    return PROA_ENOMEM;
  for (ai = res; ai; ai = ai->ai_next)
    n++;
  list->items = calloc(n ? n : 1, sizeof *list->items);
  if (!list->items || (res && res->ai_canonname &&
                       !(list->canonname = proa__strdup(res->ai_canonname)))) {
    addrinfo_list_free(list);
    return PROA_ENOMEM;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    proa_addrinfo *item = &list->items[list->count];
    int family = proa__proa_family(ai->ai_family);
    if (family == PROA_AF_UNSPEC ||
        (size_t)ai->ai_addrlen > sizeof item->addr.storage)
      continue;
    item->family = family;
    item->socktype = proa_socktype(ai->ai_socktype);
    item->protocol = ai->ai_protocol;
    memcpy(item->addr.storage, ai->ai_addr, ai->ai_addrlen);
    item->addr.len = (int)ai->ai_addrlen;
    list->count++;
  }
  *out = list;
  return 0;
}

static int resolve(const char *host, const char *port,
                   const struct addrinfo *hints, proa_addrinfo_list **out) {
  struct addrinfo *res = NULL;
  int err = translate_eai(getaddrinfo(host, port, hints, &res));
  if (!err) {
    err = convert(res, out);
    freeaddrinfo(res);
  }
  return err;
}

#ifndef NDEBUG
const char *proa__fault_alias_name, *proa__fault_alias_ips;

/* Appends b's items to a's; frees b. */
static int append(proa_addrinfo_list *a, proa_addrinfo_list *b) {
  proa_addrinfo *items =
      realloc(a->items, (a->count + b->count + 1) * sizeof *items);
  if (items) {
    memcpy(items + a->count, b->items, b->count * sizeof *items);
    a->items = items;
    a->count += b->count;
  }
  addrinfo_list_free(b);
  return items ? 0 : PROA_ENOMEM;
}

/* Debug builds: proa__fault_alias_name resolves to each numeric host of
 * the comma-separated proa__fault_alias_ips, in order: the list of several
 * addresses of one family that tests need and no resolver gives. */
static bool resolve_alias(const char *host, const char *port,
                          const struct addrinfo *hints,
                          proa_addrinfo_list **out, int *err) {
  char ip[64];
  const char *p = proa__fault_alias_ips;
  if (!host || !proa__fault_alias_name || strcmp(host, proa__fault_alias_name))
    return false;
  *out = calloc(1, sizeof **out);
  *err = *out ? 0 : PROA_ENOMEM;
  while (!*err && p && *p) {
    size_t n = strcspn(p, ",");
    proa_addrinfo_list *more = NULL;
    snprintf(ip, sizeof ip, "%.*s", (int)n, p);
    *err = resolve(ip, port, hints, &more);
    if (!*err)
      *err = append(*out, more);
    p += n + (p[n] == ',');
  }
  if (*err) {
    addrinfo_list_free(*out);
    *out = NULL;
  }
  return true;
}
#endif

static int gai_work(void *arg, void **result) {
  gai_request *r = arg;
  struct addrinfo hints;
  proa_addrinfo_list *list = NULL;
  int err;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = proa__os_family(r->hints.family);
  hints.ai_socktype = proa__os_socktype(r->hints.socktype);
  hints.ai_protocol = r->hints.protocol;
  hints.ai_flags = os_ai_flags(r->hints.flags);
#ifndef NDEBUG
  if (!resolve_alias(r->host, r->port, &hints, &list, &err))
#endif
    err = resolve(r->host, r->port, &hints, &list);
  if (!err && list->count == 0) {
    addrinfo_list_free(list);
    err = PROA_EAI_NODATA;
  }
  gai_request_free(r);
  *result = err ? NULL : list;
  return err;
}

int proa_getaddrinfo(proa_loop *loop, const char *host, const char *port,
                     const proa_addrinfo_hints *hints, proa_future **out) {
  proa_addrinfo_hints h = PROA_ADDRINFO_HINTS_INIT;
  gai_request *r;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !out || (!host && !port))
    return PROA_EINVAL;
  if (proa__options_read(&h, sizeof h, hints))
    return PROA_EINVAL;
  if ((h.family != PROA_AF_UNSPEC && proa__os_family(h.family) == AF_UNSPEC) ||
      (h.socktype && !proa__os_socktype(h.socktype)))
    return PROA_EINVAL;
  r = calloc(1, sizeof *r);
  if (!r)
    return PROA_ENOMEM;
  r->host = proa__strdup(host);
  r->port = proa__strdup(port);
  r->hints = h;
  if ((host && !r->host) || (port && !r->port)) {
    gai_request_free(r);
    return PROA_ENOMEM;
  }
  /* The request belongs to the work function from here on... */
  err = proa__run_in_executor(loop, NULL, gai_work, r, gai_request_free,
                              addrinfo_list_free, out);
  if (err) /* ...unless it was never submitted. */
    gai_request_free(r);
  return err;
}

/* ---- getnameinfo ---- */

typedef struct gni_request {
  proa_sockaddr addr;
  int flags;
} gni_request;

static int gni_work(void *arg, void **result) {
  gni_request *r = arg;
  proa_nameinfo *info = calloc(1, sizeof *info);
  int flags = ((r->flags & PROA_NI_NUMERICHOST) ? NI_NUMERICHOST : 0) |
              ((r->flags & PROA_NI_NUMERICSERV) ? NI_NUMERICSERV : 0) |
              ((r->flags & PROA_NI_NAMEREQD) ? NI_NAMEREQD : 0) |
              ((r->flags & PROA_NI_DGRAM) ? NI_DGRAM : 0);
  int err = info ? 0 : PROA_ENOMEM;
  if (!err)
    err = translate_eai(
        getnameinfo((const struct sockaddr *)(const void *)r->addr.storage,
                    (proa__socklen)r->addr.len, info->host, sizeof info->host,
                    info->service, sizeof info->service, flags));
  free(r);
  if (err) {
    free(info);
    info = NULL;
  }
  *result = info;
  return err;
}

int proa_getnameinfo(proa_loop *loop, const proa_sockaddr *addr, int flags,
                     proa_future **out) {
  gni_request *r;
  int err;
  if (out)
    *out = NULL;
  if (!loop || !addr || !out || proa_sockaddr_family(addr) == PROA_AF_UNSPEC)
    return PROA_EINVAL;
  r = malloc(sizeof *r);
  if (!r)
    return PROA_ENOMEM;
  r->addr = *addr;
  r->flags = flags;
  err = proa__run_in_executor(loop, NULL, gni_work, r, free, free, out);
  if (err)
    free(r);
  return err;
}
