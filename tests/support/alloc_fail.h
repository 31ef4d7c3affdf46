// Allocation failure injection for the tests: the test executables are
// linked with --wrap=malloc,calloc,realloc (GNU ld, where available), so
// every allocation proa makes goes through alloc_fail.cc, which can make
// the n-th next one on a given thread fail. Available() says whether it
// works in this build; tests that need it skip otherwise (MSVC, macOS).
#ifndef PROA_ALLOC_FAIL_H
#define PROA_ALLOC_FAIL_H

namespace proa_alloc_fail {

// Whether the wrappers are linked in and work.
bool Available();
// Makes the n-th next allocation (n >= 1) on the calling thread fail,
// once; 0 disarms.
void FailNth(int n);
// Allocations failed by the injection since the last FailNth.
int Failures();

} // namespace proa_alloc_fail

#define PROA_NEED_ALLOC_FAIL()                                                 \
  do {                                                                         \
    if (!proa_alloc_fail::Available())                                         \
      GTEST_SKIP() << "allocation failure injection needs ld --wrap";          \
  } while (0)

#endif // PROA_ALLOC_FAIL_H
