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
    ec = detail::waitReady(state->socket, Readiness::Writable, deadline);
    if (!ec) ec = detail::pendingConnectResult(state->socket);
    if (ec) state.reset();  // the pool's cleanup closes the half-made socket
  }
  return state;
}

std::error_code checkBuffer(const SocketState* state, const void* buffer, std::size_t size) {
  if (state == nullptr) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

}  // namespace

TcpSocket::TcpSocket() noexcept = default;
TcpSocket::TcpSocket(std::unique_ptr<SocketState> state) noexcept : state_(std::move(state)) {}
TcpSocket::~TcpSocket() { close(); }
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

// readSome() within `call`.
std::size_t readWithin(TcpSocket& socket, detail::SocketCall& call, void* buffer, std::size_t size,
                       std::error_code& ec) noexcept {
  SocketState* state = call.state();
  if ((ec = checkBuffer(state, buffer, size)) || size == 0) return 0;
  if (inTask()) {
    // Through the task's channel: the socket is tried unless it is known
    // to be drained (a round trip then costs no EAGAIN), and if the read
    // would block the task waits for it (the worker runs other tasks).
    ReadEvent read(socket, buffer, size);
    if (detail::tryInTask(read, ec) || call.awaitInTask(read, ec)) {
      return ec ? 0 : read.bytesTransferred();
    }
  }
  const Deadline deadline = detail::deadlineAfter(state->timeout);
  for (;;) {
    apr_size_t length = size;
    const apr_status_t status = apr_socket_recv(state->socket, static_cast<char*>(buffer), &length);
    if (length > 0) return length;
    if (APR_STATUS_IS_EOF(status)) {
      ec = Errc::end_of_stream;
      return 0;
    }
    if (!APR_STATUS_IS_EAGAIN(status)) {
      ec = makeAprError(status);
      return 0;
    }
    if ((ec = call.waitOnThread(false, deadline))) return 0;
  }
}

// The gather writeSome() within `call`.
std::size_t writeWithin(TcpSocket& socket, detail::SocketCall& call, const ConstBuffer* buffers, std::size_t count,
                        std::error_code& ec) noexcept {
  SocketState* state = call.state();
  if (state == nullptr) {
    ec = Errc::not_open;
    return 0;
  }
  if ((ec = detail::checkPieces(buffers, count))) return 0;
  detail::skipEmptyPieces(buffers, count);
  if (count == 0) return 0;
  for (;;) {
    std::size_t sent = 0;
    ec = detail::sendGather(state->socket, buffers, count, sent);
    if (sent > 0 || ec != std::errc::resource_unavailable_try_again) return ec ? 0 : sent;
    if (inTask()) {
      // The send buffer is full: the task waits for a WriteEvent (which
      // writes when there is room) instead of blocking its worker.
      WriteEvent write(socket, buffers, count);
      if (call.awaitInTask(write, ec)) return ec ? 0 : write.bytesTransferred();
    }
    if ((ec = call.waitOnThread(true, detail::deadlineAfter(state->timeout)))) return 0;
  }
}

}  // namespace

std::size_t TcpSocket::readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  return readWithin(*this, call, buffer, size, ec);
}

std::size_t TcpSocket::readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept {
  detail::SocketCall call(state_, mark);
  return readWithin(*this, call, buffer, size, ec);
}

std::size_t TcpSocket::writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const ConstBuffer piece{buffer, size};
  return TcpSocket::writeSome(&piece, 1, ec);  // one piece goes out with send(2)
}

std::size_t TcpSocket::writeSome(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  return writeWithin(*this, call, buffers, count, ec);
}

std::size_t TcpSocket::writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                                      std::error_code& ec) noexcept {
  detail::SocketCall call(state_, mark);
  return writeWithin(*this, call, buffers, count, ec);
}

Stream::CancelMark TcpSocket::cancelMark(bool) const noexcept { return detail::pinnedCancelGeneration(state_); }

std::string TcpSocket::peerName() const {
  const detail::SocketPin pin(state_);
  return detail::peerOf(pin.get());
}

void TcpSocket::shutdownWrite(std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  if (pin.get() == nullptr) {
    ec = Errc::not_open;
    return;
  }
  ec = makeAprError(apr_socket_shutdown(pin.get()->socket, APR_SHUTDOWN_WRITE));
}

void TcpSocket::shutdownWrite() {
  std::error_code ec;
  shutdownWrite(ec);
  throwIfError(ec, "shutdown", peerName());
}

void TcpSocket::cancel() noexcept { detail::cancelSocket(state_); }

void TcpSocket::close() noexcept { detail::closeSocket(state_); }

bool TcpSocket::isOpen() const noexcept { return detail::socketOpen(state_); }

void TcpSocket::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = detail::setTimeout(pin.get(), timeout);
}

void TcpSocket::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout", peerName());
}

Duration TcpSocket::timeout() const noexcept {
  const detail::SocketPin pin(state_);
  return pin.get() ? pin.get()->timeout.load() : kInfiniteTimeout;
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
