// SPDX-License-Identifier: Apache-2.0
// TcpSocket: a connected stream on a non-blocking APR socket.
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tcp_socket.h>

#include <algorithm>

#include <evchan/socket_events.h>
#include <evchan/task.h>

#include "apr/socket_io.h"
#include "apr/socket_state.h"
#include "net/pieces.h"
#include "net/resolution.h"
#include "net/socket_call.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::Readiness;
using detail::SocketState;

namespace {

// Inside a task the connect is a ConnectEvent the task waits for.
std::unique_ptr<SocketState> connectInTask(const Address& address, Deadline deadline, bool& inTask,
                                           std::error_code& ec) {
  ConnectEvent connect(address);
  const Duration timeout = deadline == detail::kNoDeadline
                               ? kInfiniteTimeout
                               : std::chrono::duration_cast<Duration>(deadline - detail::Clock::now());
  inTask = detail::awaitInTask(connect, std::max(timeout, Duration::zero()), ec);
  if (!inTask || ec) return nullptr;
  TcpSocket connected = connect.takeSocket();
  return detail::SocketAccess::release(connected);
}

std::unique_ptr<SocketState> connectTo(const Address& address, Deadline deadline, std::error_code& ec) {
  bool inTask = false;
  std::unique_ptr<SocketState> viaTask = connectInTask(address, deadline, inTask, ec);
  if (inTask) return viaTask;
  bool inProgress = false;
  std::unique_ptr<SocketState> state = detail::startConnect(address, inProgress, ec);
  if (state && inProgress) {
    ec = detail::waitReady(state->socket, Readiness::Connected, deadline);
    if (!ec) ec = detail::pendingConnectResult(state->socket);
    if (ec) state.reset();  // the pool's cleanup closes the half-made socket
  }
  return state;
}

}  // namespace

TcpSocket::TcpSocket() noexcept = default;
TcpSocket::TcpSocket(std::unique_ptr<SocketState> state) noexcept : StreamSocket(std::move(state)) {}
TcpSocket::~TcpSocket() = default;
TcpSocket::TcpSocket(TcpSocket&& other) noexcept = default;
TcpSocket& TcpSocket::operator=(TcpSocket&& other) noexcept = default;

TcpSocket TcpSocket::connect(const Address& address, Duration timeout, std::error_code& ec) noexcept {
  if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
    return TcpSocket();
  }
  return TcpSocket(connectTo(address, detail::deadlineAfter(timeout), ec));
}

TcpSocket TcpSocket::connect(const Address& address, Duration timeout) {
  std::error_code ec;
  TcpSocket socket = connect(address, timeout, ec);
  throwIfError(ec, "connect", address.toString());
  return socket;
}

TcpSocket TcpSocket::connect(const Endpoint& endpoint, Duration timeout, std::error_code& ec) noexcept {
  if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
    return TcpSocket();
  }
  const Deadline deadline = detail::deadlineAfter(timeout);
  // In a task the lookup suspends the task and counts toward the timeout.
  const std::vector<Address> addresses = detail::resolveWithin(endpoint, AddressFamily::Unspecified, timeout, ec);
  if (ec) return TcpSocket();
  // Try each address in the resolver's order ("localhost" may be ::1 and
  // 127.0.0.1); report the last failure if none accepts.
  for (const Address& address : addresses) {
    if (auto state = connectTo(address, deadline, ec)) return TcpSocket(std::move(state));
    if (ec == std::errc::timed_out) break;
  }
  return TcpSocket();
}

TcpSocket TcpSocket::connect(const Endpoint& endpoint, Duration timeout) {
  std::error_code ec;
  TcpSocket socket = connect(endpoint, timeout, ec);
  throwIfError(ec, "connect", endpoint.toString());
  return socket;
}

namespace {

void setOption(SocketState* state, apr_int32_t option, bool on, std::error_code& ec) {
  ec = state ? makeAprError(apr_socket_opt_set(state->socket, option, on ? 1 : 0))
             : make_error_code(Errc::not_open);
}

}  // namespace

void TcpSocket::setNoDelay(bool on, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  setOption(pin.get(), APR_TCP_NODELAY, on, ec);
}

void TcpSocket::setNoDelay(bool on) {
  std::error_code ec;
  setNoDelay(on, ec);
  throwIfError(ec, "set TCP_NODELAY", peerName());
}

void TcpSocket::setKeepAlive(bool on, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  setOption(pin.get(), APR_SO_KEEPALIVE, on, ec);
}

void TcpSocket::setKeepAlive(bool on) {
  std::error_code ec;
  setKeepAlive(on, ec);
  throwIfError(ec, "set SO_KEEPALIVE", peerName());
}

void TcpSocket::closeWithReset() noexcept {
  {
    const detail::SocketPin pin(state_);
    // Failing, the close is an orderly one: nothing is lost but the reset.
    if (pin.get() != nullptr) (void)detail::setResetOnClose(pin.get()->socket);
  }
  close();
}

Address TcpSocket::localAddress(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  return detail::socketAddress(pin.get(), APR_LOCAL, ec);
}

Address TcpSocket::localAddress() const {
  std::error_code ec;
  Address address = localAddress(ec);
  throwIfError(ec, "get local address", peerName());
  return address;
}

Address TcpSocket::peerAddress(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  return detail::socketAddress(pin.get(), APR_REMOTE, ec);
}

Address TcpSocket::peerAddress() const {
  std::error_code ec;
  Address address = peerAddress(ec);
  throwIfError(ec, "get peer address", peerName());
  return address;
}

}  // namespace evchan
