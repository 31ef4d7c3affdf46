// Helpers for the datagram (UDP) tests: a recording datagram protocol,
// plain UDP sockets, the heap's size (to see what an idle endpoint pins) and
// the kernel's per-socket drop counter (to tell loss from overflow).
#ifndef PROA_UDP_TEST_H
#define PROA_UDP_TEST_H

#include "net_test.h"

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define PROA_UDP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROA_UDP_TEST_ASAN 1
#endif
#endif
#ifdef PROA_UDP_TEST_ASAN
// From the sanitizer runtime (GCC ships no header declaring it).
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

namespace proa_udp_test {

using proa_net_test::RawInit;

// ---- the recording protocol ----

// One datagram as the protocol saw it.
struct Dgram {
  std::string data;
  proa_sockaddr from;
};

// Events, in the order they happened (consecutive datagrams recorded once).
enum EpEv : char {
  kMade = 'M',
  kData = 'D',
  kError = 'E',
  kPause = 'P',
  kResume = 'R',
  kLost = 'L'
};

// Set while a test is inside a proa call: a callback seen then ran inside
// the call that caused it, which the contract forbids.
inline int &ApiDepth() {
  static int depth = 0;
  return depth;
}

struct ApiCall {
  ApiCall() { ++ApiDepth(); }
  ~ApiCall() { --ApiDepth(); }
};

// One endpoint's protocol: records every callback and can echo or run
// hooks. The transport is referenced from connection_made on (unless
// `no_ref`), and the fixture drops that reference at the end of the test.
struct Ep {
  std::string name;
  bool keep = true;    // store each datagram in `got`
  bool echo = false;   // send each datagram back to its sender
  bool no_ref = false; // do not reference the transport
  std::function<void(Ep &, const uint8_t *, size_t, const proa_sockaddr *)>
      on_data;
  std::function<void(Ep &)> on_made, on_lost, on_pause, on_resume;
  std::function<void(Ep &, int)> on_error;

  proa_datagram *t = nullptr;
  proa_future *future = nullptr; // of create_datagram_endpoint (referenced)
  std::string events;
  std::vector<Dgram> got;
  std::vector<int> errors;
  size_t received = 0; // datagrams, kept or not
  int made = 0, lost = 0, pauses = 0, resumes = 0;
  int lost_error = 1; // 1: not lost yet
  int after_lost = 0, inside_api = 0, echo_errors = 0;
  bool future_done_at_made = false;
  bool paused = false, bad_flow_order = false;
  size_t wbuf_at_pause = 0, wbuf_at_resume = SIZE_MAX;

  void Event(char e) {
    if (ApiDepth() > 0)
      inside_api++;
    if (lost)
      after_lost++;
    if (e != kData || events.empty() || events.back() != kData)
      events += e;
  }

  static void OnMade(void *self, proa_datagram *t) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kMade);
    e->made++;
    e->t = e->no_ref ? t : proa_datagram_ref(t);
    e->future_done_at_made =
        e->future != nullptr && proa_future_done(e->future);
    if (e->on_made)
      e->on_made(*e);
  }
  static void OnData(void *self, const void *data, size_t len,
                     const proa_sockaddr *addr) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kData);
    e->received++;
    const uint8_t *p = static_cast<const uint8_t *>(data);
    if (e->keep) {
      Dgram d;
      d.data.assign(reinterpret_cast<const char *>(p), len);
      if (addr != nullptr)
        d.from = *addr;
      else
        memset(&d.from, 0, sizeof d.from);
      e->got.push_back(d);
    }
    if (e->echo &&
        proa_datagram_sendto(e->t, data, len, addr) != 0) // addr: the sender
      e->echo_errors++;
    if (e->on_data)
      e->on_data(*e, p, len, addr);
  }
  static void OnError(void *self, int error) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kError);
    e->errors.push_back(error);
    if (e->on_error)
      e->on_error(*e, error);
  }
  static void OnLost(void *self, int error) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kLost);
    e->lost++;
    e->lost_error = error;
    if (e->on_lost)
      e->on_lost(*e);
  }
  static void OnPause(void *self) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kPause);
    e->pauses++;
    e->bad_flow_order |= e->paused;
    e->paused = true;
    if (e->t != nullptr)
      e->wbuf_at_pause = proa_datagram_get_write_buffer_size(e->t);
    if (e->on_pause)
      e->on_pause(*e);
  }
  static void OnResume(void *self) {
    Ep *e = static_cast<Ep *>(self);
    e->Event(kResume);
    e->resumes++;
    e->bad_flow_order |= !e->paused;
    e->paused = false;
    if (e->t != nullptr)
      e->wbuf_at_resume = proa_datagram_get_write_buffer_size(e->t);
    if (e->on_resume)
      e->on_resume(*e);
  }

  // The datagrams' contents, in arrival order.
  std::vector<std::string> Payloads() const {
    std::vector<std::string> v;
    for (const Dgram &d : got)
      v.push_back(d.data);
    return v;
  }
};

inline const proa_datagram_protocol kEpProtocol = {
    Ep::OnMade, Ep::OnData, Ep::OnError, Ep::OnLost, Ep::OnPause, Ep::OnResume};

// The datagram contract on one endpoint: connection_made first and once,
// connection_lost last and once, nothing inside an API call, pause and
// resume alternating.
inline void ExpectWellOrdered(const Ep &e) {
  SCOPED_TRACE("endpoint " + e.name + ", events " + e.events);
  EXPECT_EQ(1, e.made);
  EXPECT_EQ(1, e.lost);
  EXPECT_EQ(0, e.after_lost);
  EXPECT_EQ(0, e.inside_api) << "a callback ran inside the API call";
  EXPECT_FALSE(e.bad_flow_order);
  if (!e.events.empty()) {
    EXPECT_EQ(kMade, e.events.front());
    EXPECT_EQ(kLost, e.events.back());
  }
}

// ---- plain UDP sockets ----

inline intptr_t RawUdpSocket(int family) {
  RawInit();
  int af = family == PROA_AF_INET6 ? AF_INET6 : AF_INET;
#ifdef _WIN32
  SOCKET s = socket(af, SOCK_DGRAM, IPPROTO_UDP);
  return s == INVALID_SOCKET ? -1 : static_cast<intptr_t>(s);
#else
  return socket(af, SOCK_DGRAM, 0);
#endif
}

inline int RawGetInt(intptr_t s, int level, int name, int *value) {
#ifdef _WIN32
  int len = static_cast<int>(sizeof *value);
  return getsockopt(static_cast<SOCKET>(s), level, name,
                    reinterpret_cast<char *>(value), &len);
#else
  socklen_t len = sizeof *value;
  return getsockopt(static_cast<int>(s), level, name, value, &len);
#endif
}

inline int RawSetOpt(intptr_t s, int level, int name, const void *value,
                     size_t len) {
#ifdef _WIN32
  return setsockopt(static_cast<SOCKET>(s), level, name,
                    static_cast<const char *>(value), static_cast<int>(len));
#else
  return setsockopt(static_cast<int>(s), level, name, value,
                    static_cast<socklen_t>(len));
#endif
}

// A UDP port on `ip` that nobody uses: bound once by a socket now closed.
inline int UnusedUdpPort(const char *ip = "127.0.0.1") {
  proa_sockaddr a;
  EXPECT_EQ(0, proa_sockaddr_from_ip(&a, ip, 0));
  intptr_t s = RawUdpSocket(proa_sockaddr_family(&a));
  EXPECT_NE(-1, s);
  EXPECT_EQ(0, proa_net_test::RawBind(s, a));
  proa_sockaddr bound;
  EXPECT_EQ(0, proa_net_test::RawSockname(s, &bound));
  proa_net_test::RawClose(s);
  return proa_sockaddr_port(&bound);
}

inline proa_sockaddr Ip(const char *ip, int port) {
  proa_sockaddr a;
  EXPECT_EQ(0, proa_sockaddr_from_ip(&a, ip, port)) << ip;
  return a;
}

inline bool SameAddr(const proa_sockaddr &a, const proa_sockaddr &b) {
  char x[64], y[64];
  return proa_sockaddr_format(&a, x, sizeof x) > 0 &&
         proa_sockaddr_format(&b, y, sizeof y) > 0 && strcmp(x, y) == 0;
}

// ---- what the heap holds ----

// Bytes currently allocated on the heap, or -1 where this cannot be told.
inline long long HeapBytes() {
#if defined(PROA_UDP_TEST_ASAN)
  return static_cast<long long>(__sanitizer_get_current_allocated_bytes());
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  return static_cast<long long>(mallinfo2().uordblks + mallinfo2().hblkhd);
#elif defined(_WIN32)
  HANDLE heaps[256];
  DWORD n = GetProcessHeaps(256, heaps);
  if (n == 0 || n > 256)
    return -1;
  long long total = 0;
  for (DWORD i = 0; i < n; i++) {
    if (!HeapLock(heaps[i]))
      continue;
    PROCESS_HEAP_ENTRY e;
    e.lpData = NULL;
    while (HeapWalk(heaps[i], &e))
      if (e.wFlags & PROCESS_HEAP_ENTRY_BUSY)
        total += static_cast<long long>(e.cbData);
    HeapUnlock(heaps[i]);
  }
  return total;
#else
  return -1;
#endif
}

// ---- the kernel's drop counter ----

// The datagrams the kernel dropped on the UDP socket bound to `port`
// (Linux: the "drops" column of /proc/net/udp or udp6; read through Wine's
// Z: drive too), or -1 when that cannot be read.
inline long long KernelUdpDrops(int port, bool v6) {
  FILE *f = std::fopen(v6 ? "/proc/net/udp6" : "/proc/net/udp", "r");
  if (f == nullptr)
    return -1;
  char line[1024];
  long long drops = -1;
  if (std::fgets(line, sizeof line, f) == nullptr) { // the header
    std::fclose(f);
    return -1;
  }
  while (drops < 0 && std::fgets(line, sizeof line, f) != nullptr) {
    char local[128];
    if (std::sscanf(line, "%*d: %127s", local) != 1)
      continue;
    const char *colon = std::strrchr(local, ':');
    if (colon == nullptr || std::strtol(colon + 1, nullptr, 16) != port)
      continue;
    // The last field of the line is the drop counter.
    std::string s(line);
    while (!s.empty() &&
           (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
      s.pop_back();
    size_t sp = s.find_last_of(' ');
    drops = std::strtoll(s.c_str() + (sp == std::string::npos ? 0 : sp + 1),
                         nullptr, 10);
  }
  std::fclose(f);
  return drops;
}

} // namespace proa_udp_test

#endif // PROA_UDP_TEST_H
