// SPDX-License-Identifier: Apache-2.0
// Internal: the system's own reading of a numeric address (inet_pton),
// one file per platform: src/posix/inet_text.cpp, src/win32/inet_text.cpp.
// (Printing is APR's: apr_sockaddr_ip_getbuf.)
#ifndef EVCHAN_SRC_APR_INET_TEXT_H
#define EVCHAN_SRC_APR_INET_TEXT_H

#include <evchan/address.h>

namespace evchan::detail {

/// Reads the NUL-terminated `text` as an address of `family` (IPv4 or
/// IPv6) into `bytes` (4 or 16 of them, network order); false when it is
/// not one in the system's numeric form.
bool textToAddressBytes(AddressFamily family, const char* text, unsigned char* bytes) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_INET_TEXT_H
