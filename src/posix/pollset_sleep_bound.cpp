// SPDX-License-Identifier: Apache-2.0
// POSIX hosts: APR's pollset (epoll, kqueue, poll) keeps its wake-ups.
#include "apr/pollset_sleep_bound.h"

namespace evchan::detail {

std::chrono::microseconds pollsetSleepBound() noexcept { return std::chrono::microseconds::zero(); }

}  // namespace evchan::detail
