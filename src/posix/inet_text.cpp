// SPDX-License-Identifier: Apache-2.0
// textToAddressBytes() and addressBytesToText() on POSIX hosts: inet_pton
// and inet_ntop.
#include <arpa/inet.h>
#include <sys/socket.h>

#include "apr/inet_text.h"

namespace evchan::detail {

bool textToAddressBytes(AddressFamily family, const char* text, unsigned char* bytes) noexcept {
  if (family != AddressFamily::IPv4 && family != AddressFamily::IPv6) return false;
  return inet_pton(family == AddressFamily::IPv4 ? AF_INET : AF_INET6, text, bytes) == 1;
}

std::string addressBytesToText(AddressFamily family, const unsigned char* bytes) {
  if (family != AddressFamily::IPv4 && family != AddressFamily::IPv6) return {};
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family == AddressFamily::IPv4 ? AF_INET : AF_INET6, bytes, text, sizeof text) == nullptr) return {};
  return text;
}

}  // namespace evchan::detail
