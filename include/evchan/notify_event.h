// SPDX-License-Identifier: Apache-2.0
// NotifyEvent: lets threads block until another thread posts it.
#ifndef EVCHAN_NOTIFY_EVENT_H
#define EVCHAN_NOTIFY_EVENT_H

#include <condition_variable>
#include <mutex>

#include <evchan/duration.h>
#include <evchan/event.h>
#include <evchan/export.h>

namespace evchan {

/// An application event threads can wait for.  wait() blocks until some
/// thread posts the event to a channel; posting wakes every waiter.  The
/// event stays signalled until reset().  A worker of a channel waiting in
/// wait() is released (wait() returns false) when that channel shuts down.
///
/// Posting completes it at once: its callback, if set, runs on a worker.
/// Without a callback it is not queued for getEvent(): its waiters are its
/// consumers.  A worker thread of a channel that blocks in wait() is
/// counted as blocked, and the pool starts a spare thread if work is
/// queued, so that the event that will release it can still run.
class EVCHAN_API NotifyEvent : public Event {
 public:
  /// An event that is not signalled.
  NotifyEvent() noexcept : Event(Kind::Notify) {}

  /// Blocks until the event has been posted or `timeout` passes; true when
  /// it was posted.  Thread-safe.
  bool wait(Duration timeout = kInfiniteTimeout);
  /// True once the event has been posted, until reset().  Thread-safe.
  bool isSignalled() const;
  /// Clears the signal so the event can be waited for and posted again.
  void reset();

 private:
  friend struct detail::EventAccess;
  mutable std::mutex mutex_;
  std::condition_variable signalled_;
  bool isSet_ = false;
  bool released_ = false;  // unused: kept for the layout (a waiter checks its own channel)
};

}  // namespace evchan

#endif  // EVCHAN_NOTIFY_EVENT_H
