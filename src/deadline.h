// Internal: absolute deadlines derived from per-call timeouts.
#ifndef EVCHAN_SRC_DEADLINE_H
#define EVCHAN_SRC_DEADLINE_H

#include <chrono>

#include <evchan/duration.h>

namespace evchan::detail {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline constexpr Deadline kNoDeadline = Deadline::max();

/// now + timeout, saturating at kNoDeadline (kInfiniteTimeout never expires).
inline Deadline deadlineAfter(Duration timeout) {
  const Deadline now = Clock::now();
  if (timeout >= std::chrono::duration_cast<Duration>(kNoDeadline - now)) return kNoDeadline;
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_DEADLINE_H
