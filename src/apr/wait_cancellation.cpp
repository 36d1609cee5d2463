// SPDX-License-Identifier: Apache-2.0
// WaitCancellation: ending the blocking calls on one socket from elsewhere.
#include "apr/wait_cancellation.h"

#include "apr/fork_hooks.h"

namespace evchan::detail {
namespace {

// A UDP socket on loopback connected to itself: a datagram it sends itself
// makes it readable.  Null when the host has no loopback for it.
apr_socket_t* openSelfConnectedSocket(apr_pool_t* pool) noexcept {
  apr_sockaddr_t* loopback = nullptr;
  apr_socket_t* socket = nullptr;
  apr_sockaddr_t* bound = nullptr;
  if (apr_sockaddr_info_get(&loopback, "127.0.0.1", APR_INET, 0, 0, pool) != APR_SUCCESS ||
      apr_socket_create(&socket, APR_INET, SOCK_DGRAM, APR_PROTO_UDP, pool) != APR_SUCCESS)
    return nullptr;
  if (apr_socket_bind(socket, loopback) != APR_SUCCESS ||
      apr_socket_addr_get(&bound, APR_LOCAL, socket) != APR_SUCCESS ||
      apr_socket_connect(socket, bound) != APR_SUCCESS || apr_socket_timeout_set(socket, 0) != APR_SUCCESS) {
    apr_socket_close(socket);
    return nullptr;
  }
  return socket;
}

void drain(apr_socket_t* socket) noexcept {
  char bytes[16];
  for (;;) {
    apr_size_t length = sizeof bytes;
    if (apr_socket_recv(socket, bytes, &length) != APR_SUCCESS || length == 0) return;
  }
}

}  // namespace

WaitCancellation::~WaitCancellation() = default;  // the wake pool closes the wake socket

bool WaitCancellation::beginCall(std::uint64_t& startedAt) noexcept {
  calls_.fetch_add(1, std::memory_order_seq_cst);
  if (closing_.load(std::memory_order_seq_cst)) {
    calls_.fetch_sub(1, std::memory_order_release);
    return false;
  }
  startedAt = generation_.load(std::memory_order_acquire);
  return true;
}

void WaitCancellation::endCall() noexcept {
  // Release: what the call did with the socket happens before close()
  // destroys it.  Nothing here may touch `this` after the decrement.
  calls_.fetch_sub(1, std::memory_order_release);
}

apr_socket_t* WaitCancellation::wakeSocketLocked() noexcept {
  const std::uint64_t generation = forkGeneration();
  if (wakeTried_ && wakeGeneration_ != generation) {
    // Made before a fork: the parent and the siblings have it too.  No
    // wait of this process uses it (a fork leaves only the forking thread,
    // which was not waiting); this copy of it is closed.
    wake_ = nullptr;
    wakePool_.reset();
    wokenThreads_ = 0;
    wakeTried_ = false;
  }
  if (!wakeTried_) {
    wakeTried_ = true;
    wakeGeneration_ = generation;
    std::error_code ec;
    wakePool_ = createPool(ec);
    if (wakePool_) wake_ = openSelfConnectedSocket(wakePool_.get());
  }
  return wake_;
}

bool WaitCancellation::enterWait(CancellableWait& wait, std::uint64_t startedAt) noexcept {
  wait.startedAt = startedAt;  // before the wait is published: cancelLocked() reads it
  if (wait.cancelTask != nullptr) {
    CancellableWait* empty = nullptr;
    if (taskWait_.compare_exchange_strong(empty, &wait, std::memory_order_seq_cst)) {
      wait.inSlot = true;
      if (generation_.load(std::memory_order_seq_cst) == startedAt && !closing_.load(std::memory_order_seq_cst))
        return true;
      leaveWait(wait);  // a cancel() or close() came since the call began
      return false;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (generation_.load(std::memory_order_relaxed) != startedAt || closing_.load(std::memory_order_relaxed))
    return false;
  if (wait.cancelTask == nullptr) wait.wake = wakeSocketLocked();
  wait.previous = nullptr;
  wait.next = waits_;
  if (waits_ != nullptr) waits_->previous = &wait;
  waits_ = &wait;
  return true;
}

void WaitCancellation::leaveWait(CancellableWait& wait) noexcept {
  if (wait.inSlot) {
    wait.inSlot = false;
    taskWait_.store(nullptr, std::memory_order_seq_cst);
    if (cancelling_.load(std::memory_order_seq_cst)) std::lock_guard<std::mutex> done(mutex_);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (wait.previous != nullptr) wait.previous->next = wait.next; else waits_ = wait.next;
  if (wait.next != nullptr) wait.next->previous = wait.previous;
  wait.next = wait.previous = nullptr;
  // The last thread the byte woke takes it away.
  if (wait.cancelTask == nullptr && wait.cancelled.load(std::memory_order_relaxed) && --wokenThreads_ == 0 &&
      wake_ != nullptr)
    drain(wake_);
}

void WaitCancellation::cancelLocked() noexcept {
  const std::uint64_t generation = generation_.fetch_add(1, std::memory_order_seq_cst) + 1;
  cancelling_.store(true, std::memory_order_seq_cst);
  // Under the lock, like the list's: the wait, and the task's event, stay
  // until leaveWait() (which waits for the lock when it sees cancelling_).
  // Only a wait whose call started before the bump: between the bump and
  // this read, a call that saw it may have ended (its enterWait() failed)
  // and the task's next call, started after this cancel(), taken the slot.
  if (CancellableWait* wait = taskWait_.load(std::memory_order_seq_cst)) {
    if (wait->startedAt != generation && !wait->cancelled.exchange(true)) wait->cancelTask(*wait);
  }
  cancelling_.store(false, std::memory_order_release);
  bool wakeThreads = false;
  for (CancellableWait* wait = waits_; wait != nullptr; wait = wait->next) {
    if (wait->cancelled.exchange(true)) continue;  // a second cancel() of the same wait
    // Under the lock: the wait, and the task's event, stay until leaveWait().
    if (wait->cancelTask != nullptr) {
      wait->cancelTask(*wait);
    } else if (wokenThreads_++ == 0) {
      wakeThreads = true;
    }
  }
  // Only this process's own: a parent's, made before a fork, would wake
  // the parent's waits (this process has none on it, see above).
  if (wakeThreads && wake_ != nullptr && wakeGeneration_ == forkGeneration()) {
    char byte = 0;
    apr_size_t length = 1;
    (void)apr_socket_send(wake_, &byte, &length);  // a full buffer has a byte already
  }
}

void WaitCancellation::cancel() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelLocked();
}

bool WaitCancellation::close() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  const bool first = !closing_.exchange(true, std::memory_order_seq_cst);
  cancelLocked();
  return first;
}

}  // namespace evchan::detail
