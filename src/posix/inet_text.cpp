// SPDX-License-Identifier: Apache-2.0
// textToAddressBytes() on POSIX hosts: inet_pton.
#include <arpa/inet.h>
#include <sys/socket.h>

#include "apr/inet_text.h"

namespace evchan::detail {

bool textToAddressBytes(AddressFamily family, const char* text, unsigned char* bytes) noexcept {
  if (family != AddressFamily::IPv4 && family != AddressFamily::IPv6) return false;
  return inet_pton(family == AddressFamily::IPv4 ? AF_INET : AF_INET6, text, bytes) == 1;
}

}  // namespace evchan::detail
