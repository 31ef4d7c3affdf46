// Tests of the error table: proa_strerror(), proa_err_name() and the codes.
#include "proa_test.h"

#include <climits>
#include <set>

#ifdef _WIN32
#include <winsock2.h>
// The backend's translators (internal, but linked in from the static
// library): the same failure must give the same code on every OS.
extern "C" int proa__translate_wsa(int err);
extern "C" int proa__translate_win32(unsigned long err);
#else
#include <cerrno>
extern "C" int proa__translate_errno(int err);
#endif

namespace {

struct ErrorRow {
  const char *name;
  int num;
  const char *text;
};

const ErrorRow kTable[] = {
#define ROW(name, num, text) {#name, num, text},
    PROA_ERROR_TABLE(ROW)
#undef ROW
};

TEST(Error, TableIsNotEmpty) {
  EXPECT_GE(sizeof kTable / sizeof kTable[0], 14u);
}

TEST(Error, CodesAreNegativeAndUnique) {
  std::set<int> seen;
  for (const ErrorRow &row : kTable) {
    EXPECT_LT(row.num, 0) << row.name;
    EXPECT_TRUE(seen.insert(row.num).second) << "duplicate code " << row.num;
  }
}

TEST(Error, EnumMatchesTable) {
  EXPECT_EQ(0, PROA_OK);
  EXPECT_EQ(-1, PROA_EUNKNOWN);
  EXPECT_EQ(-2, PROA_EINVAL);
  EXPECT_EQ(-4, PROA_ECANCELED);
  EXPECT_EQ(-13, PROA_ESTOPPED);
}

TEST(Error, NamesRoundTrip) {
  std::set<std::string> names;
  for (const ErrorRow &row : kTable) {
    const char *name = proa_err_name(row.num);
    ASSERT_NE(nullptr, name) << row.num;
    EXPECT_STRNE("", name) << row.num;
    EXPECT_STREQ(row.name, name) << row.num;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
  }
}

TEST(Error, DescriptionsRoundTrip) {
  for (const ErrorRow &row : kTable) {
    const char *text = proa_strerror(row.num);
    ASSERT_NE(nullptr, text) << row.name;
    EXPECT_STRNE("", text) << row.name;
    EXPECT_STREQ(row.text, text) << row.name;
  }
}

TEST(Error, Success) {
  EXPECT_STREQ("OK", proa_err_name(0));
  EXPECT_STREQ("success", proa_strerror(0));
}

TEST(Error, UnknownCodes) {
  // Every number that is not in the table, over a generous range, plus the
  // extremes.
  std::set<int> known;
  for (const ErrorRow &row : kTable)
    known.insert(row.num);
  std::vector<int> unknown = {INT_MIN, INT_MIN + 1, INT_MAX, -100000, 100000};
  for (int code = -1000; code <= 1000; ++code)
    if (code != 0 && known.count(code) == 0)
      unknown.push_back(code);
  for (int code : unknown) {
    EXPECT_STREQ("EUNKNOWN", proa_err_name(code)) << code;
    EXPECT_STREQ("unknown error", proa_strerror(code)) << code;
  }
}

TEST(Error, StringsAreStatic) {
  // The same pointer each time: nothing allocated, nothing to free.
  EXPECT_EQ(proa_strerror(PROA_EINVAL), proa_strerror(PROA_EINVAL));
  EXPECT_EQ(proa_err_name(PROA_EINVAL), proa_err_name(PROA_EINVAL));
}

TEST(Error, ThreadSafe) {
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&bad] {
      for (int i = 0; i < 2000; ++i)
        for (const ErrorRow &row : kTable)
          if (std::strcmp(proa_err_name(row.num), row.name) != 0 ||
              std::strcmp(proa_strerror(row.num), row.text) != 0)
            ++bad;
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(0, bad.load());
}

TEST(Error, SocketCodesAreInTheTable) {
  const struct {
    int code;
    const char *name;
  } codes[] = {
      {PROA_EPROTONOSUPPORT, "EPROTONOSUPPORT"},
      {PROA_ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"},
      {PROA_EPROTOTYPE, "EPROTOTYPE"},
      {PROA_ENOPROTOOPT, "ENOPROTOOPT"},
      {PROA_ESHUTDOWN, "ESHUTDOWN"},
      {PROA_ENETRESET, "ENETRESET"},
      {PROA_EHOSTDOWN, "EHOSTDOWN"},
      {PROA_EDESTADDRREQ, "EDESTADDRREQ"},
      {PROA_ENAMETOOLONG, "ENAMETOOLONG"},
  };
  for (const auto &c : codes) {
    EXPECT_LT(c.code, 0) << c.name;
    EXPECT_STREQ(c.name, proa_err_name(c.code));
    EXPECT_STRNE("unknown error", proa_strerror(c.code)) << c.name;
  }
}

TEST(Error, OsSocketCodesTranslateAlikeEverywhere) {
  struct Case {
    int os;
    int want;
  };
#ifdef _WIN32
  const Case cases[] = {
      {WSAEPROTONOSUPPORT, PROA_EPROTONOSUPPORT},
      {WSAESOCKTNOSUPPORT, PROA_ESOCKTNOSUPPORT},
      {WSAEPROTOTYPE, PROA_EPROTOTYPE},
      {WSAENOPROTOOPT, PROA_ENOPROTOOPT},
      {WSAESHUTDOWN, PROA_ESHUTDOWN},
      {WSAENETRESET, PROA_ENETRESET},
      {WSAEHOSTDOWN, PROA_EHOSTDOWN},
      {WSAEDESTADDRREQ, PROA_EDESTADDRREQ},
      {WSAENAMETOOLONG, PROA_ENAMETOOLONG},
  };
  for (const Case &c : cases)
    EXPECT_STREQ(proa_err_name(c.want),
                 proa_err_name(proa__translate_wsa(c.os)))
        << "WSA error " << c.os;
  EXPECT_STREQ("ENAMETOOLONG",
               proa_err_name(proa__translate_win32(206))); // FILENAME_EXCED
#else
  const Case cases[] = {
      {EPROTONOSUPPORT, PROA_EPROTONOSUPPORT},
#ifdef ESOCKTNOSUPPORT
      {ESOCKTNOSUPPORT, PROA_ESOCKTNOSUPPORT},
#endif
      {EPROTOTYPE, PROA_EPROTOTYPE},
      {ENOPROTOOPT, PROA_ENOPROTOOPT},
#ifdef ESHUTDOWN
      {ESHUTDOWN, PROA_ESHUTDOWN},
#endif
      {ENETRESET, PROA_ENETRESET},
#ifdef EHOSTDOWN
      {EHOSTDOWN, PROA_EHOSTDOWN},
#endif
      {EDESTADDRREQ, PROA_EDESTADDRREQ},
      {ENAMETOOLONG, PROA_ENAMETOOLONG},
  };
  for (const Case &c : cases)
    EXPECT_STREQ(proa_err_name(c.want),
                 proa_err_name(proa__translate_errno(c.os)))
        << "errno " << c.os;
#endif
}

} // namespace
