// SPDX-License-Identifier: Apache-2.0
// ResolveEvent: a host name resolved off the channel's workers.
#ifndef EVCHAN_RESOLVE_EVENT_H
#define EVCHAN_RESOLVE_EVENT_H

#include <utility>
#include <vector>

#include <evchan/address.h>
#include <evchan/endpoint.h>
#include <evchan/event.h>
#include <evchan/export.h>

namespace evchan {

/// Resolves an Endpoint into its addresses, as resolve() does, without
/// blocking any thread of the channel: a numeric host (an IPv4 address in
/// dotted decimal, an IPv6 literal without a zone) completes at post()
/// with no lookup at all; a name is looked up by one of the channel's
/// resolver threads (a few per channel, started when needed, gone when
/// idle), and the event completes like any other once the system resolver
/// answers.  On success addresses() holds every address, in the resolver's
/// order, without duplicates.
///
/// Errors: at post(), an empty host (Errc::empty_host), a port outside
/// 0..65535 (Errc::port_out_of_range), a host holding a NUL
/// (Errc::bad_endpoint); on completion, what the resolver reports for an
/// unknown name (an APR status of the APR_EAI family), Errc::no_address
/// when no address of family() exists, std::errc::operation_canceled when
/// the channel shut down (or the event was cancelled) first.  The error
/// does not name the host: endpoint() does, for the message.
///
/// A cancelled lookup cannot be interrupted: its thread finishes it and
/// drops the answer, never touching the event again, so the event may be
/// destroyed or re-posted as soon as it is handed back.
class EVCHAN_API ResolveEvent : public Event {
 public:
  /// An event that resolves `endpoint`, keeping only addresses of
  /// `family` (Unspecified: every family).
  explicit ResolveEvent(Endpoint endpoint, AddressFamily family = AddressFamily::Unspecified) noexcept
      : Event(Kind::Resolve), endpoint_(std::move(endpoint)), family_(family) {}

  /// The endpoint to resolve.
  const Endpoint& endpoint() const noexcept { return endpoint_; }
  /// The family to keep.
  AddressFamily family() const noexcept { return family_; }
  /// Sets what the next post() resolves; not while the event is in flight.
  void setEndpoint(Endpoint endpoint, AddressFamily family = AddressFamily::Unspecified) noexcept {
    endpoint_ = std::move(endpoint);
    family_ = family;
  }

  /// The addresses found, once the event is back; empty after an error.
  const std::vector<Address>& addresses() const noexcept { return addresses_; }
  /// Moves the addresses out of the event (leaving it empty).
  std::vector<Address> takeAddresses() noexcept { return std::exchange(addresses_, {}); }

 private:
  friend struct detail::EventAccess;
  Endpoint endpoint_;
  AddressFamily family_;
  std::vector<Address> addresses_;
};

}  // namespace evchan

#endif  // EVCHAN_RESOLVE_EVENT_H
