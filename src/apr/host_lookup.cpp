// SPDX-License-Identifier: Apache-2.0
// The system resolver through apr_sockaddr_info_get, and the checks and
// numeric fast path that come before it.
#include "apr/host_lookup.h"

#include <apr_network_io.h>
#include <apr_strings.h>

#include <algorithm>
#include <cstring>
#include <new>

#include <evchan/error.h>

#include "apr/apr_runtime.h"
#include "apr/socket_state.h"  // toAddress

namespace evchan::detail {
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

std::error_code checkLookup(const Endpoint& endpoint) noexcept {
  if (endpoint.host.empty()) return Errc::empty_host;
  if (endpoint.port < 0 || endpoint.port > 65535) return Errc::port_out_of_range;
  // The C resolver would read only the part before a NUL
  // ("127.0.0.1\0.example.com" is 127.0.0.1).
  if (endpoint.host.find('\0') != std::string::npos) return Errc::bad_endpoint;
  return {};
}

bool resolveNumeric(const Endpoint& endpoint, AddressFamily family, std::vector<Address>& addresses,
                    std::error_code& ec) noexcept {
  try {
    AddressFamily numericFamily = AddressFamily::Unspecified;
    std::string canonical;
    if (!parseNumericHost(endpoint.host, numericFamily, canonical)) return false;
    // Another family than the literal's: the resolver's own answer (an error).
    if (family != AddressFamily::Unspecified && family != numericFamily) return false;
    addresses.assign(1, Address::fromNumeric(std::move(canonical), endpoint.port, numericFamily));
    ec.clear();
  } catch (const std::bad_alloc&) {
    addresses.clear();
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return true;
}

bool fillSockaddrBytes(AddressFamily family, const unsigned char* bytes, int port, apr_sockaddr_t& target) noexcept {
  target.port = static_cast<apr_port_t>(port);
  // The fields APR's own resolver sets for each family.
  if (family == AddressFamily::IPv4) {
    target.family = APR_INET;
    target.sa.sin.sin_family = AF_INET;
    target.sa.sin.sin_port = htons(target.port);
    std::memcpy(&target.sa.sin.sin_addr, bytes, 4);
    target.salen = sizeof target.sa.sin;
    target.ipaddr_len = sizeof target.sa.sin.sin_addr;
    target.addr_str_len = 16;
    target.ipaddr_ptr = &target.sa.sin.sin_addr;
    return true;
  }
#if APR_HAVE_IPV6
  if (family != AddressFamily::IPv6) return false;
  target.family = APR_INET6;
  target.sa.sin6.sin6_family = AF_INET6;
  target.sa.sin6.sin6_port = htons(target.port);
  std::memcpy(&target.sa.sin6.sin6_addr, bytes, 16);
  target.salen = sizeof target.sa.sin6;
  target.ipaddr_len = sizeof target.sa.sin6.sin6_addr;
  target.addr_str_len = 46;
  target.ipaddr_ptr = &target.sa.sin6.sin6_addr;
  return true;
#else
  return false;
#endif
}

bool fillNumericSockaddr(const Address& address, apr_sockaddr_t& target) noexcept {
  AddressFamily family = AddressFamily::Unspecified;
  std::array<unsigned char, 16> bytes{};
  try {
    if (!numericHostBytes(address.host(), family, bytes) || family != address.family()) return false;
  } catch (const std::bad_alloc&) {
    return false;
  }
  return fillSockaddrBytes(family, bytes.data(), address.port(), target);
}

apr_sockaddr_t* numericSockaddr(const Address& address, apr_pool_t* pool) noexcept {
  apr_sockaddr_t filled{};
  if (!fillNumericSockaddr(address, filled)) return nullptr;
  auto* target = static_cast<apr_sockaddr_t*>(apr_pcalloc(pool, sizeof(apr_sockaddr_t)));
  *target = filled;
  // ipaddr_ptr points into the copy's own sa.
  target->ipaddr_ptr = filled.family == APR_INET ? static_cast<void*>(&target->sa.sin.sin_addr)
#if APR_HAVE_IPV6
                                                  : static_cast<void*>(&target->sa.sin6.sin6_addr);
#else
                                                  : nullptr;
#endif
  target->pool = pool;
  target->hostname = apr_pstrdup(pool, address.host().c_str());
  return target;
}

std::vector<Address> lookUpHost(const Endpoint& endpoint, AddressFamily family, std::error_code& ec) noexcept {
  std::vector<Address> addresses;
  const apr_int32_t aprFamily = toAprFamily(family);
  if (aprFamily < 0) {
    ec = Errc::no_address;
    return addresses;
  }
  PoolPtr pool = createPool(ec);
  if (!pool) return addresses;
  apr_sockaddr_t* list = nullptr;
  if (apr_status_t status = apr_sockaddr_info_get(&list, endpoint.host.c_str(), aprFamily,
                                                  static_cast<apr_port_t>(endpoint.port), 0, pool.get());
      status != APR_SUCCESS) {
    ec = makeAprError(status);
    return addresses;
  }
  try {
    for (const apr_sockaddr_t* entry = list; entry != nullptr; entry = entry->next) {
      Address address = toAddress(entry);
      // An IPv4-mapped IPv6 answer reads as IPv4 (toAddress): not of the
      // family asked for.
      if (address.empty() || (family != AddressFamily::Unspecified && address.family() != family)) continue;
      if (std::find(addresses.begin(), addresses.end(), address) == addresses.end())
        addresses.push_back(std::move(address));
    }
  } catch (const std::bad_alloc&) {
    addresses.clear();
    ec = std::make_error_code(std::errc::not_enough_memory);
    return addresses;
  }
  ec = addresses.empty() ? std::error_code(Errc::no_address) : std::error_code();
  return addresses;
}

}  // namespace evchan::detail
