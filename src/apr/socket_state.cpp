// SPDX-License-Identifier: Apache-2.0
// Helpers shared by TcpSocket and TcpListener.
#include "apr/socket_state.h"

#include <mutex>
#include <string_view>
#include <thread>

#include <evchan/error.h>

#include "apr/fork_hooks.h"

namespace evchan::detail {

// The pins and the slot pair their atomics like Dekker's algorithm: a pin
// counts itself and then reads the state; close() unhooks the state and
// then reads the count.  In the single order of these sequentially
// consistent operations, either the pin's read comes after the unhooking
// (it sees a closed socket) or its count comes before close() reads it
// (close() waits for it).
SocketStateSlot::SocketStateSlot(std::unique_ptr<SocketState> state) noexcept : state_(state.release()) {}

SocketStateSlot::~SocketStateSlot() { reset(); }

SocketStateSlot::SocketStateSlot(SocketStateSlot&& other) noexcept : state_(other.take().release()) {}

SocketStateSlot& SocketStateSlot::operator=(SocketStateSlot&& other) noexcept {
  if (this != &other) reset(other.take());
  return *this;
}

std::unique_ptr<SocketState> SocketStateSlot::take() noexcept {
  std::unique_ptr<SocketState> state(state_.exchange(nullptr, std::memory_order_seq_cst));
  // A pin lasts a few steps of a post() that never blocks: yielding is enough.
  while (pins_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  return state;
}

void SocketStateSlot::enterClose() noexcept { closers_.fetch_add(1, std::memory_order_seq_cst); }

void SocketStateSlot::leaveClose() noexcept { closers_.fetch_sub(1, std::memory_order_release); }

bool SocketStateSlot::closeUnderWay() const noexcept { return closers_.load(std::memory_order_acquire) != 0; }

void SocketStateSlot::reset(std::unique_ptr<SocketState> replacement) noexcept {
  take().reset();  // cancels the socket's events and closes it
  state_.store(replacement.release(), std::memory_order_release);
}

SocketPin::SocketPin(const SocketStateSlot& slot) noexcept : slot_(&slot) {
  slot.pins_.fetch_add(1, std::memory_order_seq_cst);
  state_ = slot.state_.load(std::memory_order_seq_cst);
  if (state_ == nullptr) release();
}

void SocketPin::release() noexcept {
  if (slot_ == nullptr) return;
  // Release: what this thread did with the state happens before close()
  // destroys it.
  slot_->pins_.fetch_sub(1, std::memory_order_release);
  slot_ = nullptr;
  state_ = nullptr;
}

Address toAddress(const apr_sockaddr_t* sockaddr) {
  char host[64];
  if (apr_sockaddr_ip_getbuf(host, sizeof host, const_cast<apr_sockaddr_t*>(sockaddr)) != APR_SUCCESS)
    return Address();
  // APR prints an IPv4-mapped IPv6 address (a v4 client of a dual-stack
  // listener) as plain IPv4; report it as the IPv4 address it is.
  const bool ipv6 = std::string_view(host).find(':') != std::string_view::npos;
  return Address::fromNumeric(host, sockaddr->port, ipv6 ? AddressFamily::IPv6 : AddressFamily::IPv4);
}

namespace {

// apr_socket_addr_get() fills in the address it keeps in the socket the
// first time it is asked (getsockname() or getpeername() into it), so two
// threads asking at once both wrote it while each read it.  The calls are
// rare (an address asked for, an error's text): one lock serves them all.
// Any thread may hold it for a moment, so it is kept free across fork()
// (a child found it held by a parent thread making a listener, and its
// own listen() waited for ever).
std::mutex addressLock;
void lockAddresses() { addressLock.lock(); }
void unlockAddresses() { addressLock.unlock(); }

std::mutex& socketAddressLock() {
  static const bool heldAcrossFork = holdAcrossFork(&lockAddresses, &unlockAddresses);
  (void)heldAcrossFork;
  return addressLock;
}

}  // namespace

Address socketAddress(const SocketState* state, apr_interface_e which, std::error_code& ec) noexcept {
  if (state == nullptr) {
    ec = Errc::not_open;
    return Address();
  }
  std::lock_guard<std::mutex> lock(socketAddressLock());
  apr_sockaddr_t* sockaddr = nullptr;
  if (apr_status_t status = apr_socket_addr_get(&sockaddr, which, state->socket); status != APR_SUCCESS) {
    ec = makeAprError(status);
    return Address();
  }
  ec.clear();
  return toAddress(sockaddr);
}

int socketFamily(const SocketState* state) noexcept {
  std::lock_guard<std::mutex> lock(socketAddressLock());
  apr_sockaddr_t* local = nullptr;
  if (apr_socket_addr_get(&local, APR_LOCAL, state->socket) != APR_SUCCESS) return APR_UNSPEC;
  return local->family;
}

std::error_code setTimeout(SocketState* state, Duration timeout) noexcept {
  if (state == nullptr) return Errc::not_open;
  if (timeout < Duration::zero()) return Errc::negative_timeout;
  state->timeout = timeout;
  return {};
}

const std::string& peerOf(const SocketState* state) noexcept {
  static const std::string none;
  return state ? state->peer : none;
}

}  // namespace evchan::detail
