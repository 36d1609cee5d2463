// The time type of every timeout in evchan's API.
#ifndef EVCHAN_DURATION_H
#define EVCHAN_DURATION_H

#include <chrono>

namespace evchan {

/// Timeouts are std::chrono durations; milliseconds, seconds and so on
/// convert implicitly.
using Duration = std::chrono::nanoseconds;

/// "Wait as long as it takes": the default timeout of sockets and listeners.
inline constexpr Duration kInfiniteTimeout = Duration::max();

}  // namespace evchan

#endif  // EVCHAN_DURATION_H
