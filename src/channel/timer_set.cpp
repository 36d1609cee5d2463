// SPDX-License-Identifier: Apache-2.0
// TimerSet: the pending timers, as a set ordered by (deadline, sequence),
// and those without a deadline apart.
#include "channel/timer_set.h"

#include "poller/event_access.h"

namespace evchan::detail {

void TimerSet::addLocked(TimerEvent& event, Deadline deadline) {
  EventAccess::deadline(event) = deadline;
  if (deadline == kNoDeadline) {
    EventAccess::sequence(event) = unbounded_.size();
    unbounded_.push_back(&event);
    return;
  }
  EventAccess::sequence(event) = sequence_++;
  // Most timers come due after every pending one (the same timeout from a
  // later now): hinted at the end, such an insert takes constant time
  // instead of a walk down the tree, a cache miss a level with many timers.
  timers_.emplace_hint(timers_.end(), Entry{deadline, EventAccess::sequence(event), &event});
}

bool TimerSet::cancelLocked(TimerEvent& event) {
  if (EventAccess::deadline(event) == kNoDeadline) {
    // Pending here only if its slot still holds it: a timer that fired
    // or was swept keeps a stale index, and another channel's may match.
    const std::uint64_t index = EventAccess::sequence(event);
    if (index >= unbounded_.size() || unbounded_[index] != &event) return false;
    TimerEvent* last = unbounded_.back();
    unbounded_[index] = last;
    EventAccess::sequence(*last) = index;
    unbounded_.pop_back();
    return true;
  }
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
  taken.insert(taken.end(), unbounded_.begin(), unbounded_.end());
  unbounded_.clear();
}

}  // namespace evchan::detail
