// SPDX-License-Identifier: Apache-2.0
// DispatchEvent: runs a function on one of the channel's worker threads.
#ifndef EVCHAN_DISPATCH_EVENT_H
#define EVCHAN_DISPATCH_EVENT_H

#include <functional>

#include <evchan/event.h>
#include <evchan/export.h>

namespace evchan {

/// Runs its function on a worker thread, then completes like any event
/// (its callback, if set, runs right after on the same worker; otherwise
/// getEvent() returns it).  An exception escaping the function is caught
/// and reported as the event's error (std::errc::state_not_recoverable),
/// never lost and never terminating the worker.
class EVCHAN_API DispatchEvent : public Event {
 public:
  /// An event that runs `function` when posted.
  explicit DispatchEvent(std::function<void()> function) noexcept
      : Event(Kind::Dispatch), function_(std::move(function)) {}

  /// Replaces the function, e.g. before re-posting; not while the event is
  /// in flight.
  void setFunction(std::function<void()> function) noexcept { function_ = std::move(function); }

 private:
  friend struct detail::EventAccess;
  std::function<void()> function_;
};

}  // namespace evchan

#endif  // EVCHAN_DISPATCH_EVENT_H
