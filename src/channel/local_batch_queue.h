// SPDX-License-Identifier: Apache-2.0
// Internal: the events a worker's item completed or woke (a socket read
// done inline, a task it notified), kept for that worker to run next: its
// local batch.  The worker alone pushes and pops; the stuck-worker monitor
// may take them all for the shared queue when the item runs past its
// grace period, so that they do not wait for it beside an idle worker.
#ifndef EVCHAN_SRC_CHANNEL_LOCAL_BATCH_QUEUE_H
#define EVCHAN_SRC_CHANNEL_LOCAL_BATCH_QUEUE_H

#include <atomic>
#include <thread>

#include "poller/event_access.h"

namespace evchan::detail {

/// A FIFO of events under a spin lock: it is held for a few stores, and
/// only the monitor, once a grace period, ever contends for it, so a push
/// or a pop costs one atomic exchange and one store.
class LocalBatchQueue {
 public:
  void push(Event& event) noexcept {
    Guard guard(*this);
    queue_.push(event);
  }
  Event* pop() noexcept {
    Guard guard(*this);
    return queue_.pop();
  }
  /// Moves every event of `from`, in order, to the tail of this queue.
  void append(EventQueue& from) noexcept {
    Guard guard(*this);
    queue_.append(from);
  }
  /// Moves every event, in order, to the tail of `into`.
  void takeAll(EventQueue& into) noexcept {
    Guard guard(*this);
    into.append(queue_);
  }

 private:
  class Guard {
   public:
    explicit Guard(LocalBatchQueue& queue) noexcept : locked_(queue.locked_) {
      // The holder may be preempted: let it run rather than spin on.
      while (locked_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
    }
    ~Guard() { locked_.store(false, std::memory_order_release); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    std::atomic<bool>& locked_;
  };

  std::atomic<bool> locked_{false};
  EventQueue queue_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_LOCAL_BATCH_QUEUE_H
