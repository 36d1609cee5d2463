// SPDX-License-Identifier: Apache-2.0
// UnixSocket, UnixListener and UnixAcceptEvent: AF_UNIX descriptors (made
// by src/posix/unix_socket) adopted as stream sockets, so that reads,
// writes, accepts, cancel() and close() are the TCP sockets' own; inside a
// task, descriptor passing waits for the descriptor events.
#include <evchan/unix_socket.h>

#include <unistd.h>

#include <evchan/descriptor_events.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "apr/socket_state.h"
#include "net/socket_call.h"
#include "poller/event_access.h"
#include "posix/adopted_socket.h"
#include "posix/unix_socket.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::SocketState;

namespace {

int descriptorOf(const SocketState* state) {
  apr_os_sock_t fd = -1;
  apr_os_sock_get(&fd, state->socket);
  return fd;
}

}  // namespace

UnixSocket::UnixSocket() noexcept = default;
UnixSocket::UnixSocket(std::unique_ptr<SocketState> state) noexcept : StreamSocket(std::move(state)) {}
UnixSocket::~UnixSocket() = default;
UnixSocket::UnixSocket(UnixSocket&& other) noexcept = default;
UnixSocket& UnixSocket::operator=(UnixSocket&& other) noexcept = default;

UnixSocket UnixSocket::connect(const std::string& name, Duration timeout, std::error_code& ec) noexcept {
  if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
    return UnixSocket();
  }
  const int fd = detail::connectUnix(name, detail::deadlineAfter(timeout), ec);
  if (fd < 0) return UnixSocket();
  return UnixSocket(detail::adoptDescriptor(fd, name, ec));
}

UnixSocket UnixSocket::connect(const std::string& name, Duration timeout) {
  std::error_code ec;
  UnixSocket socket = connect(name, timeout, ec);
  throwIfError(ec, "connect", name);
  return socket;
}

PeerCredentials UnixSocket::peerCredentials(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  if (pin.get() == nullptr) {
    ec = Errc::not_open;
    return PeerCredentials();
  }
  detail::UnixPeerIds ids;
  if ((ec = detail::unixPeerCredentials(descriptorOf(pin.get()), ids))) return PeerCredentials();
  PeerCredentials credentials;
  credentials.pid = ids.pid;
  credentials.uid = static_cast<std::uint32_t>(ids.uid);
  credentials.gid = static_cast<std::uint32_t>(ids.gid);
  return credentials;
}

PeerCredentials UnixSocket::peerCredentials() const {
  std::error_code ec;
  PeerCredentials credentials = peerCredentials(ec);
  throwIfError(ec, "get peer credentials", peerName());
  return credentials;
}

std::size_t UnixSocket::sendDescriptors(const void* data, std::size_t size, const int* fds, std::size_t count,
                                        std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  SocketState* state = call.state();
  if (state == nullptr) {
    ec = Errc::not_open;
    return 0;
  }
  if (detail::fairnessYield(ec)) return 0;  // in a task: every 64 calls that did not wait
  const int fd = descriptorOf(state);
  const Deadline deadline = detail::deadlineAfter(state->timeout);
  for (;;) {
    std::size_t sent = 0;
    ec = detail::sendDescriptorsOnce(fd, data, size, fds, count, sent);
    if (ec != std::errc::resource_unavailable_try_again) return ec ? 0 : sent;
    if (inTask()) {
      // The send buffer is full: the task waits for the event (which sends
      // when there is room) instead of blocking its worker.
      DescriptorSendEvent send(*this, data, size, fds, count);
      if (call.awaitInTask(send, ec)) return ec ? 0 : send.bytesTransferred();
    }
    if ((ec = call.waitOnThread(true, deadline))) return 0;
  }
}

std::size_t UnixSocket::sendDescriptors(const void* data, std::size_t size, const int* fds, std::size_t count) {
  std::error_code ec;
  const std::size_t sent = sendDescriptors(data, size, fds, count, ec);
  throwIfError(ec, "send descriptors", peerName());
  return sent;
}

std::size_t UnixSocket::receiveDescriptors(void* data, std::size_t size, int* fds, std::size_t capacity,
                                           std::size_t& received, std::error_code& ec) noexcept {
  received = 0;
  detail::SocketCall call(state_);
  SocketState* state = call.state();
  if (state == nullptr) {
    ec = Errc::not_open;
    return 0;
  }
  if (data == nullptr || size == 0 || (fds == nullptr && capacity != 0)) {
    ec = data == nullptr && size != 0 ? make_error_code(Errc::null_buffer)
                                      : std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  if (detail::fairnessYield(ec)) return 0;  // in a task: every 64 calls that did not wait
  const int fd = descriptorOf(state);
  const Deadline deadline = detail::deadlineAfter(state->timeout);
  for (;;) {
    std::size_t bytes = 0;
    ec = detail::receiveDescriptorsOnce(fd, data, size, fds, capacity, bytes, received);
    if (ec != std::errc::resource_unavailable_try_again) return ec ? 0 : bytes;
    if (inTask()) {
      // Nothing queued: the task waits for the event (which receives when
      // bytes arrive) instead of blocking its worker.
      DescriptorReceiveEvent receive(*this, data, size, fds, capacity);
      if (call.awaitInTask(receive, ec)) {
        received = receive.descriptorsReceived();
        return ec ? 0 : receive.bytesTransferred();
      }
    }
    if ((ec = call.waitOnThread(false, deadline))) return 0;
  }
}

std::size_t UnixSocket::receiveDescriptors(void* data, std::size_t size, int* fds, std::size_t capacity,
                                           std::size_t& received) {
  std::error_code ec;
  const std::size_t bytes = receiveDescriptors(data, size, fds, capacity, received, ec);
  throwIfError(ec, "receive descriptors", peerName());
  return bytes;
}

UnixListener::UnixListener() noexcept = default;
UnixListener::~UnixListener() = default;
UnixListener::UnixListener(UnixListener&& other) noexcept = default;
UnixListener& UnixListener::operator=(UnixListener&& other) noexcept = default;

UnixListener UnixListener::listen(const std::string& name, int backlog, std::error_code& ec) noexcept {
  UnixListener listener;
  const int fd = detail::listenUnix(name, backlog, ec, detail::TakenPath::replaceStale);
  if (fd < 0) return listener;
  std::unique_ptr<SocketState> state = detail::adoptDescriptor(fd, name, ec);
  if (!state) {
    if (name[0] != '@') ::unlink(name.c_str());
    return listener;
  }
  // APR learns an adopted socket's local address on the first ask, by
  // writing it into the socket (getsockname).  Asked now, before any
  // accept: later asks (a completion backend adopting a connection) only
  // read it, as threads' accepts do, so accepts on several threads and
  // channels at once do not race on it.
  apr_sockaddr_t* local = nullptr;
  apr_socket_addr_get(&local, APR_LOCAL, state->socket);
  // The pool's cleanups run in reverse order: the file goes first, then
  // the descriptor closes.
  detail::removeSocketFileWithPool(state->pool.get(), name);
  listener.state_.reset(std::move(state));
  return listener;
}

UnixListener UnixListener::listen(const std::string& name, int backlog) {
  std::error_code ec;
  UnixListener listener = listen(name, backlog, ec);
  throwIfError(ec, "listen", name);
  return listener;
}

UnixSocket UnixListener::accept(std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  UnixAcceptEvent event(*this);
  std::unique_ptr<SocketState> accepted = detail::acceptWithin(event, call, ec);
  if (accepted) {
    // Errors on the connection name the listener's socket.
    try {
      accepted->peer = call.state()->peer;
    } catch (const std::bad_alloc&) {
    }
  }
  return UnixSocket(std::move(accepted));
}

UnixSocket UnixListener::accept() {
  std::error_code ec;
  UnixSocket socket = accept(ec);
  throwIfError(ec, "accept", listenerName());
  return socket;
}

std::string UnixListener::name() const { return listenerName(); }

UnixSocket UnixAcceptEvent::takeSocket() noexcept {
  std::unique_ptr<SocketState> connection = detail::SocketAccess::release(accepted());
  if (connection) {
    const detail::SocketPin pin(detail::SocketAccess::slot(listener()));
    try {
      if (pin.get() != nullptr) connection->peer = pin.get()->peer;
    } catch (const std::bad_alloc&) {
    }
  }
  return UnixSocket(std::move(connection));
}

}  // namespace evchan
