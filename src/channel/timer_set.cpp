// SPDX-License-Identifier: Apache-2.0
// TimerSet: the pending timers, as a set ordered by (deadline, sequence).
#include "channel/timer_set.h"

#include "poller/event_access.h"

namespace evchan::detail {

void TimerSet::addLocked(TimerEvent& event, Deadline deadline) {
  EventAccess::deadline(event) = deadline;
  EventAccess::sequence(event) = sequence_++;
  timers_.insert(Entry{deadline, EventAccess::sequence(event), &event});
}

bool TimerSet::cancelLocked(TimerEvent& event) {
  // The key alone is not enough: another channel's timer (its sequence
  // numbers start at 0 too) may have the same one, kInfiniteTimeout above all.
  const auto found = timers_.find(Entry{EventAccess::deadline(event), EventAccess::sequence(event), &event});
  if (found == timers_.end() || found->event != &event) return false;
  timers_.erase(found);
  return true;
}

Deadline TimerSet::nextDeadlineLocked() const noexcept {
  return timers_.empty() ? kNoDeadline : timers_.begin()->deadline;
}

void TimerSet::takeDueLocked(Deadline now, std::vector<TimerEvent*>& expired) {
  while (!timers_.empty() && timers_.begin()->deadline <= now) {
    expired.push_back(timers_.begin()->event);
    timers_.erase(timers_.begin());
  }
}

void TimerSet::takeAllLocked(std::vector<Event*>& taken) {
  for (const Entry& entry : timers_) taken.push_back(entry.event);
  timers_.clear();
}

}  // namespace evchan::detail
