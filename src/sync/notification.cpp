// SPDX-License-Identifier: Apache-2.0
// Notification on the waiter list.
#include <evchan/notification.h>

#include "sync/waiter.h"

namespace evchan {

void Notification::notify() {
  std::lock_guard<std::mutex> guard(guard_);
  notified_ = true;
  detail::WaitList waiters(head_, tail_);
  while (detail::Waiter* waiter = waiters.pop()) detail::signal(*waiter);
}

void Notification::wait() {
  while (!waitFor(kInfiniteTimeout)) {
  }
}

bool Notification::waitFor(Duration timeout) {
  std::unique_lock<std::mutex> guard(guard_);
  if (notified_) return true;
  detail::Waiter waiter;
  detail::WaitList(head_, tail_).push(waiter);
  const detail::ParkResult result = detail::park(waiter, guard, timeout);
  if (result != detail::ParkResult::signalled) detail::WaitList(head_, tail_).remove(waiter);
  if (result == detail::ParkResult::cancelled && !notified_) detail::throwCancelled("Notification::wait");
  if (result == detail::ParkResult::deadlinePassed && !notified_) detail::throwDeadlinePassed("Notification::wait");
  return notified_;
}

bool Notification::isNotified() {
  std::lock_guard<std::mutex> guard(guard_);
  return notified_;
}

void Notification::reset() {
  std::lock_guard<std::mutex> guard(guard_);
  notified_ = false;
}

}  // namespace evchan
