// Tests of the error table: proa_strerror(), proa_err_name() and the codes.
#include "proa_test.h"

#include <climits>
#include <set>

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

} // namespace
