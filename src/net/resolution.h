// SPDX-License-Identifier: Apache-2.0
// Internal: resolve() with a time limit, for connect(Endpoint).
#ifndef EVCHAN_SRC_NET_RESOLUTION_H
#define EVCHAN_SRC_NET_RESOLUTION_H

#include <system_error>
#include <vector>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>

namespace evchan::detail {

/// resolve(endpoint, family, ec), where inside a task a lookup that takes
/// longer than `timeout` ends with std::errc::timed_out (kInfiniteTimeout:
/// no limit; zero: only a numeric host resolves).  Outside a task the
/// system resolver blocks the thread and `timeout` does not apply.
std::vector<Address> resolveWithin(const Endpoint& endpoint, AddressFamily family, Duration timeout,
                                   std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_RESOLUTION_H
