// SPDX-License-Identifier: Apache-2.0
// Internal: one non-blocking try of a socket event's operation.
#ifndef EVCHAN_SRC_CHANNEL_IO_ATTEMPTS_H
#define EVCHAN_SRC_CHANNEL_IO_ATTEMPTS_H

#include <system_error>

#include "poller/watch.h"

namespace evchan::detail {

struct AttemptResult {
  bool done = false;     ///< the event is complete (successfully or not)
  bool drained = false;  ///< the socket has nothing more for now (a hint)
  std::error_code error;
};

/// Tries a ReadEvent or AcceptEvent once, with watch.mutex held.
AttemptResult attemptRead(Event& event, Watch& watch) noexcept;
/// Tries a WriteEvent once, or finishes a ConnectEvent, with watch.mutex held.
AttemptResult attemptWrite(Event& event, Watch& watch) noexcept;

/// The error of a completion backend's failed operation (`result`: -errno):
/// operation_canceled for -ECANCELED, else the system error.
std::error_code kernelError(int result) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_IO_ATTEMPTS_H
