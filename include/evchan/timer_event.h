// SPDX-License-Identifier: Apache-2.0
// TimerEvent: completes after a delay.
#ifndef EVCHAN_TIMER_EVENT_H
#define EVCHAN_TIMER_EVENT_H

#include <cstdint>

#include <evchan/duration.h>
#include <evchan/event.h>
#include <evchan/export.h>

namespace evchan {

/// Completes (successfully) once `delay` has passed after post().  A
/// negative delay is Errc::negative_timeout at post(); zero completes at once.
class EVCHAN_API TimerEvent : public Event {
 public:
  /// A timer that completes `delay` after each post().
  explicit TimerEvent(Duration delay) noexcept : Event(Kind::Timer), delay_(delay) {}

  /// Sets the delay for the next post(); not while the event is in flight.
  void setDelay(Duration delay) noexcept { delay_ = delay; }
  /// The delay counted from post().
  Duration delay() const noexcept { return delay_; }

 private:
  friend struct detail::EventAccess;
  Duration delay_;
  std::chrono::steady_clock::time_point deadline_{};  // while pending: its key in the channel's timers
  std::uint64_t sequence_ = 0;
};

}  // namespace evchan

#endif  // EVCHAN_TIMER_EVENT_H
