// SPDX-License-Identifier: Apache-2.0
// Computing without suspending or blocking, for tests of what the pool
// does while an item holds its worker.
#ifndef EVCHAN_TEST_SUPPORT_COMPUTING_H
#define EVCHAN_TEST_SUPPORT_COMPUTING_H

#include <chrono>

#include <evchan/duration.h>

namespace evchan::test {

/// Spins for `span` of wall time.
inline void computeFor(Duration span) {
  const auto end = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < end) {
  }
}

/// Spins until `done()`, at most `limit`; whether done() came true.
template <class Done>
bool computeUntil(Duration limit, Done done) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
  }
  return true;
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_COMPUTING_H
