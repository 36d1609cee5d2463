// SPDX-License-Identifier: Apache-2.0
// Test support (Linux): both ends of one ShmStream connection, names for
// the listeners of a test, and a full ring.
#ifndef EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H
#define EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <system_error>

#include <evchan/shm_stream.h>

#include "support/diagnostics.h"

namespace evchan::test {

/// A listener name (abstract namespace) of this process that no other
/// test, suite or process uses: `suite`, the pid, `what` and a count.
inline std::string uniqueShmName(const char* suite, const char* what) {
  static std::atomic<int> counter{0};
  return std::string("@evchan-") + suite + "-" + std::to_string(getpid()) + "-" + what + "-" +
         std::to_string(++counter);
}

struct ShmPair {
  ShmStream client;
  ShmStream server;
};

/// Connects to `listener` with rings of `ringSize` bytes and accepts; every
/// step, and every later call on either end, times out after `patience`.
inline ShmPair connectShmPair(ShmListener& listener, std::size_t ringSize, Duration patience) {
  ShmPair pair;
  std::error_code ec;
  pair.client = ShmStream::connect(listener.name(), patience, ringSize, ec);
  ASSERT_NO_ERROR(ec);
  listener.setTimeout(patience);
  pair.server = listener.accept(ec);
  ASSERT_NO_ERROR(ec);
  pair.client.setTimeout(patience);
  pair.server.setTimeout(patience);
  return pair;
}

/// Fills `stream`'s outgoing ring, so that its next write waits for the
/// peer; its timeout is `patience` again after.
inline void fillRing(ShmStream& stream, Duration patience) {
  stream.setTimeout(Duration::zero());
  char chunk[512] = {};
  std::error_code ec;
  while (!ec) stream.writeSome(chunk, sizeof chunk, ec);
  ASSERT_ERROR(std::errc::timed_out, ec);
  stream.setTimeout(patience);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H
