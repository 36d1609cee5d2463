// SPDX-License-Identifier: Apache-2.0
// The time type of every timeout in evchan's API.
#ifndef EVCHAN_DURATION_H
#define EVCHAN_DURATION_H

#include <chrono>
#include <type_traits>

namespace evchan {

/// Timeouts are std::chrono durations; milliseconds, seconds and so on
/// convert implicitly.
using Duration = std::chrono::nanoseconds;

/// "Wait as long as it takes": the default timeout of sockets and listeners.
inline constexpr Duration kInfiniteTimeout = Duration::max();

namespace detail {

/// `from + duration`, saturating at the clock's range instead of
/// overflowing: from + kInfiniteTimeout is the time_point::max() that never
/// comes, from + Duration::min() the earliest time_point.  Every deadline
/// evchan computes goes through it.
inline std::chrono::steady_clock::time_point saturatingAdd(std::chrono::steady_clock::time_point from,
                                                           Duration duration) noexcept {
  using TimePoint = std::chrono::steady_clock::time_point;
  static_assert(std::is_same_v<TimePoint::duration, Duration>, "steady_clock counts in Duration's units");
  const Duration::rep base = from.time_since_epoch().count();
  const Duration::rep step = duration.count();
  if (step > 0 && base > Duration::max().count() - step) return TimePoint::max();
  if (step < 0 && base < Duration::min().count() - step) return TimePoint::min();
  return from + duration;
}

}  // namespace detail
}  // namespace evchan

#endif  // EVCHAN_DURATION_H
