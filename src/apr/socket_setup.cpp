// SPDX-License-Identifier: Apache-2.0
// Starting a connect and accepting once: shared by the blocking calls and
// the event channel.
#include <atomic>

#include <evchan/error.h>

#include "apr/host_lookup.h"
#include "apr/sanitizer_build.h"
#include "apr/socket_state.h"

namespace evchan::detail {

std::unique_ptr<SocketState> openForConnect(const Address& address, apr_sockaddr_t*& target, std::error_code& ec) {
  target = nullptr;
  if (address.empty()) {
    ec = Errc::no_address;
    return nullptr;
  }
  if (address.port() < 0 || address.port() > 65535) {
    ec = Errc::port_out_of_range;
    return nullptr;
  }
  auto state = std::make_unique<SocketState>();
  state->pool = createPool(ec);
  if (!state->pool) return nullptr;
  apr_pool_t* pool = state->pool.get();

  // A numeric address (every one the resolver or the kernel reports) is
  // built without getaddrinfo(), which must not run on a worker.
  apr_status_t status = APR_SUCCESS;
  if ((target = numericSockaddr(address, pool)) == nullptr) {
    const apr_int32_t family = address.family() == AddressFamily::IPv4 ? APR_INET : APR_UNSPEC;
    status = apr_sockaddr_info_get(&target, address.host().c_str(), family, static_cast<apr_port_t>(address.port()), 0,
                                   pool);
  }
  if (status == APR_SUCCESS) status = apr_socket_create(&state->socket, target->family, SOCK_STREAM, APR_PROTO_TCP, pool);
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if ((ec = makeAprError(status))) return nullptr;  // the pool's cleanup closes a half-made socket
  state->peer = address.toString();
  return state;
}

std::unique_ptr<SocketState> startConnect(const Address& address, bool& inProgress, std::error_code& ec) {
  inProgress = false;
  apr_sockaddr_t* target = nullptr;
  std::unique_ptr<SocketState> state = openForConnect(address, target, ec);
  if (!state) return nullptr;
  const apr_status_t status = apr_socket_connect(state->socket, target);
  if (APR_STATUS_IS_EINPROGRESS(status) || APR_STATUS_IS_EAGAIN(status)) {
    inProgress = true;
  } else if ((ec = makeAprError(status))) {
    return nullptr;
  }
  ec.clear();
  return state;
}

namespace {

// The pool of an accept that found no connection, for the next attempt.
// apr_socket_accept() takes nothing from its pool until it has accepted
// one, so the pool is as good as new, and every burst of accepts ends with
// such an attempt.  One for the process: taken and given back with one
// atomic exchange each, where making a pool takes the shared allocator's
// lock twice (made, destroyed).
std::atomic<apr_pool_t*> spareAcceptPool{nullptr};

PoolPtr takeAcceptPool(std::error_code& ec) noexcept {
  if (apr_pool_t* spare = spareAcceptPool.exchange(nullptr, std::memory_order_acquire)) return PoolPtr(spare);
  return createPool(ec);
}

// Under AddressSanitizer each pool has an allocator of its own (see
// sharedAllocator()), which LeakSanitizer sees only through the pool's
// mapped block, where it does not look: a spare kept to the end reads as
// a leak.  There the pool is destroyed, as before.
void giveBackAcceptPool(PoolPtr pool) noexcept {
#ifndef EVCHAN_ASAN
  apr_pool_t* expected = nullptr;
  if (spareAcceptPool.compare_exchange_strong(expected, pool.get(), std::memory_order_release)) pool.release();
#else
  (void)pool;
#endif
}

}  // namespace

std::unique_ptr<SocketState> acceptOnce(apr_socket_t* listener, std::error_code& ec) {
  PoolPtr pool = takeAcceptPool(ec);
  if (!pool) return nullptr;
  apr_socket_t* socket = nullptr;
  for (;;) {
    const apr_status_t status = apr_socket_accept(&socket, listener, pool.get());
    if (status == APR_SUCCESS) break;
    // A connection reset while it waited in the queue is not our caller's error.
    if (APR_STATUS_IS_ECONNABORTED(status) || APR_STATUS_IS_EINTR(status)) continue;
    ec = makeAprError(status);
    giveBackAcceptPool(std::move(pool));
    return nullptr;
  }
  auto accepted = std::make_unique<SocketState>();
  accepted->pool = std::move(pool);
  accepted->socket = socket;
  if ((ec = makeAprError(apr_socket_timeout_set(accepted->socket, 0)))) return nullptr;
  accepted->peer = socketAddress(accepted.get(), APR_REMOTE, ec).toString();
  ec.clear();  // the peer text is only for error messages
  return accepted;
}


std::unique_ptr<SocketState> adoptAccepted(apr_socket_t* listener, apr_os_sock_t fd, bool& owned,
                                           std::error_code& ec) {
  owned = false;
  auto accepted = std::make_unique<SocketState>();
  accepted->pool = createPool(ec);
  if (!accepted->pool) return nullptr;
  apr_sockaddr_t* local = nullptr;
  apr_status_t status = apr_socket_addr_get(&local, APR_LOCAL, listener);
  apr_os_sock_info_t info{};
  info.os_sock = &fd;
  info.family = status == APR_SUCCESS ? local->family : APR_INET;
  info.type = SOCK_STREAM;
  info.protocol = APR_PROTO_TCP;
  // From here the pool owns the descriptor and closes it.
  if (status == APR_SUCCESS) status = apr_os_sock_make(&accepted->socket, &info, accepted->pool.get());
  if (status != APR_SUCCESS) {
    ec = makeAprError(status);
    return nullptr;
  }
  owned = true;
  if ((ec = makeAprError(apr_socket_timeout_set(accepted->socket, 0)))) return nullptr;
  accepted->peer = socketAddress(accepted.get(), APR_REMOTE, ec).toString();
  ec.clear();
  return accepted;
}

}  // namespace evchan::detail
