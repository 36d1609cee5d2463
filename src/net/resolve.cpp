// SPDX-License-Identifier: Apache-2.0
// resolve(): numeric hosts at once; names by the system resolver, which
// inside a task runs on the channel's resolver threads (a ResolveEvent)
// while the task is suspended, so the worker runs other tasks meanwhile.
#include <new>

#include <evchan/address.h>
#include <evchan/error.h>
#include <evchan/resolve_event.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "apr/host_lookup.h"
#include "net/resolution.h"
#include "task/await.h"

namespace evchan {

std::vector<Address> detail::resolveWithin(const Endpoint& endpoint, AddressFamily family, Duration timeout,
                                           std::error_code& ec) noexcept {
  std::vector<Address> addresses;
  if ((ec = checkLookup(endpoint))) return addresses;
  if (resolveNumeric(endpoint, family, addresses, ec)) return addresses;
  if (!inTask()) return lookUpHost(endpoint, family, ec);
  if (timeout <= Duration::zero()) {
    ec = std::make_error_code(std::errc::timed_out);
    return addresses;
  }
  try {
    ResolveEvent lookup(endpoint, family);
    awaitInTask(lookup, timeout, ec);
    if (!ec) addresses = lookup.takeAddresses();
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return addresses;
}

std::vector<Address> resolve(const Endpoint& endpoint, AddressFamily family, std::error_code& ec) noexcept {
  return detail::resolveWithin(endpoint, family, kInfiniteTimeout, ec);
}

std::vector<Address> resolve(const Endpoint& endpoint, AddressFamily family) {
  std::error_code ec;
  std::vector<Address> addresses = resolve(endpoint, family, ec);
  throwIfError(ec, "resolve", endpoint.toString());
  return addresses;
}

}  // namespace evchan
