// Endpoints: a host name (or numeric address) and a port, not yet resolved.
#ifndef EVCHAN_ENDPOINT_H
#define EVCHAN_ENDPOINT_H

#include <string>
#include <string_view>
#include <system_error>

namespace evchan {

/// What a user names to connect or listen: a host (name, IPv4 or IPv6
/// literal without brackets; empty means "any address" when listening) and
/// a port.  The port is an int so that out-of-range values are reported
/// as Errc::port_out_of_range by the calls that use it, not silently wrapped.
struct Endpoint {
  std::string host;
  int port = 0;

  Endpoint() = default;
  Endpoint(std::string hostName, int portNumber) : host(std::move(hostName)), port(portNumber) {}

  /// Parses "host:port", "[v6-literal]:port" or "tcp://host:port" (also with
  /// a bracketed IPv6 literal) with APR-util's URI parser.  Anything else
  /// (another scheme, a path, a missing or non-numeric port, a port above
  /// 65535) is Errc::bad_endpoint or Errc::port_out_of_range.
  static Endpoint parse(std::string_view text);
  /// As parse(text), reporting failure through `ec` instead of throwing.
  static Endpoint parse(std::string_view text, std::error_code& ec) noexcept;

  /// "host:port", with brackets around an IPv6 literal.
  std::string toString() const;

  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.port == b.port && a.host == b.host;
  }
  friend bool operator!=(const Endpoint& a, const Endpoint& b) { return !(a == b); }
};

}  // namespace evchan

#endif  // EVCHAN_ENDPOINT_H
