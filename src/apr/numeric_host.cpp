// SPDX-License-Identifier: Apache-2.0
// parseNumericHost(): the numeric hosts that skip the resolver, printed
// the way the system prints them.
#include <array>
#include <cstdint>
#include <cstdio>

#include "apr/host_lookup.h"

namespace evchan::detail {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

int hexValue(char c) {
  if (isDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Strict dotted decimal: exactly four parts of 0..255 without leading
// zeros.  The C resolver also takes "127.1", hex and octal parts; those
// are left to it.
bool parseIPv4(std::string_view text, std::array<std::uint8_t, 4>& bytes) {
  std::size_t at = 0;
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) {
      if (at >= text.size() || text[at] != '.') return false;
      ++at;
    }
    const std::size_t start = at;
    unsigned value = 0;
    while (at < text.size() && isDigit(text[at]) && at - start < 3) value = value * 10 + unsigned(text[at++] - '0');
    const std::size_t digits = at - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return false;
    bytes[part] = static_cast<std::uint8_t>(value);
  }
  return at == text.size();
}

// Eight 16-bit groups, at most one "::", an optional dotted-decimal tail
// for the last two groups.  No zone ("%eth0"): that needs the system.
bool parseIPv6(std::string_view text, std::array<std::uint16_t, 8>& words) {
  std::array<std::uint16_t, 8> head{};
  std::size_t count = 0;
  std::size_t gap = 8;  // where "::" stood, in groups; 8: none
  std::size_t at = 0;
  if (text.substr(0, 2) == "::") {
    gap = 0;
    at = 2;
  } else if (!text.empty() && text[0] == ':') {
    return false;
  }
  while (at < text.size()) {
    if (count == 8) return false;
    const std::size_t start = at;
    unsigned value = 0;
    while (at < text.size() && hexValue(text[at]) >= 0 && at - start < 4) value = value * 16 + unsigned(hexValue(text[at++]));
    if (at < text.size() && text[at] == '.') {
      // The IPv4 tail: the rest of the text, two groups.
      std::array<std::uint8_t, 4> bytes{};
      if (count > 6 || !parseIPv4(text.substr(start), bytes)) return false;
      head[count++] = static_cast<std::uint16_t>(bytes[0] << 8 | bytes[1]);
      head[count++] = static_cast<std::uint16_t>(bytes[2] << 8 | bytes[3]);
      at = text.size();
      break;
    }
    if (at == start) return false;
    head[count++] = static_cast<std::uint16_t>(value);
    if (at == text.size()) break;
    if (text[at] != ':') return false;
    ++at;
    if (at < text.size() && text[at] == ':') {
      if (gap != 8) return false;
      gap = count;
      ++at;
    } else if (at == text.size()) {
      return false;  // a single ':' at the end
    }
  }
  if (gap == 8) {
    if (count != 8) return false;
    words = head;
    return true;
  }
  if (count > 7) return false;  // "::" stands for one group at least
  words = {};
  for (std::size_t i = 0; i < gap; ++i) words[i] = head[i];
  const std::size_t tail = count - gap;
  for (std::size_t i = 0; i < tail; ++i) words[8 - tail + i] = head[gap + i];
  return true;
}

// RFC 5952, as inet_ntop prints it: lower-case hex, the longest run of two
// or more zero groups (the first of equal ones) as "::".
std::string formatIPv6(const std::array<std::uint16_t, 8>& words, int bestBase, int bestLength) {
  std::string text;
  char group[8];
  for (int i = 0; i < 8; ++i) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLength) {
      if (i == bestBase) text += ':';
      continue;
    }
    if (i != 0) text += ':';
    std::snprintf(group, sizeof group, "%x", unsigned(words[static_cast<std::size_t>(i)]));
    text += group;
  }
  if (bestBase >= 0 && bestBase + bestLength == 8) text += ':';
  return text;
}

}  // namespace

bool numericHostBytes(std::string_view host, AddressFamily& family, std::array<unsigned char, 16>& bytes) {
  std::array<std::uint8_t, 4> v4{};
  if (parseIPv4(host, v4)) {
    family = AddressFamily::IPv4;
    bytes = {};
    for (std::size_t i = 0; i < 4; ++i) bytes[i] = v4[i];
    return true;
  }
  std::array<std::uint16_t, 8> words{};
  if (host.find(':') == std::string_view::npos || !parseIPv6(host, words)) return false;
  family = AddressFamily::IPv6;
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<unsigned char>(words[i] >> 8);
    bytes[2 * i + 1] = static_cast<unsigned char>(words[i] & 0xff);
  }
  return true;
}

bool parseNumericHost(std::string_view host, AddressFamily& family, std::string& canonical) {
  std::array<std::uint8_t, 4> bytes{};
  if (parseIPv4(host, bytes)) {
    family = AddressFamily::IPv4;
    canonical = std::string(host);  // strict dotted decimal prints as written
    return true;
  }
  std::array<std::uint16_t, 8> words{};
  if (host.find(':') == std::string_view::npos || !parseIPv6(host, words)) return false;
  int bestBase = -1;
  int bestLength = 0;
  for (int i = 0; i < 8;) {
    int run = 0;
    while (i + run < 8 && words[static_cast<std::size_t>(i + run)] == 0) ++run;
    if (run >= 2 && run > bestLength) {
      bestBase = i;
      bestLength = run;
    }
    i += run > 0 ? run : 1;
  }
  // The forms printed with an embedded IPv4 address (IPv4-mapped ones the
  // system even reports as IPv4) are left to the resolver.
  if (bestBase == 0 && (bestLength == 6 || (bestLength == 7 && words[7] != 1) || (bestLength == 5 && words[5] == 0xffff)))
    return false;
  family = AddressFamily::IPv6;
  canonical = formatIPv6(words, bestBase, bestLength);
  return true;
}

}  // namespace evchan::detail
