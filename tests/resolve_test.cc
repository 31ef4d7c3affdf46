// Tests of addresses and name resolution: proa_sockaddr_* conversions,
// proa_getaddrinfo and proa_getnameinfo on the loop's executor.
#include "net_test.h"

#include <cstring>

using namespace proa_test;
using proa_net_test::Await;

namespace {

// ---- proa_sockaddr ----

TEST(resolveSockaddr, IPv4RoundTrip) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 8080));
  EXPECT_EQ(PROA_AF_INET, proa_sockaddr_family(&a));
  EXPECT_EQ(8080, proa_sockaddr_port(&a));
  EXPECT_GT(a.len, 0);
  char buf[64];
  EXPECT_EQ(9, proa_sockaddr_ip(&a, buf, sizeof buf));
  EXPECT_STREQ("127.0.0.1", buf);
  EXPECT_EQ(14, proa_sockaddr_format(&a, buf, sizeof buf));
  EXPECT_STREQ("127.0.0.1:8080", buf);

  // What ip() printed parses back to the same address.
  proa_sockaddr b;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&b, "127.0.0.1", 8080));
  EXPECT_EQ(a.len, b.len);
  EXPECT_EQ(0, std::memcmp(a.storage, b.storage, static_cast<size_t>(a.len)));
}

TEST(resolveSockaddr, IPv6RoundTripWithBrackets) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "::1", 443));
  EXPECT_EQ(PROA_AF_INET6, proa_sockaddr_family(&a));
  EXPECT_EQ(443, proa_sockaddr_port(&a));
  char buf[64];
  EXPECT_EQ(3, proa_sockaddr_ip(&a, buf, sizeof buf));
  EXPECT_STREQ("::1", buf);
  EXPECT_EQ(9, proa_sockaddr_format(&a, buf, sizeof buf));
  EXPECT_STREQ("[::1]:443", buf);

  // A long form is printed in its canonical short form.
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "2001:db8:0:0:0:0:0:1", 0));
  EXPECT_EQ(11, proa_sockaddr_ip(&a, buf, sizeof buf));
  EXPECT_STREQ("2001:db8::1", buf);
  EXPECT_EQ(15, proa_sockaddr_format(&a, buf, sizeof buf));
  EXPECT_STREQ("[2001:db8::1]:0", buf);
}

TEST(resolveSockaddr, PortLimits) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "10.1.2.3", 0));
  EXPECT_EQ(0, proa_sockaddr_port(&a));
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "10.1.2.3", 65535));
  EXPECT_EQ(65535, proa_sockaddr_port(&a));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "10.1.2.3", -1));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "10.1.2.3", 65536));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "::1", 70000));
}

TEST(resolveSockaddr, BadInput) {
  proa_sockaddr a;
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "localhost", 80))
      << "from_ip must never resolve names";
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "256.1.1.1", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "1.2.3.4.5", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, ":::1", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "[::1]", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, "", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(&a, nullptr, 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_from_ip(nullptr, "127.0.0.1", 80));

  // A zeroed address has no family.
  proa_sockaddr z;
  std::memset(&z, 0, sizeof z);
  char buf[64];
  EXPECT_EQ(PROA_AF_UNSPEC, proa_sockaddr_family(&z));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_port(&z));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_ip(&z, buf, sizeof buf));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_format(&z, buf, sizeof buf));
  EXPECT_EQ(PROA_AF_UNSPEC, proa_sockaddr_family(nullptr));

  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 80));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_ip(&a, nullptr, 64));
  EXPECT_EQ(PROA_EINVAL, proa_sockaddr_format(&a, nullptr, 64));
}

TEST(resolveSockaddr, SmallBuffers) {
  proa_sockaddr a;
  char buf[64];
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 8080));
  // "127.0.0.1" needs 10 bytes with its terminator.
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_ip(&a, buf, 9));
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_ip(&a, buf, 0));
  EXPECT_EQ(9, proa_sockaddr_ip(&a, buf, 10));
  EXPECT_STREQ("127.0.0.1", buf);
  // "127.0.0.1:8080" needs 15.
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_format(&a, buf, 14));
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_format(&a, buf, 1));
  EXPECT_EQ(14, proa_sockaddr_format(&a, buf, 15));
  EXPECT_STREQ("127.0.0.1:8080", buf);

  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "::1", 80));
  EXPECT_EQ(PROA_ENOSPC, proa_sockaddr_format(&a, buf, 8)); // "[::1]:80"
  EXPECT_EQ(8, proa_sockaddr_format(&a, buf, 9));

  // The documented sizes always suffice.
  ASSERT_EQ(0, proa_sockaddr_from_ip(
                   &a, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535));
  char ip[46], full[56];
  int n = proa_sockaddr_ip(&a, ip, sizeof ip);
  EXPECT_GT(n, 0) << proa_err_name(n);
  n = proa_sockaddr_format(&a, full, sizeof full);
  EXPECT_GT(n, 0) << proa_err_name(n);
  if (n > 0) {
    EXPECT_EQ('[', full[0]);
    EXPECT_NE(nullptr, std::strstr(full, "]:65535"));
  }
}

TEST(resolveSockaddr, IPv6Scope) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "fe80::1%1", 22));
  EXPECT_EQ(PROA_AF_INET6, proa_sockaddr_family(&a));
  EXPECT_EQ(22, proa_sockaddr_port(&a));
  char buf[64];
  EXPECT_GT(proa_sockaddr_ip(&a, buf, sizeof buf), 0);
  EXPECT_EQ(0, std::strncmp(buf, "fe80::1", 7)) << buf;
}

// ---- getaddrinfo ----

class resolve : public LoopTest {
protected:
  // Runs getaddrinfo to the end; the list (owned by *f) or the error.
  int Gai(const char *host, const char *port, const proa_addrinfo_hints *hints,
          proa_future **f, proa_addrinfo_list **list) {
    *list = nullptr;
    int rc = proa_getaddrinfo(loop, host, port, hints, f);
    if (rc != 0)
      return rc;
    EXPECT_NE(nullptr, *f);
    rc = Await(loop, *f);
    if (rc == 0) {
      void *v = nullptr;
      EXPECT_EQ(0, proa_future_result(*f, &v));
      *list = static_cast<proa_addrinfo_list *>(v);
      EXPECT_NE(nullptr, *list);
    }
    return rc;
  }

  static std::string Ip(const proa_sockaddr &a) {
    char buf[64];
    return proa_sockaddr_ip(&a, buf, sizeof buf) > 0 ? std::string(buf)
                                                     : std::string("?");
  }
};

TEST_F(resolve, Localhost) {
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = PROA_SOCK_STREAM;
  int rc = Gai("localhost", "80", &hints, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_GE(list->count, 1u);
  ASSERT_NE(nullptr, list->items);
  for (size_t i = 0; i < list->count; i++) {
    const proa_addrinfo &ai = list->items[i];
    SCOPED_TRACE(Ip(ai.addr));
    EXPECT_TRUE(ai.family == PROA_AF_INET || ai.family == PROA_AF_INET6);
    EXPECT_EQ(ai.family, proa_sockaddr_family(&ai.addr));
    EXPECT_EQ(PROA_SOCK_STREAM, ai.socktype);
    EXPECT_EQ(80, proa_sockaddr_port(&ai.addr));
    std::string ip = Ip(ai.addr);
    EXPECT_TRUE(ip.rfind("127.", 0) == 0 || ip == "::1")
        << "localhost resolved to a non-loopback address " << ip;
  }
  EXPECT_EQ(nullptr, list->canonname);
  proa_future_unref(f);
}

TEST_F(resolve, NumericIPv4) {
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = PROA_SOCK_STREAM;
  hints.flags = PROA_AI_NUMERICHOST | PROA_AI_NUMERICSERV;
  int rc = Gai("127.0.0.1", "8080", &hints, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_EQ(1u, list->count);
  EXPECT_EQ(PROA_AF_INET, list->items[0].family);
  EXPECT_EQ(PROA_SOCK_STREAM, list->items[0].socktype);
  EXPECT_EQ("127.0.0.1", Ip(list->items[0].addr));
  EXPECT_EQ(8080, proa_sockaddr_port(&list->items[0].addr));
  proa_future_unref(f);
}

TEST_F(resolve, NumericWithoutSocktype) {
  // Without a socket type glibc lists one entry per type, Windows one
  // entry with type 0: every entry is the address asked for.
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  int rc = Gai("127.0.0.1", "53", nullptr, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_GE(list->count, 1u);
  for (size_t i = 0; i < list->count; i++) {
    EXPECT_EQ(PROA_AF_INET, list->items[i].family);
    EXPECT_EQ("127.0.0.1", Ip(list->items[i].addr));
    EXPECT_EQ(53, proa_sockaddr_port(&list->items[i].addr));
    int type = list->items[i].socktype;
    EXPECT_TRUE(type == 0 || type == PROA_SOCK_STREAM ||
                type == PROA_SOCK_DGRAM)
        << type;
  }
  proa_future_unref(f);
}

TEST_F(resolve, IPv6Hint) {
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.family = PROA_AF_INET6;
  hints.socktype = PROA_SOCK_STREAM;
  int rc = Gai("::1", "443", &hints, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_GE(list->count, 1u);
  for (size_t i = 0; i < list->count; i++) {
    EXPECT_EQ(PROA_AF_INET6, list->items[i].family);
    EXPECT_EQ("::1", Ip(list->items[i].addr));
    EXPECT_EQ(443, proa_sockaddr_port(&list->items[i].addr));
  }
  proa_future_unref(f);
}

TEST_F(resolve, PassiveWithoutHost) {
  // Either argument may be NULL: no host with AI_PASSIVE is the wildcard.
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.family = PROA_AF_INET;
  hints.socktype = PROA_SOCK_STREAM;
  hints.flags = PROA_AI_PASSIVE;
  int rc = Gai(nullptr, "8080", &hints, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_GE(list->count, 1u);
  EXPECT_EQ("0.0.0.0", Ip(list->items[0].addr));
  EXPECT_EQ(8080, proa_sockaddr_port(&list->items[0].addr));
  proa_future_unref(f);
}

TEST_F(resolve, CanonicalName) {
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = PROA_SOCK_STREAM;
  hints.flags = PROA_AI_CANONNAME;
  int rc = Gai("localhost", nullptr, &hints, &f, &list);
  ASSERT_EQ(0, rc) << proa_err_name(rc);
  ASSERT_NE(nullptr, list->canonname);
  EXPECT_GT(std::strlen(list->canonname), 0u);
  proa_future_unref(f);
}

TEST_F(resolve, UnknownHost) {
  // ".invalid" can never resolve (RFC 6761). A host with a working
  // resolver answers EAI_NONAME; a sandbox without one (no DNS server
  // reachable) fails the lookup with EAI_AGAIN or EAI_FAIL instead. Any
  // other outcome, a success above all, is wrong.
  proa_future *f = nullptr;
  proa_addrinfo_list *list = nullptr;
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = PROA_SOCK_STREAM;
  int rc = Gai("nonexistent.invalid", "80", &hints, &f, &list);
  EXPECT_TRUE(rc == PROA_EAI_NONAME || rc == PROA_EAI_AGAIN ||
              rc == PROA_EAI_FAIL)
      << "got " << proa_err_name(rc);
  EXPECT_EQ(nullptr, list);
  proa_future_unref(f);
}

TEST_F(resolve, ImmediateErrors) {
  proa_future *f = reinterpret_cast<proa_future *>(this); // overwritten
  EXPECT_EQ(PROA_EINVAL, proa_getaddrinfo(loop, nullptr, nullptr, nullptr, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EINVAL,
            proa_getaddrinfo(loop, "localhost", "80", nullptr, nullptr));
  EXPECT_EQ(PROA_EINVAL,
            proa_getaddrinfo(nullptr, "localhost", "80", nullptr, &f));
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.family = 99;
  EXPECT_EQ(PROA_EINVAL, proa_getaddrinfo(loop, "localhost", "80", &hints, &f));
  hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = 99;
  EXPECT_EQ(PROA_EINVAL, proa_getaddrinfo(loop, "localhost", "80", &hints, &f));
  EXPECT_EQ(nullptr, f);
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(PROA_ECLOSED,
            proa_getaddrinfo(loop, "localhost", "80", nullptr, &f));
  EXPECT_EQ(nullptr, f);
}

TEST_F(resolve, ManyLookupsAtOnce) {
  const int n = 50;
  std::vector<proa_future *> fs(n, nullptr);
  proa_addrinfo_hints hints = PROA_ADDRINFO_HINTS_INIT;
  hints.socktype = PROA_SOCK_STREAM;
  for (int i = 0; i < n; i++) {
    std::string port = std::to_string(1000 + i);
    ASSERT_EQ(0, proa_getaddrinfo(loop, i % 2 ? "127.0.0.1" : "localhost",
                                  port.c_str(), &hints, &fs[i]));
  }
  EXPECT_TRUE(proa_net_test::RunUntil(loop, [&] {
    for (proa_future *f : fs)
      if (!proa_future_done(f))
        return false;
    return true;
  }));
  for (int i = 0; i < n; i++) {
    void *v = nullptr;
    ASSERT_EQ(0, proa_future_result(fs[i], &v));
    proa_addrinfo_list *list = static_cast<proa_addrinfo_list *>(v);
    ASSERT_GE(list->count, 1u);
    EXPECT_EQ(1000 + i, proa_sockaddr_port(&list->items[0].addr));
    proa_future_unref(fs[i]);
  }
}

TEST_F(resolve, LoopClosedDuringLookup) {
  // The lookup may still be running on a worker: the future ends
  // cancelled and nothing leaks (ASan checks).
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_getaddrinfo(loop, "localhost", "80", nullptr, &f));
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_TRUE(proa_future_cancelled(f));
  proa_future_unref(f);
  SleepMs(50); // let the worker finish against the closed loop
}

// ---- getnameinfo ----

TEST_F(resolve, NameinfoNumeric) {
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 8080));
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_getnameinfo(loop, &a,
                                PROA_NI_NUMERICHOST | PROA_NI_NUMERICSERV, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  proa_nameinfo *ni = static_cast<proa_nameinfo *>(v);
  ASSERT_NE(nullptr, ni);
  EXPECT_STREQ("127.0.0.1", ni->host);
  EXPECT_STREQ("8080", ni->service);
  proa_future_unref(f);

  // Parsing and printing ::1 needs no IPv6 stack.
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "::1", 443));
  ASSERT_EQ(0, proa_getnameinfo(loop, &a,
                                PROA_NI_NUMERICHOST | PROA_NI_NUMERICSERV, &f));
  ASSERT_EQ(0, Await(loop, f));
  ASSERT_EQ(0, proa_future_result(f, &v));
  ni = static_cast<proa_nameinfo *>(v);
  EXPECT_STREQ("::1", ni->host);
  EXPECT_STREQ("443", ni->service);
  proa_future_unref(f);
}

TEST_F(resolve, NameinfoLoopbackName) {
  // Without NUMERICHOST the loopback address has some name (localhost on
  // most systems; the numeric form where no name is known).
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 80));
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_getnameinfo(loop, &a, PROA_NI_NUMERICSERV, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  proa_nameinfo *ni = static_cast<proa_nameinfo *>(v);
  EXPECT_GT(std::strlen(ni->host), 0u);
  EXPECT_STREQ("80", ni->service);
  proa_future_unref(f);
}

TEST_F(resolve, NameinfoBadArguments) {
  proa_sockaddr z;
  std::memset(&z, 0, sizeof z);
  proa_future *f = reinterpret_cast<proa_future *>(this); // overwritten
  EXPECT_EQ(PROA_EINVAL, proa_getnameinfo(loop, &z, 0, &f));
  EXPECT_EQ(nullptr, f);
  EXPECT_EQ(PROA_EINVAL, proa_getnameinfo(loop, nullptr, 0, &f));
  proa_sockaddr a;
  ASSERT_EQ(0, proa_sockaddr_from_ip(&a, "127.0.0.1", 80));
  EXPECT_EQ(PROA_EINVAL, proa_getnameinfo(loop, &a, 0, nullptr));
  ASSERT_EQ(0, proa_loop_close(loop));
  EXPECT_EQ(PROA_ECLOSED, proa_getnameinfo(loop, &a, 0, &f));
  EXPECT_EQ(nullptr, f);
}

} // namespace
