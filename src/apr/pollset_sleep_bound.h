// SPDX-License-Identifier: Apache-2.0
// Internal: how long the apr_pollset backend may sleep in one poll.
#ifndef EVCHAN_SRC_APR_POLLSET_SLEEP_BOUND_H
#define EVCHAN_SRC_APR_POLLSET_SLEEP_BOUND_H

#include <chrono>

namespace evchan::detail {

/// The longest one wait of the apr_pollset backend may sleep, or zero for
/// no bound (until its deadline or a wake-up).  A bound where the host's
/// poll is known to miss wake-ups: Wine's WSAPoll under APR's pollset
/// sleeps on through some of them, and without a bound a socket ready
/// meanwhile waited until the channel's next timer (seconds, a socket's
/// timeout).  Defined per platform; decided once.
std::chrono::microseconds pollsetSleepBound() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_POLLSET_SLEEP_BOUND_H
