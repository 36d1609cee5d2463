// SPDX-License-Identifier: Apache-2.0
// Internal: the pending TimerEvents of a channel, soonest first.
#ifndef EVCHAN_SRC_CHANNEL_TIMER_SET_H
#define EVCHAN_SRC_CHANNEL_TIMER_SET_H

#include <cstdint>
#include <set>
#include <vector>

#include <evchan/timer_event.h>

#include "poller/deadline.h"

namespace evchan::detail {

/// The timers posted to a channel and not yet fired or cancelled, ordered
/// by deadline, first posted first among equal deadlines.  Timers without
/// a deadline (kInfiniteTimeout: a task's join() parks on one) never come
/// due, so they are kept apart, in a vector that costs no allocation per
/// timer and no ordering: cancelled or swept at shutdown, last.  Not
/// synchronised: ChannelCore guards it with its pool mutex (mutex_), so
/// every member needs that lock held (see the lock order in
/// channel/channel_core.h).
class TimerSet {
 public:
  /// Adds `event` to fire at `deadline`, recording both the deadline and
  /// its place among equal deadlines in the event (cancel() finds it by them).
  void addLocked(TimerEvent& event, Deadline deadline);
  /// Takes `event` out; false when it is not pending (it fired, or was
  /// taken by takeAllLocked()).
  bool cancelLocked(TimerEvent& event);
  /// The soonest deadline, or kNoDeadline when no timer is pending.
  Deadline nextDeadlineLocked() const noexcept;
  /// Moves the timers due at `now` to `expired`, soonest first.
  void takeDueLocked(Deadline now, std::vector<TimerEvent*>& expired);
  /// Moves every pending timer to `taken`, soonest first, those without a
  /// deadline last (shutdown).
  void takeAllLocked(std::vector<Event*>& taken);

 private:
  struct Entry {
    Deadline deadline;
    std::uint64_t sequence;  // FIFO among equal deadlines
    TimerEvent* event;
    bool operator<(const Entry& other) const {
      return deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence;
    }
  };

  std::set<Entry> timers_;  // ordered by deadline; erasable for cancel
  std::uint64_t sequence_ = 0;
  // Deadline kNoDeadline: each event's sequence is its index here, and a
  // cancel moves the last one into the hole.
  std::vector<TimerEvent*> unbounded_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_TIMER_SET_H
