// SPDX-License-Identifier: Apache-2.0
// Internal: what lets cancel() and close() on one thread end the blocking
// calls that other threads and tasks make on the same socket.
#ifndef EVCHAN_SRC_APR_WAIT_CANCELLATION_H
#define EVCHAN_SRC_APR_WAIT_CANCELLATION_H

#include <atomic>
#include <cstdint>
#include <mutex>

#include <apr_network_io.h>

#include "apr/apr_runtime.h"

namespace evchan::detail {

/// One wait of a blocking call, on the waiting thread's or task's stack,
/// registered with its socket's WaitCancellation while it lasts.
struct CancellableWait {
  /// Set by cancel(): the wait is to end with operation_canceled.
  std::atomic<bool> cancelled{false};
  /// A task's wait: how cancel() ends it (cancels the event the task
  /// posted, with `event` and `channel`).  Null for a thread's wait, which
  /// polls the wake socket instead.
  void (*cancelTask)(CancellableWait& wait) noexcept = nullptr;
  void* event = nullptr;
  void* channel = nullptr;
  /// For a thread: the wake socket to poll with its own (null: none could
  /// be made; poll in short slices and check `cancelled`).
  apr_socket_t* wake = nullptr;
  CancellableWait* next = nullptr;
  CancellableWait* previous = nullptr;
  bool inSlot = false;  // registered in WaitCancellation's task slot, not its list
  /// The generation its call started at (see enterWait()).
  std::uint64_t startedAt = 0;
};

/// Lives in a SocketState.  Counts the blocking calls inside the socket
/// (close() waits for them to leave before the descriptor goes: the
/// calls it cancelled leave within moments, so it polls callsInside()), keeps
/// their waits, and wakes them on cancel().  A call records the generation
/// when it starts; a cancel() after that ends its wait, even one it
/// registers later, but never a call that starts after the cancel().
///
/// A task's wait, the usual one, takes a slot of its own without the lock
/// (a second one at once, say a reader's and a writer's, goes in the list):
/// it publishes itself, then reads the generation, while cancel() bumps the
/// generation, then reads the slot, so one of the two sees the other.  The
/// wait found there may belong to a call that began after the bump (the
/// task's previous call saw it and ended meanwhile): its generation tells,
/// and cancel() leaves it be.
///
/// Threads wait in poll on their socket and on a wake socket, made on the
/// first thread's wait: a UDP socket connected to itself on loopback,
/// which cancel() makes readable by sending it a byte.  It is one
/// implementation for every platform (Windows' WSAPoll waits on sockets
/// only, so an eventfd or a pipe would not do there); where loopback is
/// missing the waits poll in short slices instead.  The byte stays until
/// every wait it cancelled has gone, so that none misses it; a newer wait
/// woken by it meanwhile yields and polls again.  A process forked after
/// it was made makes its own at its first wait: the parent's (shared with
/// every sibling) would let one process's drain take another's byte.
class WaitCancellation {
 public:
  WaitCancellation() = default;
  ~WaitCancellation();
  WaitCancellation(const WaitCancellation&) = delete;
  WaitCancellation& operator=(const WaitCancellation&) = delete;

  /// A blocking call starts: false once close() began (the call fails with
  /// not_open).  `startedAt` receives the generation.
  bool beginCall(std::uint64_t& startedAt) noexcept;
  /// The generation now: a call that must count as started earlier than
  /// its beginCall() (a step of readExactly(), begun with the call's first
  /// step) records it and uses it in place of beginCall()'s.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  /// The call that beginCall() admitted ends.
  void endCall() noexcept;

  /// Registers `wait` of the call that started at `startedAt`; false
  /// (nothing registered) when cancel() or close() came since.  A thread's
  /// wait (no cancelTask) gets its wake socket.
  bool enterWait(CancellableWait& wait, std::uint64_t startedAt) noexcept;
  void leaveWait(CancellableWait& wait) noexcept;

  /// Ends the registered waits, and the waits still to come of the calls
  /// under way, with operation_canceled.
  void cancel() noexcept;
  /// cancel(), and every later beginCall() fails.  True for the first
  /// caller: it is the one that waits for the calls and closes.
  bool close() noexcept;
  /// close() began.
  bool closing() const noexcept { return closing_.load(std::memory_order_acquire); }
  /// Whether a call is inside.  Once close() began, false means that none
  /// will be again: what the calls did with the socket happened before.
  bool callsInside() const noexcept { return calls_.load(std::memory_order_acquire) != 0; }

 private:
  void cancelLocked() noexcept;
  apr_socket_t* wakeSocketLocked() noexcept;

  // beginCall() and close() pair their atomics like SocketPin and
  // SocketStateSlot::take(): a call counts itself, then reads closing_;
  // close() sets closing_, then reads the count.  No lock on a call's way
  // in or out unless it waits.
  std::atomic<int> calls_{0};
  std::atomic<bool> closing_{false};
  std::atomic<std::uint64_t> generation_{0};  // written under mutex_
  // The task slot.  cancelLocked() raises `cancelling_` before it reads
  // the slot; a leaveWait() that then sees it raised takes mutex_, waiting
  // until the cancellation is done with the wait.
  std::atomic<CancellableWait*> taskWait_{nullptr};
  std::atomic<bool> cancelling_{false};  // written under mutex_
  std::mutex mutex_;
  CancellableWait* waits_ = nullptr;
  // Cancelled thread waits not yet gone: the wake byte is there while > 0.
  int wokenThreads_ = 0;
  bool wakeTried_ = false;
  std::uint64_t wakeGeneration_ = 0;  // the forkGeneration() it was made in
  PoolPtr wakePool_;
  apr_socket_t* wake_ = nullptr;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_WAIT_CANCELLATION_H
