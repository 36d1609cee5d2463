// SPDX-License-Identifier: Apache-2.0
// Internal: the system's own conversions between numeric addresses and
// their text (inet_pton and inet_ntop), one file per platform:
// src/posix/inet_text.cpp, src/win32/inet_text.cpp.
#ifndef EVCHAN_SRC_APR_INET_TEXT_H
#define EVCHAN_SRC_APR_INET_TEXT_H

#include <string>

#include <evchan/address.h>

namespace evchan::detail {

/// Reads the NUL-terminated `text` as an address of `family` (IPv4 or
/// IPv6) into `bytes` (4 or 16 of them, network order); false when it is
/// not one in the system's numeric form.
bool textToAddressBytes(AddressFamily family, const char* text, unsigned char* bytes) noexcept;

/// The system's text of the 4 (IPv4) or 16 (IPv6) address bytes at
/// `bytes`; empty if it cannot print them.
std::string addressBytesToText(AddressFamily family, const unsigned char* bytes);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_INET_TEXT_H
