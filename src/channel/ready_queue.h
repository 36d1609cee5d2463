// SPDX-License-Identifier: Apache-2.0
// Internal: the completed events a channel holds for getEvent().
#ifndef EVCHAN_SRC_CHANNEL_READY_QUEUE_H
#define EVCHAN_SRC_CHANNEL_READY_QUEUE_H

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "poller/deadline.h"
#include "poller/event_access.h"

namespace evchan::detail {

/// The completed events without callbacks, held in flight until
/// EventChannel::getEvent() takes them, in completion order.  Thread-safe:
/// its own mutex is the innermost lock but one (see the lock order in
/// channel/channel_core.h); only the process-wide list of shut-down queues
/// (forgetHeld()) is taken before it.
class ReadyQueue {
 public:
  /// Holds `event` for take(), or, once its owner is gone (releaseHeld()),
  /// hands it back at once: no longer in flight, its result kept.
  void push(Event& event) noexcept;
  /// Waits for an event until `deadline` and returns it, still in flight
  /// (the caller hands it back), or null: none came in time, the queue is
  /// closed or released, or `stop` (when given) is set.
  Event* take(Deadline deadline, const std::atomic<bool>* stop) noexcept;
  /// The channel is shut down and its pool gone: take() stops waiting.
  void close() noexcept;
  /// Wakes every take() so that it looks at its `stop` flag again.
  void wakeWaiters() noexcept;
  /// How many threads wait in take() (for ThreadPoolStats).
  int waiting() const noexcept { return waiting_.load(std::memory_order_relaxed); }

  /// Lists this queue among the shut-down channels' (before shutdown hands
  /// anything back), where forgetHeld() looks.
  void listAsShutDown() noexcept;
  /// The owner is gone: hands every held event back, and so every event
  /// pushed later; leaves the list of shut-down queues.  Idempotent; must
  /// run before the queue is destroyed.
  void releaseHeld() noexcept;
  /// For ~Event of an event in flight: when a listed queue holds it, takes
  /// it out and hands it back; true then (or when it was handed back
  /// meanwhile).  False: a channel may still use it.
  static bool forgetHeld(Event& event) noexcept;

 private:
  /// Takes `event` out of events_ if it is there; mutex_ held.
  bool takeLocked(Event& event) noexcept;

  std::mutex mutex_;
  std::condition_variable available_;
  EventQueue events_;
  bool closed_ = false;     // shut down and the pool gone: take() stops waiting
  bool ownerGone_ = false;  // the EventChannel is destroyed: events are handed back, never held
  std::atomic<int> waiting_{0};  // changed under mutex_; atomic for waiting()
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_READY_QUEUE_H
