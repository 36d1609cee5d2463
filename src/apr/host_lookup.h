// SPDX-License-Identifier: Apache-2.0
// Internal: turning an Endpoint into Addresses, for resolve() and for the
// channel's ResolveEvent: the checks, the numeric fast path, the lookup.
#ifndef EVCHAN_SRC_APR_HOST_LOOKUP_H
#define EVCHAN_SRC_APR_HOST_LOOKUP_H

#include <apr_network_io.h>

#include <array>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <evchan/address.h>
#include <evchan/endpoint.h>

namespace evchan::detail {

/// What must hold before any lookup: a host (Errc::empty_host) without a
/// NUL (Errc::bad_endpoint), a port in 0..65535 (Errc::port_out_of_range).
std::error_code checkLookup(const Endpoint& endpoint) noexcept;

/// A numeric host that needs no resolver: an IPv4 address in strict dotted
/// decimal (four parts, no leading zeros: "010" is octal to the C
/// resolver) or an IPv6 literal without a zone.  True with `family` and
/// `canonical`, the text the system would print for it ("::1" for
/// "0:0::1"); false for anything else, including the literals the system
/// prints with an embedded IPv4 address, which go to the resolver.
bool parseNumericHost(std::string_view host, AddressFamily& family, std::string& canonical);

/// The bytes of a numeric host as parseNumericHost() reads it (IPv4 in
/// the first four), whatever the system would print for it; false for
/// anything else.
bool numericHostBytes(std::string_view host, AddressFamily& family, std::array<unsigned char, 16>& bytes);

/// Fills `target` (zeroed by the caller) with the 4 (IPv4) or 16 (IPv6)
/// address bytes at `bytes` and `port`, the fields set as APR's own
/// resolver sets them; false for a family not compiled in.
bool fillSockaddrBytes(AddressFamily family, const unsigned char* bytes, int port, apr_sockaddr_t& target) noexcept;

/// Fills `target` (zeroed by the caller) with a numeric Address as
/// numericSockaddr() does, without a pool (no hostname); false when the
/// host is not numeric.  The result may live on the stack: for calls that
/// only read it (sendto), never for one APR keeps (bind, connect).
bool fillNumericSockaddr(const Address& address, apr_sockaddr_t& target) noexcept;

/// The apr_sockaddr_t of a numeric Address, built in `pool` without the
/// resolver (apr_sockaddr_info_get() would call getaddrinfo() even for
/// "127.0.0.1"); null when the host is not numeric in the strict sense
/// above (or its family is not compiled in), for the caller to look up.
apr_sockaddr_t* numericSockaddr(const Address& address, apr_pool_t* pool) noexcept;

/// The numeric fast path: when `endpoint` (already checked) is a numeric
/// host of `family` (or family Unspecified), its one address, without a
/// lookup; true then (`addresses` set, `ec` cleared, or ec set when out of
/// memory).  False: the host needs the resolver.
bool resolveNumeric(const Endpoint& endpoint, AddressFamily family, std::vector<Address>& addresses,
                    std::error_code& ec) noexcept;

/// The system resolver (apr_sockaddr_info_get) on the calling thread,
/// which it blocks for as long as the lookup takes.  Addresses in the
/// resolver's order without duplicates, only those of `family` (unless
/// Unspecified; an IPv4-mapped IPv6 answer counts as IPv4); errors: the
/// APR status, Errc::no_address.  `endpoint` must have passed checkLookup().
std::vector<Address> lookUpHost(const Endpoint& endpoint, AddressFamily family, std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_HOST_LOOKUP_H
