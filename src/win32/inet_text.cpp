// SPDX-License-Identifier: Apache-2.0
// textToAddressBytes() on Windows hosts: Winsock's inet_pton (Vista and
// later; it needs no WSAStartup).
// APR's headers come first: apr.h includes <windows.h> and the socket
// headers only when <windows.h> is not in yet.
#include <apr.h>

#include <winsock2.h>
#include <ws2tcpip.h>

#include "apr/inet_text.h"

namespace evchan::detail {

bool textToAddressBytes(AddressFamily family, const char* text, unsigned char* bytes) noexcept {
  if (family != AddressFamily::IPv4 && family != AddressFamily::IPv6) return false;
  return inet_pton(family == AddressFamily::IPv4 ? AF_INET : AF_INET6, text, bytes) == 1;
}

}  // namespace evchan::detail
