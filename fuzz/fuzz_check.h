// SPDX-License-Identifier: Apache-2.0
// The fuzz targets' assertion: a broken invariant prints what broke and
// aborts, which libFuzzer reports as a crash with the input that did it.
#ifndef EVCHAN_FUZZ_CHECK_H
#define EVCHAN_FUZZ_CHECK_H

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                    \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #condition);     \
      std::abort();                                                                              \
    }                                                                                            \
  } while (false)

#endif  // EVCHAN_FUZZ_CHECK_H
