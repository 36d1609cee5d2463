// SPDX-License-Identifier: Apache-2.0
// parseNumericHost(): the numeric hosts that skip the resolver, read by
// the system's inet_pton and printed by APR, as every Address is.
#include <apr_network_io.h>

#include <string>

#include "apr/host_lookup.h"
#include "apr/inet_text.h"

namespace evchan::detail {
namespace {

// The longest numeric host: an IPv6 address with an IPv4 tail.
constexpr std::size_t kLongestNumericHost = 45;

// The text APR gives the address (apr_sockaddr_ip_getbuf), which is what
// an Address from the resolver holds; empty for a family not compiled in.
std::string printed(AddressFamily family, const std::array<unsigned char, 16>& bytes) {
  apr_sockaddr_t address{};
  if (!fillSockaddrBytes(family, bytes.data(), 0, address)) return {};
  char text[64];
  if (apr_sockaddr_ip_getbuf(text, sizeof text, &address) != APR_SUCCESS) return {};
  return text;
}

// Reads `host` as a numeric address in the strict sense of host_lookup.h:
// IPv4 only in the form the system prints (four decimal parts without
// leading zeros: "010" is octal to the C resolver), IPv6 without a zone
// (a "%eth0" needs the system's interface names).  `canonical` is the
// system's text for it.
bool readNumericHost(std::string_view host, AddressFamily& family, std::array<unsigned char, 16>& bytes,
                     std::string& canonical) {
  if (host.empty() || host.size() > kLongestNumericHost) return false;
  const std::string text(host);  // NUL-terminated for the system
  if (text.find('\0') != std::string::npos) return false;
  bytes = {};
  if (textToAddressBytes(AddressFamily::IPv4, text.c_str(), bytes.data())) {
    canonical = printed(AddressFamily::IPv4, bytes);
    if (canonical != text) return false;
    family = AddressFamily::IPv4;
    return true;
  }
  if (text.find(':') == std::string::npos || !textToAddressBytes(AddressFamily::IPv6, text.c_str(), bytes.data()))
    return false;
  canonical = printed(AddressFamily::IPv6, bytes);
  if (canonical.empty()) return false;
  family = AddressFamily::IPv6;
  return true;
}

}  // namespace

bool numericHostBytes(std::string_view host, AddressFamily& family, std::array<unsigned char, 16>& bytes) {
  std::string canonical;
  return readNumericHost(host, family, bytes, canonical);
}

bool parseNumericHost(std::string_view host, AddressFamily& family, std::string& canonical) {
  std::array<unsigned char, 16> bytes{};
  AddressFamily read = AddressFamily::Unspecified;
  if (!readNumericHost(host, read, bytes, canonical)) return false;
  // The IPv6 forms the system prints with an embedded IPv4 address
  // (IPv4-mapped ones it even reports as IPv4) are left to the resolver.
  if (read == AddressFamily::IPv6 && canonical.find('.') != std::string::npos) return false;
  family = read;
  return true;
}

}  // namespace evchan::detail
