// SPDX-License-Identifier: Apache-2.0
// Test support (Linux): both ends of one ShmStream connection.
#ifndef EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H
#define EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H

#include <cstddef>
#include <system_error>

#include <evchan/shm_stream.h>

#include "support/diagnostics.h"

namespace evchan::test {

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

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_SHM_PAIR_H
