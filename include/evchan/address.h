// SPDX-License-Identifier: Apache-2.0
// Resolved socket addresses.
#ifndef EVCHAN_ADDRESS_H
#define EVCHAN_ADDRESS_H

#include <string>
#include <system_error>
#include <vector>

#include <evchan/endpoint.h>
#include <evchan/export.h>

namespace evchan {

/// The address family to resolve or listen on.
enum class AddressFamily { Unspecified, IPv4, IPv6 };

/// One resolved socket address: a numeric IPv4 or IPv6 address and a port.
/// A small value type; the default-constructed Address is empty.
class EVCHAN_API Address {
 public:
  Address() = default;

  /// The numeric host, "127.0.0.1" or "::1" (no brackets).
  const std::string& host() const noexcept { return host_; }
  /// The port, 0..65535; 0 for an empty Address.
  int port() const noexcept { return port_; }
  /// IPv4 or IPv6; Unspecified for an empty Address.
  AddressFamily family() const noexcept { return family_; }
  /// True for a default-constructed Address, which names no host.
  bool empty() const noexcept { return family_ == AddressFamily::Unspecified; }

  /// "127.0.0.1:80" or "[::1]:80"; "" for an empty Address.
  std::string toString() const;

  /// Builds an Address from a numeric host and a port without any lookup.
  /// Used by the library for addresses the kernel reports.
  static Address fromNumeric(std::string numericHost, int port, AddressFamily family);

  /// Equal when family, numeric host and port are all equal.
  friend bool operator==(const Address& a, const Address& b) {
    return a.family_ == b.family_ && a.port_ == b.port_ && a.host_ == b.host_;
  }
  /// Not equal: !(a == b).
  friend bool operator!=(const Address& a, const Address& b) { return !(a == b); }

 private:
  std::string host_;
  int port_ = 0;
  AddressFamily family_ = AddressFamily::Unspecified;
};

/// Resolves a host name or numeric address with its port into every
/// address it stands for, in the resolver's order of preference.  A
/// numeric host (dotted-decimal IPv4, an IPv6 literal without a zone) needs
/// no lookup and never reaches the system resolver.  For a name, inside a
/// task the task is suspended while one of its channel's resolver threads
/// runs the lookup (see ResolveEvent), so the worker runs other tasks; on
/// any other thread the lookup blocks the calling thread.  Errors: an
/// empty host (Errc::empty_host), a port outside 0..65535
/// (Errc::port_out_of_range), a NUL in the host (Errc::bad_endpoint), a
/// name the resolver does not know (the APR status, e.g. APR_EAI_NONAME
/// family), no address of `family` (Errc::no_address: an IPv4-mapped
/// IPv6 address, "::ffff:127.0.0.1", is IPv4 here as everywhere in evchan,
/// so asked for IPv6 it has none); in a task,
/// std::errc::operation_canceled when the task is cancelled or its
/// channel shuts down during the lookup.  Thread-safe.
EVCHAN_API std::vector<Address> resolve(const Endpoint& endpoint,
                             AddressFamily family = AddressFamily::Unspecified);
/// As resolve() above, reporting failure through `ec` instead of throwing.
EVCHAN_API std::vector<Address> resolve(const Endpoint& endpoint, AddressFamily family,
                             std::error_code& ec) noexcept;

}  // namespace evchan

#endif  // EVCHAN_ADDRESS_H
