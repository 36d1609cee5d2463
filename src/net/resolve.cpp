// SPDX-License-Identifier: Apache-2.0
// resolve(): host names and numeric addresses through apr_sockaddr_info_get.
#include <apr_network_io.h>

#include <algorithm>

#include <evchan/address.h>
#include <evchan/error.h>
#include <evchan/system_error.h>

#include "apr/apr_runtime.h"
#include "net/endpoint_host.h"
#include "apr/socket_state.h"  // toAddress

namespace evchan {
namespace {

apr_int32_t toAprFamily(AddressFamily family) {
  switch (family) {
    case AddressFamily::IPv4: return APR_INET;
#if APR_HAVE_IPV6
    case AddressFamily::IPv6: return APR_INET6;
#else
    case AddressFamily::IPv6: return -1;
#endif
    case AddressFamily::Unspecified: break;
  }
  return APR_UNSPEC;
}

}  // namespace

std::vector<Address> resolve(const Endpoint& endpoint, AddressFamily family, std::error_code& ec) noexcept {
  std::vector<Address> addresses;
  if (endpoint.host.empty()) {
    ec = Errc::empty_host;
    return addresses;
  }
  if (endpoint.port < 0 || endpoint.port > 65535) {
    ec = Errc::port_out_of_range;
    return addresses;
  }
  if ((ec = detail::checkHostForResolver(endpoint.host))) return addresses;
  const apr_int32_t aprFamily = toAprFamily(family);
  if (aprFamily < 0) {
    ec = Errc::no_address;
    return addresses;
  }
  detail::PoolPtr pool = detail::createPool(ec);
  if (!pool) return addresses;
  apr_sockaddr_t* list = nullptr;
  if (apr_status_t status = apr_sockaddr_info_get(&list, endpoint.host.c_str(), aprFamily,
                                                  static_cast<apr_port_t>(endpoint.port), 0, pool.get());
      status != APR_SUCCESS) {
    ec = makeAprError(status);
    return addresses;
  }
  for (const apr_sockaddr_t* entry = list; entry != nullptr; entry = entry->next) {
    Address address = detail::toAddress(entry);
    if (!address.empty() && std::find(addresses.begin(), addresses.end(), address) == addresses.end())
      addresses.push_back(std::move(address));
  }
  if (addresses.empty()) ec = Errc::no_address;
  return addresses;
}

std::vector<Address> resolve(const Endpoint& endpoint, AddressFamily family) {
  std::error_code ec;
  std::vector<Address> addresses = resolve(endpoint, family, ec);
  throwIfError(ec, "resolve", endpoint.toString());
  return addresses;
}

}  // namespace evchan
