// SPDX-License-Identifier: Apache-2.0
// Internal: the channel's and its backends' access to the private parts of events.
#ifndef EVCHAN_SRC_POLLER_EVENT_ACCESS_H
#define EVCHAN_SRC_POLLER_EVENT_ACCESS_H

#include <memory>

#include <evchan/dispatch_event.h>
#include <evchan/file_events.h>
#include <evchan/notify_event.h>
#include <evchan/resolve_event.h>
#include <evchan/socket_events.h>
#include <evchan/timer_event.h>

namespace evchan::detail {

struct EventAccess {
  static Event*& next(Event& e) noexcept { return e.next_; }
  static std::atomic<bool>& inFlight(Event& e) noexcept { return e.inFlight_; }
  static std::error_code& error(Event& e) noexcept { return e.error_; }
  static Event::Callback& callback(Event& e) noexcept { return e.callback_; }
  static bool& started(Event& e) noexcept { return e.started_; }
  static bool& runnable(Event& e) noexcept { return e.runnable_; }
  /// Set by every post (ChannelCore::post()'s `wakesTask`), true for a
  /// task's wait (awaitInTask()) whose callback does nothing but wake the
  /// task, lock-free: complete() on a worker of the channel runs it at
  /// once instead of queuing it, so the task is queued in its place.
  static bool& wakesTask(Event& e) noexcept { return e.wakesTask_; }

  static std::size_t& transferred(ReadEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(WriteEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(FileReadEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(FileWriteEvent& e) noexcept { return e.transferred_; }
  static TcpSocket& accepted(AcceptEvent& e) noexcept { return e.accepted_; }
  static TcpSocket& connected(ConnectEvent& e) noexcept { return e.connected_; }
  static std::function<void()>& function(DispatchEvent& e) noexcept { return e.function_; }
  static std::vector<Address>& addresses(ResolveEvent& e) noexcept { return e.addresses_; }
  static std::chrono::steady_clock::time_point& deadline(TimerEvent& e) noexcept { return e.deadline_; }
  static std::uint64_t& sequence(TimerEvent& e) noexcept { return e.sequence_; }

  /// Signals a NotifyEvent (posted) or wakes its waiters (shutdown: the
  /// workers of the shutting-down channel among them see it and leave;
  /// the others, plain threads and other channels' workers, wait on).
  /// With `handBack`, also ends the event's flight in the same critical
  /// section, so that no waiter sees the signal while it is still in
  /// flight.  Notifies under the lock: a waiter may destroy the event as
  /// soon as wait() returns.
  static void signal(NotifyEvent& e, bool posted, bool handBack = false) {
    std::lock_guard<std::mutex> lock(e.mutex_);
    if (posted) e.isSet_ = true;
    if (handBack) e.inFlight_.store(false, std::memory_order_release);
    e.signalled_.notify_all();
  }
};

/// Work the channel runs on a worker through its run queue, such as
/// resuming a task: a worker that pops it calls run() instead of a callback.
class RunnableEvent : public Event {
 public:
  RunnableEvent() noexcept : Event(Kind::Dispatch) { EventAccess::runnable(*this) = true; }
  virtual void run() noexcept = 0;
};

/// A FIFO of events linked through Event::next_; no allocation.
class EventQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push(Event& e) noexcept {
    EventAccess::next(e) = nullptr;
    if (tail_ != nullptr) EventAccess::next(*tail_) = &e; else head_ = &e;
    tail_ = &e;
  }
  /// Moves every event of `other`, in order, to the tail; `other` ends empty.
  void append(EventQueue& other) noexcept {
    if (other.head_ == nullptr) return;
    if (tail_ != nullptr) EventAccess::next(*tail_) = other.head_; else head_ = other.head_;
    tail_ = other.tail_;
    other.head_ = other.tail_ = nullptr;
  }
  Event* pop() noexcept {
    Event* e = head_;
    if (e != nullptr) {
      head_ = EventAccess::next(*e);
      if (head_ == nullptr) tail_ = nullptr;
      EventAccess::next(*e) = nullptr;
    }
    return e;
  }

 private:
  Event* head_ = nullptr;
  Event* tail_ = nullptr;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_EVENT_ACCESS_H
