// SPDX-License-Identifier: Apache-2.0
// How much slower than a quiet machine a suite may run.  The suites assert
// no speed; the few upper bounds on elapsed time they keep tell "promptly"
// from "hung" or "waited for the whole timeout", and every such bound, like
// every patience that detects a hang, is stretched by this factor.
#ifndef EVCHAN_TEST_SUPPORT_SLOWDOWN_H
#define EVCHAN_TEST_SUPPORT_SLOWDOWN_H

#include <chrono>
#include <cstdlib>

#include "support/host_behaviour.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EVCHAN_TEST_VALGRIND 1
#endif
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVCHAN_TEST_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define EVCHAN_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define EVCHAN_TEST_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EVCHAN_TEST_ASAN 1
#endif

namespace evchan::test {

/// 1 for a plain build; 10 under ThreadSanitizer, 4 under AddressSanitizer,
/// 20 under valgrind; times EVCHAN_TEST_SLOWDOWN when that is set to a
/// number of 1 or more (for a machine slower than these allow for).
inline double slowdown() {
  static const double factor = [] {
    double f = 1;
#if defined(EVCHAN_TEST_TSAN)
    f = 10;
#elif defined(EVCHAN_TEST_ASAN)
    f = 4;
#endif
#if defined(EVCHAN_TEST_VALGRIND)
    if (RUNNING_ON_VALGRIND) f = 20;
#endif
    if (const char* text = std::getenv("EVCHAN_TEST_SLOWDOWN")) {
      const double extra = std::strtod(text, nullptr);
      if (extra >= 1) f *= extra;
    }
    return f;
  }();
  return factor;
}

/// `bound` stretched by slowdown(): for a bound that detects a hang or a
/// wait that should not have happened, never for a speed.
template <class Rep, class Period>
std::chrono::steady_clock::duration generous(std::chrono::duration<Rep, Period> bound) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(bound * slowdown());
}

/// Rounds of a race test: `plain`, a quarter of it under ThreadSanitizer
/// (every switch ten times slower, every task's fiber costs milliseconds)
/// and under Wine (every thread switch goes through the wineserver: the
/// race suites took 8 to 30 times as long as on Linux), times the number
/// in the environment variable `factorVariable` when it is set (a long
/// hunt); at least 1.
inline int raceRounds(double plain, const char* factorVariable) {
  double n = plain;
#if defined(EVCHAN_TEST_TSAN)
  n /= 4;
#endif
#if defined(_WIN32)
  if (runningUnderWine()) n /= 4;
#endif
  if (const char* text = std::getenv(factorVariable)) {
    const double factor = std::strtod(text, nullptr);
    if (factor > 0) n *= factor;
  }
  return n < 1 ? 1 : static_cast<int>(n);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_SLOWDOWN_H
