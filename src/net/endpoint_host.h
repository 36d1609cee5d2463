// SPDX-License-Identifier: Apache-2.0
// Internal: which host strings evchan accepts, in Endpoint::parse() and
// before handing an Endpoint's host to the system's resolver.
#ifndef EVCHAN_SRC_NET_ENDPOINT_HOST_H
#define EVCHAN_SRC_NET_ENDPOINT_HOST_H

#include <string>
#include <string_view>
#include <system_error>

namespace evchan::detail {

/// Errc::bad_endpoint when `host` holds a NUL: the C resolver would read
/// only the part before it ("127.0.0.1\0.example.com" is 127.0.0.1).
std::error_code checkHostForResolver(const std::string& host) noexcept;

/// True for a host that Endpoint::toString() prints and parse() reads back
/// unchanged: a name or IPv4 address (letters, digits, '-', '.', '_'), or,
/// when it stood in brackets, an IPv6 literal (hex digits, ':' at least
/// twice, '.' for an embedded IPv4 address, "%zone" at the end).
bool isParsableHost(std::string_view host, bool bracketed) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_ENDPOINT_HOST_H
