// SPDX-License-Identifier: Apache-2.0
// Endpoints: a host name (or numeric address) and a port, not yet resolved.
#ifndef EVCHAN_ENDPOINT_H
#define EVCHAN_ENDPOINT_H

#include <string>
#include <string_view>
#include <system_error>

#include <evchan/export.h>

namespace evchan {

/// What a user names to connect or listen: a host (name, IPv4 or IPv6
/// literal without brackets; empty means "any address" when listening) and
/// a port.  The port is an int so that out-of-range values are reported
/// as Errc::port_out_of_range by the calls that use it, not silently wrapped.
///
/// A host holding a NUL character is refused (Errc::bad_endpoint) by
/// resolve(), connect() and listen(), which would otherwise use only the
/// part before it.
struct EVCHAN_API Endpoint {
  /// Host name or numeric address (IPv6 without brackets); empty for "any"
  /// when listening.
  std::string host;
  /// Port number; valid values are 0..65535 (checked where it is used).
  int port = 0;

  Endpoint() = default;
  /// `hostName` and `portNumber` as given; nothing is checked until use.
  Endpoint(std::string hostName, int portNumber) : host(std::move(hostName)), port(portNumber) {}

  /// Parses "host:port", "[v6-literal]:port" or "tcp://host:port" (also with
  /// a bracketed IPv6 literal, and with a "/" after the port, which adds
  /// nothing) with APR-util's URI parser.  A host is a name
  /// or IPv4 address (letters, digits, '-', '.', '_'), or in brackets an
  /// IPv6 literal (hex digits, colons, dots, an optional "%zone"); whatever
  /// parse() accepts, toString() prints back as text that parses to the
  /// same endpoint.  Anything else (another scheme, a path past that "/", other
  /// characters in the host, a missing or non-numeric port, a port above
  /// 65535) is Errc::bad_endpoint or Errc::port_out_of_range.
  static Endpoint parse(std::string_view text);
  /// As parse(text), reporting failure through `ec` instead of throwing.
  static Endpoint parse(std::string_view text, std::error_code& ec) noexcept;

  /// "host:port", with brackets around an IPv6 literal.
  std::string toString() const;

  /// Equal when host text and port are equal (no resolution: "localhost" is
  /// not "127.0.0.1").
  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.port == b.port && a.host == b.host;
  }
  /// Not equal: !(a == b).
  friend bool operator!=(const Endpoint& a, const Endpoint& b) { return !(a == b); }
};

}  // namespace evchan

#endif  // EVCHAN_ENDPOINT_H
