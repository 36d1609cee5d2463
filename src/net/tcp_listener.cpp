// SPDX-License-Identifier: Apache-2.0
// TcpListener: a listening, non-blocking APR socket.
#include <algorithm>

#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tcp_listener.h>

#include <evchan/socket_events.h>
#include <evchan/task.h>

#include "net/endpoint_host.h"
#include "net/resolution.h"
#include "apr/host_lookup.h"
#include "apr/socket_io.h"
#include "apr/socket_state.h"
#include "net/socket_call.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::SocketState;

namespace {

// Binds one socket to the numeric `local` address and listens; `wildcard`:
// it stands for an empty host.
std::unique_ptr<SocketState> bindAndListen(const Address& local, bool wildcard, int backlog, std::error_code& ec) {
  auto state = std::make_unique<SocketState>();
  state->pool = detail::createPool(ec);
  if (!state->pool) return nullptr;
  apr_pool_t* pool = state->pool.get();

  apr_sockaddr_t* address = detail::numericSockaddr(local, pool);  // no lookup
  if (address == nullptr) {
    ec = std::make_error_code(std::errc::address_family_not_supported);
    return nullptr;
  }
  apr_status_t status = apr_socket_create(&state->socket, address->family, SOCK_STREAM, APR_PROTO_TCP, pool);
  if (status == APR_SUCCESS) status = detail::setListenAddressOptions(state->socket);
#if APR_HAVE_IPV6
  // The v6 wildcard takes IPv4 clients too where the system allows it;
  // where it does not, the socket stays IPv6-only (the failure is ignored).
  if (status == APR_SUCCESS && wildcard && address->family == APR_INET6)
    (void)apr_socket_opt_set(state->socket, APR_IPV6_V6ONLY, 0);
#endif
  if (status == APR_SUCCESS) status = apr_socket_bind(state->socket, address);
  if (status == APR_SUCCESS) status = apr_socket_listen(state->socket, backlog);
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if ((ec = makeAprError(status))) return nullptr;  // the pool's cleanup closes the socket
  return state;
}

// The address `host` stands for: resolve()'s first answer, so that a name
// is looked up off the worker inside a task (a numeric host needs no
// lookup at all).
std::unique_ptr<SocketState> bindAndListen(const Endpoint& endpoint, AddressFamily family, bool wildcard,
                                           int backlog, std::error_code& ec) {
  const std::vector<Address> addresses = detail::resolveWithin(endpoint, family, kInfiniteTimeout, ec);
  if (ec) return nullptr;
  if (addresses.empty()) {
    ec = std::make_error_code(std::errc::address_not_available);
    return nullptr;
  }
  return bindAndListen(addresses.front(), wildcard, backlog, ec);
}

std::unique_ptr<SocketState> openListener(const Endpoint& endpoint, int backlog, std::error_code& ec) {
  if (endpoint.port < 0 || endpoint.port > 65535) {
    ec = Errc::port_out_of_range;
    return nullptr;
  }
  if (backlog < 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  if ((ec = detail::checkHostForResolver(endpoint.host))) return nullptr;
  if (!endpoint.host.empty()) return bindAndListen(endpoint, AddressFamily::Unspecified, false, backlog, ec);
  // An empty host is the wildcard address: IPv6's first (it also takes
  // IPv4 clients), IPv4's where the system has no IPv6.
#if APR_HAVE_IPV6
  auto state = bindAndListen(Endpoint("::", endpoint.port), AddressFamily::IPv6, true, backlog, ec);
  // Only a system without IPv6 falls back; a port in use stays an error.
  if (state || (ec != std::errc::address_family_not_supported && ec != std::errc::address_not_available))
    return state;
#endif
  return bindAndListen(Endpoint("0.0.0.0", endpoint.port), AddressFamily::IPv4, true, backlog, ec);
}

// The bound address, for errors; empty once closed.
std::string nameOf(const detail::SocketStateSlot& slot) {
  const detail::SocketPin pin(slot);
  return detail::peerOf(pin.get());
}

}  // namespace

TcpListener::TcpListener() noexcept = default;
TcpListener::~TcpListener() = default;
TcpListener::TcpListener(TcpListener&& other) noexcept = default;
TcpListener& TcpListener::operator=(TcpListener&& other) noexcept = default;

TcpListener TcpListener::listen(const Endpoint& endpoint, int backlog, std::error_code& ec) noexcept {
  TcpListener listener;
  listener.state_.reset(openListener(endpoint, backlog, ec));
  // Errors name the bound address (with the port the kernel picked).
  std::error_code ignored;
  if (listener.state_) listener.state_->peer = detail::socketAddress(listener.state_.get(), APR_LOCAL, ignored).toString();
  return listener;
}

TcpListener TcpListener::listen(const Endpoint& endpoint, int backlog) {
  std::error_code ec;
  TcpListener listener = listen(endpoint, backlog, ec);
  throwIfError(ec, "listen", endpoint.toString());
  return listener;
}

namespace {

// One accept() within `call`, which may span several (acceptWithBackoff):
// a cancel() since the call began ends its wait.
TcpSocket acceptWithin(TcpListener& listener, detail::SocketCall& call, std::error_code& ec) {
  AcceptEvent accept(listener);
  return detail::SocketAccess::adopt(detail::acceptWithin(accept, call, ec));
}

}  // namespace

TcpSocket TcpListener::accept(std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  return acceptWithin(*this, call, ec);
}

namespace {

// The errors that say "no descriptor or buffer for a new socket now": the
// connection stays queued, and retrying at once only spins.
bool outOfDescriptors(const std::error_code& ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
         ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
}

}  // namespace

TcpSocket TcpListener::acceptWithBackoff(const AcceptBackoff& backoff, std::error_code& ec) noexcept {
  if (backoff.initialDelay <= Duration::zero() || backoff.maxDelay < backoff.initialDelay) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return TcpSocket();
  }
  // One call throughout: a cancel() during a back-off sleep ends the
  // accept() after it.
  detail::SocketCall call(state_);
  const Deadline deadline = detail::deadlineAfter(timeout());
  Duration delay = backoff.initialDelay;
  for (;;) {
    TcpSocket socket = acceptWithin(*this, call, ec);
    if (!outOfDescriptors(ec)) return socket;
    if (deadline != detail::kNoDeadline) {
      const auto left = deadline - detail::Clock::now();
      if (left <= Duration::zero()) {
        ec = std::make_error_code(std::errc::timed_out);
        return TcpSocket();
      }
      delay = std::min<Duration>(delay, std::chrono::duration_cast<Duration>(left));
    }
    if (backoff.onWait) backoff.onWait(ec, delay);
    try {
      this_task::sleepFor(delay);  // suspends a task, sleeps a plain thread
    } catch (const SystemError& e) {
      ec = e.code();  // operation_canceled: the task's channel shut down
      return TcpSocket();
    }
    // A cancel() or close() during the sleep ends the call here: on a
    // thread the next accept() fails at once (EMFILE) while a connection
    // is queued, without ever reaching a wait that would notice it, so
    // the back-off went on and a close() waited for it for ever.
    if (call.cancelledSinceStart()) {
      ec = std::make_error_code(std::errc::operation_canceled);
      return TcpSocket();
    }
    delay = delay > backoff.maxDelay / 2 ? backoff.maxDelay : delay * 2;
  }
}

TcpSocket TcpListener::acceptWithBackoff(const AcceptBackoff& backoff) {
  std::error_code ec;
  TcpSocket socket = acceptWithBackoff(backoff, ec);
  throwIfError(ec, "accept", nameOf(state_));
  return socket;
}

TcpSocket TcpListener::accept() {
  std::error_code ec;
  TcpSocket socket = accept(ec);
  throwIfError(ec, "accept", nameOf(state_));
  return socket;
}

Address TcpListener::localAddress(std::error_code& ec) const noexcept {
  const detail::SocketPin pin(state_);
  return detail::socketAddress(pin.get(), APR_LOCAL, ec);
}

Address TcpListener::localAddress() const {
  std::error_code ec;
  Address address = localAddress(ec);
  throwIfError(ec, "get local address");
  return address;
}

int TcpListener::port() const noexcept {
  std::error_code ec;
  return localAddress(ec).port();
}

}  // namespace evchan
