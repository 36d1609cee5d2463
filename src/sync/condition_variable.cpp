// SPDX-License-Identifier: Apache-2.0
// ConditionVariable on the waiter list.
#include <evchan/condition_variable.h>

#include "sync/waiter.h"

namespace evchan {

void ConditionVariable::wait(std::unique_lock<Mutex>& lock) {
  while (!waitFor(lock, kInfiniteTimeout)) {
  }
}

bool ConditionVariable::waitFor(std::unique_lock<Mutex>& lock, Duration timeout) {
  detail::Waiter waiter;
  std::unique_lock<std::mutex> guard(guard_);
  // The mutex released and the waiter queued under guard_: a notify after
  // the release finds the waiter.  Released first: a lock the caller does
  // not hold throws here, with nothing queued.
  lock.unlock();
  detail::WaitList(head_, tail_).push(waiter);
  // Notified, the waiter does not touch *this again: a notifier may destroy
  // it at once, as std::condition_variable allows.
  detail::ParkResult result =
      detail::park(waiter, guard, timeout, detail::TaskCancel::honoured, detail::Relock::never);
  if (result != detail::ParkResult::signalled && !waiter.claimed.load()) {
    guard.lock();
    if (!waiter.claimed.load()) detail::WaitList(head_, tail_).remove(waiter);
    guard.unlock();
  }
  // Claimed by a notify, the waiter is signalled once the notifier has let
  // go of guard_: the notification is this waiter's, whatever else ended
  // the wait.
  if (waiter.claimed.load()) {
    detail::awaitSignal(waiter);
    result = detail::ParkResult::signalled;
  }
  lock.lock();
  if (result == detail::ParkResult::cancelled) detail::throwCancelled("ConditionVariable::wait");
  if (result == detail::ParkResult::deadlinePassed) detail::throwDeadlinePassed("ConditionVariable::wait");
  return result == detail::ParkResult::signalled;
}

// The waiters are claimed under guard_ and signalled after it is released:
// a woken waiter may return and destroy *this at once (the last one out,
// as std::condition_variable allows), and nothing here touches *this after
// the first signal.

void ConditionVariable::notifyOne() {
  detail::Waiter* waiter;
  {
    std::lock_guard<std::mutex> guard(guard_);
    waiter = detail::WaitList(head_, tail_).pop();
    if (waiter == nullptr) return;
    waiter->claimed.store(true);
  }
  detail::signal(*waiter);
}

void ConditionVariable::notifyAll() {
  detail::Waiter* first;
  {
    std::lock_guard<std::mutex> guard(guard_);
    first = detail::WaitList(head_, tail_).takeAll();
    for (detail::Waiter* waiter = first; waiter != nullptr; waiter = waiter->next) waiter->claimed.store(true);
  }
  for (detail::Waiter* waiter = first; waiter != nullptr;) {
    detail::Waiter* next = waiter->next;  // read first: once signalled, the waiter may be gone
    detail::signal(*waiter);
    waiter = next;
  }
}

}  // namespace evchan
