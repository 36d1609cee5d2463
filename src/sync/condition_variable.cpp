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
  const detail::ParkResult result =
      detail::park(waiter, guard, timeout, detail::TaskCancel::honoured, detail::Relock::unlessSignalled);
  if (result != detail::ParkResult::signalled) detail::WaitList(head_, tail_).remove(waiter);
  if (guard.owns_lock()) guard.unlock();
  lock.lock();
  if (result == detail::ParkResult::cancelled) detail::throwCancelled("ConditionVariable::wait");
  if (result == detail::ParkResult::deadlinePassed) detail::throwDeadlinePassed("ConditionVariable::wait");
  return result == detail::ParkResult::signalled;
}

void ConditionVariable::notifyOne() {
  std::lock_guard<std::mutex> guard(guard_);
  if (detail::Waiter* waiter = detail::WaitList(head_, tail_).pop()) detail::signal(*waiter);
}

void ConditionVariable::notifyAll() {
  std::lock_guard<std::mutex> guard(guard_);
  detail::WaitList waiters(head_, tail_);
  while (detail::Waiter* waiter = waiters.pop()) detail::signal(*waiter);
}

}  // namespace evchan
