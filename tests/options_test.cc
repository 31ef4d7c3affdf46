// Tests of the options structs' size field (common.h): a caller built
// against an older header (a smaller size) gets the defaults for the fields
// it does not know, and a size the library cannot take is refused.
#include "proa_test.h"

#include <cstddef>
#include <cstring>

namespace {

// A struct as a newer header would make it: the known fields, then more.
template <typename T> struct Newer {
  T o;
  char extra[16];
};

int NoProtocolTask(void *, void **) { return 0; }

int Await(proa_loop *loop, proa_future *f) {
  return proa_loop_run_until_complete(loop, f, nullptr);
}

class Options : public proa_test::LoopTest {};

TEST_F(Options, InitMacrosSetTheSize) {
  proa_loop_options l = PROA_LOOP_OPTIONS_INIT;
  proa_task_options t = PROA_TASK_OPTIONS_INIT;
  proa_addrinfo_hints h = PROA_ADDRINFO_HINTS_INIT;
  proa_connect_options c = PROA_CONNECT_OPTIONS_INIT;
  proa_server_options s = PROA_SERVER_OPTIONS_INIT;
  proa_datagram_options d = PROA_DATAGRAM_OPTIONS_INIT;
  EXPECT_EQ(sizeof l, l.size);
  EXPECT_EQ(sizeof t, t.size);
  EXPECT_EQ(sizeof h, h.size);
  EXPECT_EQ(sizeof c, c.size);
  EXPECT_EQ(sizeof s, s.size);
  EXPECT_EQ(sizeof d, d.size);
  // The defaults behind the size are unchanged.
  EXPECT_EQ(nullptr, l.backend);
  EXPECT_EQ(-1, l.debug);
  EXPECT_EQ(-1, c.sock);
  EXPECT_EQ(100, s.backlog);
  EXPECT_TRUE(s.start_serving);
  EXPECT_EQ(-1, d.sock);
}

// Each "old caller" below sets a field past its size to a value that the
// library would refuse (or act on) if it read it.

TEST_F(Options, OldLoopOptions) {
  proa_loop_options o = PROA_LOOP_OPTIONS_INIT;
  o.backend = "no-such-backend";
  proa_loop *l = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_loop_new_ex(&l, &o)) << "the field is read";
  o.size = offsetof(proa_loop_options, backend);
  ASSERT_EQ(0, proa_loop_new_ex(&l, &o));
  EXPECT_STRNE("no-such-backend", proa_loop_backend(l));
  EXPECT_EQ(0, proa_loop_free(l));
}

TEST_F(Options, OldTaskOptions) {
  proa_task_options o = PROA_TASK_OPTIONS_INIT;
  o.size = offsetof(proa_task_options, stack_size);
  o.stack_size = SIZE_MAX / 2; // no stack this large exists
  proa_future *f = nullptr;
  ASSERT_EQ(0, proa_create_task(loop, NoProtocolTask, nullptr, &o, &f));
  EXPECT_EQ(0, Await(loop, f));
  proa_future_unref(f);
}

TEST_F(Options, OldAddrinfoHints) {
  proa_addrinfo_hints h = PROA_ADDRINFO_HINTS_INIT;
  h.family = 99; // not a family: PROA_EINVAL if read
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EINVAL, proa_getaddrinfo(loop, "127.0.0.1", "80", &h, &f));
  h.size = offsetof(proa_addrinfo_hints, family);
  ASSERT_EQ(0, proa_getaddrinfo(loop, "127.0.0.1", "80", &h, &f));
  EXPECT_EQ(0, Await(loop, f));
  proa_future_unref(f);
}

TEST_F(Options, OldConnectOptions) {
  proa_connect_options o = PROA_CONNECT_OPTIONS_INIT;
  int dummy = 0;
  o.ssl = &dummy; // PROA_ENOTSUP if read
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ENOTSUP, proa_create_connection(loop, nullptr, nullptr,
                                                 "127.0.0.1", 9, &o, &f));
  o.size = offsetof(proa_connect_options, ssl);
  ASSERT_EQ(0, proa_create_connection(loop, nullptr, nullptr, "127.0.0.1", 9,
                                      &o, &f));
  proa_future_cancel(f, nullptr);
  Await(loop, f); // refused or cancelled: the options were taken
  proa_future_unref(f);
}

int RefuseAll(void *, const proa_protocol **, void **) { return PROA_EPERM; }

TEST_F(Options, OldServerOptions) {
  proa_server_options o = PROA_SERVER_OPTIONS_INIT;
  int dummy = 0;
  o.ssl = &dummy;
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_ENOTSUP, proa_create_server(loop, RefuseAll, nullptr,
                                             "127.0.0.1", 0, &o, &f));
  o.size = offsetof(proa_server_options, ssl);
  ASSERT_EQ(
      0, proa_create_server(loop, RefuseAll, nullptr, "127.0.0.1", 0, &o, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  proa_server *s = static_cast<proa_server *>(v);
  EXPECT_EQ(1u, proa_server_socket_count(s));
  proa_server_close(s);
  proa_future_unref(f);
}

TEST_F(Options, OldDatagramOptions) {
  proa_datagram_options o = PROA_DATAGRAM_OPTIONS_INIT;
  o.family = PROA_AF_INET;
  o.sock = 0; // with a family: PROA_EINVAL if read
  proa_future *f = nullptr;
  EXPECT_EQ(PROA_EINVAL,
            proa_create_datagram_endpoint(loop, nullptr, nullptr, &o, &f));
  o.size = offsetof(proa_datagram_options, sock);
  ASSERT_EQ(0, proa_create_datagram_endpoint(loop, nullptr, nullptr, &o, &f));
  ASSERT_EQ(0, Await(loop, f));
  void *v = nullptr;
  ASSERT_EQ(0, proa_future_result(f, &v));
  proa_datagram_abort(static_cast<proa_datagram *>(v));
  proa_future_unref(f);
  proa_test::RunOnce(loop);
}

TEST_F(Options, BadSizesAreRefused) {
  proa_future *f = nullptr;
  proa_loop *l = nullptr;
  for (int newer = 0; newer < 2; newer++) {
    SCOPED_TRACE(newer ? "size larger than known" : "size 0");
    Newer<proa_loop_options> lo = {PROA_LOOP_OPTIONS_INIT, {0}};
    Newer<proa_task_options> to = {PROA_TASK_OPTIONS_INIT, {0}};
    Newer<proa_addrinfo_hints> ho = {PROA_ADDRINFO_HINTS_INIT, {0}};
    Newer<proa_connect_options> co = {PROA_CONNECT_OPTIONS_INIT, {0}};
    Newer<proa_server_options> so = {PROA_SERVER_OPTIONS_INIT, {0}};
    Newer<proa_datagram_options> dop = {PROA_DATAGRAM_OPTIONS_INIT, {0}};
    dop.o.family = PROA_AF_INET;
    size_t more = newer ? 8 : 0;
    lo.o.size = newer ? sizeof lo.o + more : 0;
    to.o.size = newer ? sizeof to.o + more : 0;
    ho.o.size = newer ? sizeof ho.o + more : 0;
    co.o.size = newer ? sizeof co.o + more : 0;
    so.o.size = newer ? sizeof so.o + more : 0;
    dop.o.size = newer ? sizeof dop.o + more : 0;
    EXPECT_EQ(PROA_EINVAL, proa_loop_new_ex(&l, &lo.o));
    EXPECT_EQ(nullptr, l);
    EXPECT_EQ(PROA_EINVAL,
              proa_create_task(loop, NoProtocolTask, nullptr, &to.o, &f));
    EXPECT_EQ(PROA_EINVAL,
              proa_getaddrinfo(loop, "127.0.0.1", "80", &ho.o, &f));
    EXPECT_EQ(PROA_EINVAL, proa_create_connection(loop, nullptr, nullptr,
                                                  "127.0.0.1", 9, &co.o, &f));
    EXPECT_EQ(PROA_EINVAL, proa_create_server(loop, RefuseAll, nullptr,
                                              "127.0.0.1", 0, &so.o, &f));
    EXPECT_EQ(PROA_EINVAL, proa_create_datagram_endpoint(loop, nullptr, nullptr,
                                                         &dop.o, &f));
    EXPECT_EQ(nullptr, f);
  }
}

} // namespace
