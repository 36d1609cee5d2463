// SPDX-License-Identifier: Apache-2.0
// Internal: absolute deadlines derived from per-call timeouts.
#ifndef EVCHAN_SRC_POLLER_DEADLINE_H
#define EVCHAN_SRC_POLLER_DEADLINE_H

#include <chrono>
#include <climits>

#include <evchan/duration.h>

namespace evchan::detail {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline constexpr Deadline kNoDeadline = Deadline::max();

/// now + timeout, saturating at kNoDeadline (kInfiniteTimeout never
/// expires; see saturatingAdd in evchan/duration.h).  A negative timeout
/// has expired: its deadline is now, never one so far back that the time
/// left until it overflows.
inline Deadline deadlineAfter(Duration timeout) {
  if (timeout == kInfiniteTimeout) return kNoDeadline;  // no clock read: joins and untimed waits are hot
  return saturatingAdd(Clock::now(), timeout < Duration::zero() ? Duration::zero() : timeout);
}

/// The wait until `deadline` in whole milliseconds for poll(2) and
/// epoll_wait: -1 for none, rounded up (never wake early and spin),
/// clamped to 0..INT_MAX.
inline int timeoutMilliseconds(Deadline deadline, Deadline now = Clock::now()) {
  if (deadline == kNoDeadline) return -1;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_DEADLINE_H
