// SPDX-License-Identifier: Apache-2.0
// UdpSocket: datagrams on a non-blocking APR socket, with TcpSocket's
// cancel() and close() machinery (SocketCall).
#include <evchan/udp_socket.h>

#include <evchan/datagram_events.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "apr/datagram_io.h"
#include "apr/host_lookup.h"
#include "apr/socket_io.h"
#include "apr/socket_state.h"
#include "net/resolution.h"
#include "net/socket_call.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::SocketState;

namespace {

std::error_code checkBuffer(const SocketState* state, const void* buffer, std::size_t size) {
  if (state == nullptr) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

// The text an error names: the connected peer, else the local address.
std::string describe(const SocketState* state) {
  if (state == nullptr) return {};
  if (!state->peer.empty()) return state->peer;
  std::error_code ec;
  const Address local = detail::socketAddress(state, APR_LOCAL, ec);
  return ec || local.empty() ? std::string() : "local " + local.toString();
}

AddressFamily familyOf(const SocketState* state) {
  const int family = detail::socketFamily(state);
  if (family == APR_UNSPEC) return AddressFamily::Unspecified;
#if APR_HAVE_IPV6
  if (family == APR_INET6) return AddressFamily::IPv6;
#endif
  return AddressFamily::IPv4;
}

// A multicast group and interface as APR wants them (in the socket's
// pool: APR keeps nothing, but the pool is where long-lived bits go).
std::error_code groupCall(SocketState* state, const Address& group, const Address& interfaceAddress, bool join) {
  if (state == nullptr) return Errc::not_open;
  if (group.empty()) return Errc::no_address;
  apr_sockaddr_t* target = detail::numericSockaddr(Address::fromNumeric(group.host(), 0, group.family()),
                                                   state->pool.get());
  if (target == nullptr) return std::make_error_code(std::errc::invalid_argument);
  apr_sockaddr_t* iface = nullptr;
  if (!interfaceAddress.empty()) {
    iface = detail::numericSockaddr(Address::fromNumeric(interfaceAddress.host(), 0, interfaceAddress.family()),
                                    state->pool.get());
    if (iface == nullptr) return std::make_error_code(std::errc::invalid_argument);
  }
  const apr_status_t status = join ? apr_mcast_join(state->socket, target, iface, nullptr)
                                   : apr_mcast_leave(state->socket, target, iface, nullptr);
  return makeAprError(status);
}

}  // namespace

UdpSocket::UdpSocket() noexcept = default;
UdpSocket::UdpSocket(std::unique_ptr<SocketState> state) noexcept : state_(std::move(state)) {}
UdpSocket::~UdpSocket() { close(); }
UdpSocket::UdpSocket(UdpSocket&& other) noexcept = default;
UdpSocket& UdpSocket::operator=(UdpSocket&& other) noexcept = default;

UdpSocket UdpSocket::open(AddressFamily family, std::error_code& ec) noexcept {
  try {
    return UdpSocket(detail::openDatagramSocket(family, ec));
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return UdpSocket();
  }
}

UdpSocket UdpSocket::open(AddressFamily family) {
  std::error_code ec;
  UdpSocket socket = open(family, ec);
  throwIfError(ec, "open UDP socket");
  return socket;
}

void UdpSocket::bind(const Address& local, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  SocketState* state = pin.get();
  if (state == nullptr) {
    ec = Errc::not_open;
    return;
  }
  if (local.empty()) {
    ec = Errc::no_address;
    return;
  }
  if (local.port() < 0 || local.port() > 65535) {
    ec = Errc::port_out_of_range;
    return;
  }
  // APR keeps the address it binds to: it lives in the socket's pool.
  apr_sockaddr_t* address = detail::numericSockaddr(local, state->pool.get());
  if (address == nullptr) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  ec = makeAprError(apr_socket_bind(state->socket, address));
}

void UdpSocket::bind(const Address& local) {
  std::error_code ec;
  bind(local, ec);
  throwIfError(ec, "bind", local.toString());
}

void UdpSocket::bind(const Endpoint& local, std::error_code& ec) noexcept {
  AddressFamily family = AddressFamily::Unspecified;
  {
    const detail::SocketPin pin(state_);
    if (pin.get() == nullptr) {
      ec = Errc::not_open;
      return;
    }
    family = familyOf(pin.get());
  }
  const std::vector<Address> addresses = detail::resolveWithin(local, family, timeout(), ec);
  if (ec) return;
  for (const Address& address : addresses) {
    bind(address, ec);
    if (!ec) return;
  }
}

void UdpSocket::bind(const Endpoint& local) {
  std::error_code ec;
  bind(local, ec);
  throwIfError(ec, "bind", local.toString());
}

void UdpSocket::connect(const Address& peer, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  SocketState* state = pin.get();
  if (state == nullptr) {
    ec = Errc::not_open;
    return;
  }
  if (peer.empty()) {
    ec = Errc::no_address;
    return;
  }
  if (peer.port() < 0 || peer.port() > 65535) {
    ec = Errc::port_out_of_range;
    return;
  }
  // An IPv4 socket has no IPv6 peer.  Refused here, before any system
  // call: APR on Windows keeps the address of a connect the system
  // refused as the socket's remote one, and send() and peerAddress() then
  // took the socket for connected.
  if (peer.family() == AddressFamily::IPv6 && familyOf(state) == AddressFamily::IPv4) {
    ec = std::make_error_code(std::errc::address_family_not_supported);
    return;
  }
  // APR keeps the address as the socket's remote one: in the pool.
  apr_sockaddr_t* address = detail::numericSockaddr(peer, state->pool.get());
  if (address == nullptr) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  // A UDP connect completes at once; no wait is involved.
  if ((ec = makeAprError(apr_socket_connect(state->socket, address)))) return;
  try {
    state->peer = peer.toString();
  } catch (...) {
    // The text is only for error messages.
  }
}

void UdpSocket::connect(const Address& peer) {
  std::error_code ec;
  connect(peer, ec);
  throwIfError(ec, "connect", peer.toString());
}

namespace {

// One datagram to `to`, or to the connected peer when `to` is empty: the
// body of sendTo() and send(), which check `to` each their own way.
std::size_t sendOne(UdpSocket& socket, detail::SocketCall& call, const void* buffer, std::size_t size,
                    const Address& to, std::error_code& ec) noexcept {
  SocketState* state = call.state();
  apr_sockaddr_t target{};
  const bool addressed = !to.empty();
  if ((addressed && (ec = detail::datagramTarget(to, target))) || detail::fairnessYield(ec)) return 0;
  for (;;) {
    std::size_t sent = 0;
    ec = detail::sendDatagram(state->socket, buffer, size, addressed ? &target : nullptr, sent);
    if (ec != std::errc::resource_unavailable_try_again) return ec ? 0 : sent;
    if (inTask()) {
      // The send buffer is full: the task waits for the event (which sends
      // when there is room) instead of blocking its worker.
      DatagramSendEvent send(socket, buffer, size, to);
      if (call.awaitInTask(send, ec)) return ec ? 0 : send.bytesTransferred();
    }
    if ((ec = call.waitOnThread(true, detail::deadlineAfter(state->timeout)))) return 0;
  }
}

}  // namespace

std::size_t UdpSocket::sendTo(const void* buffer, std::size_t size, const Address& to, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  if ((ec = checkBuffer(call.state(), buffer, size))) return 0;
  // Never the connected peer in disguise: an empty `to` is a mistake.
  if (to.empty()) {
    ec = Errc::no_address;
    return 0;
  }
  return sendOne(*this, call, buffer, size, to, ec);
}

std::size_t UdpSocket::sendTo(const void* buffer, std::size_t size, const Address& to) {
  std::error_code ec;
  const std::size_t sent = sendTo(buffer, size, to, ec);
  throwIfError(ec, "send to", to.toString());
  return sent;
}

std::size_t UdpSocket::send(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  if ((ec = checkBuffer(call.state(), buffer, size))) return 0;
  const std::size_t sent = sendOne(*this, call, buffer, size, Address(), ec);
  // No peer: Linux says EDESTADDRREQ, Windows WSAEINVAL for a socket not
  // yet bound, others ENOTCONN; the header promises not_connected.  For an
  // error that may not mean it, the peer is looked up: only after a
  // failure, so a working send() pays nothing for it.
  if (ec == std::errc::destination_address_required) {
    ec = std::make_error_code(std::errc::not_connected);
  } else if (ec && ec != std::errc::not_connected && ec != std::errc::operation_canceled) {
    std::error_code peerError;
    detail::socketAddress(call.state(), APR_REMOTE, peerError);
    if (peerError == std::errc::not_connected) ec = std::make_error_code(std::errc::not_connected);
  }
  return sent;
}

std::size_t UdpSocket::send(const void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t sent = send(buffer, size, ec);
  if (ec) {
    const detail::SocketPin pin(state_);
    throwIfError(ec, "send", describe(pin.get()));
  }
  return sent;
}

std::size_t UdpSocket::receiveFrom(void* buffer, std::size_t size, Address& from, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  SocketState* state = call.state();
  if ((ec = checkBuffer(state, buffer, size))) return 0;
  if (inTask()) {
    if (detail::fairnessYield(ec)) return 0;
    // Through the task's channel: tried at once unless the socket is known
    // to be empty, or other tasks wait for their turn to receive (this one
    // queues behind them), then the task waits for the event.
    DatagramReceiveEvent receive(*this, buffer, size);
    const bool tried = !call.turnsTaken() && detail::tryInTask(receive, ec) && ec != Errc::socket_busy;
    if (tried || call.awaitInTask(receive, ec)) {
      if (ec && ec != std::errc::message_size) return 0;
      from = receive.peer();
      return receive.bytesTransferred();
    }
  }
  const Deadline deadline = detail::deadlineAfter(state->timeout);
  for (;;) {
    apr_sockaddr_t sender{};
    std::size_t received = 0;
    ec = detail::receiveDatagram(state->socket, buffer, size, &sender, received);
    if (!ec || ec == std::errc::message_size) {
      from = detail::senderAddress(sender);
      return received;
    }
    if (ec != std::errc::resource_unavailable_try_again) return 0;
    if ((ec = call.waitOnThread(false, deadline))) return 0;
  }
}

std::size_t UdpSocket::receiveFrom(void* buffer, std::size_t size, Address& from) {
  std::error_code ec;
  const std::size_t received = receiveFrom(buffer, size, from, ec);
  if (ec) {
    const detail::SocketPin pin(state_);
    throwIfError(ec, "receive", ec == std::errc::message_size ? from.toString() : describe(pin.get()));
  }
  return received;
}

std::size_t UdpSocket::receive(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  Address from;
  return receiveFrom(buffer, size, from, ec);
}

std::size_t UdpSocket::receive(void* buffer, std::size_t size) {
  Address from;
  return receiveFrom(buffer, size, from);
}

void UdpSocket::cancel() noexcept { detail::cancelSocket(state_); }

void UdpSocket::close() noexcept { detail::closeSocket(state_); }

bool UdpSocket::isOpen() const noexcept { return detail::socketOpen(state_); }

void UdpSocket::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = detail::setTimeout(pin.get(), timeout);
}

void UdpSocket::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout");
}

Duration UdpSocket::timeout() const noexcept {
  const detail::SocketPin pin(state_);
  return pin.get() ? pin.get()->timeout.load() : kInfiniteTimeout;
}

namespace {

std::error_code setOption(SocketState* state, apr_int32_t option, bool on) {
  if (state == nullptr) return Errc::not_open;
  return makeAprError(apr_socket_opt_set(state->socket, option, on ? 1 : 0));
}

}  // namespace

void UdpSocket::setBroadcast(bool on, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = setOption(pin.get(), APR_SO_BROADCAST, on);
}

void UdpSocket::setBroadcast(bool on) {
  std::error_code ec;
  setBroadcast(on, ec);
  throwIfError(ec, "set SO_BROADCAST");
}

void UdpSocket::setReuseAddress(bool on, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = setOption(pin.get(), APR_SO_REUSEADDR, on);
}

void UdpSocket::setReuseAddress(bool on) {
  std::error_code ec;
  setReuseAddress(on, ec);
  throwIfError(ec, "set SO_REUSEADDR");
}

void UdpSocket::joinGroup(const Address& group, const Address& interfaceAddress, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  try {
    ec = groupCall(pin.get(), group, interfaceAddress, true);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
}

void UdpSocket::joinGroup(const Address& group, const Address& interfaceAddress) {
  std::error_code ec;
  joinGroup(group, interfaceAddress, ec);
  throwIfError(ec, "join multicast group", group.host());
}

void UdpSocket::leaveGroup(const Address& group, const Address& interfaceAddress, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  try {
    ec = groupCall(pin.get(), group, interfaceAddress, false);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
}

void UdpSocket::leaveGroup(const Address& group, const Address& interfaceAddress) {
  std::error_code ec;
  leaveGroup(group, interfaceAddress, ec);
  throwIfError(ec, "leave multicast group", group.host());
}

void UdpSocket::setMulticastLoopback(bool on, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = pin.get() ? makeAprError(apr_mcast_loopback(pin.get()->socket, on ? 1 : 0))
                 : make_error_code(Errc::not_open);
}

void UdpSocket::setMulticastLoopback(bool on) {
  std::error_code ec;
  setMulticastLoopback(on, ec);
  throwIfError(ec, "set multicast loopback");
}

void UdpSocket::setMulticastInterface(const Address& interfaceAddress, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  SocketState* state = pin.get();
  if (state == nullptr) {
    ec = Errc::not_open;
    return;
  }
  if (interfaceAddress.empty()) {
    ec = Errc::no_address;
    return;
  }
  try {
    apr_sockaddr_t* iface = detail::numericSockaddr(
        Address::fromNumeric(interfaceAddress.host(), 0, interfaceAddress.family()), state->pool.get());
    ec = iface ? makeAprError(apr_mcast_interface(state->socket, iface))
               : std::make_error_code(std::errc::invalid_argument);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
}

void UdpSocket::setMulticastInterface(const Address& interfaceAddress) {
  std::error_code ec;
  setMulticastInterface(interfaceAddress, ec);
  throwIfError(ec, "set multicast interface", interfaceAddress.host());
}

Address UdpSocket::localAddress(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  return detail::socketAddress(pin.get(), APR_LOCAL, ec);
}

Address UdpSocket::localAddress() const {
  std::error_code ec;
  Address address = localAddress(ec);
  throwIfError(ec, "get local address");
  return address;
}

Address UdpSocket::peerAddress(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  return detail::socketAddress(pin.get(), APR_REMOTE, ec);
}

Address UdpSocket::peerAddress() const {
  std::error_code ec;
  Address address = peerAddress(ec);
  throwIfError(ec, "get peer address");
  return address;
}

}  // namespace evchan
