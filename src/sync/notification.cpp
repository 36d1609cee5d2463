// SPDX-License-Identifier: Apache-2.0
// Notification on the waiter list.
#include <evchan/notification.h>

#include <chrono>

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
  const auto deadline = detail::saturatingAdd(std::chrono::steady_clock::now(), timeout);
  std::unique_lock<std::mutex> guard(guard_);
  for (Duration left = timeout;;) {
    if (notified_) return true;
    detail::Waiter waiter;
    detail::WaitList(head_, tail_).push(waiter);
    const detail::ParkResult result = detail::park(waiter, guard, left);
    if (result != detail::ParkResult::signalled) detail::WaitList(head_, tail_).remove(waiter);
    if (notified_) return true;
    if (result == detail::ParkResult::cancelled) detail::throwCancelled("Notification::wait");
    if (result == detail::ParkResult::deadlinePassed) detail::throwDeadlinePassed("Notification::wait");
    if (result == detail::ParkResult::timedOut) return false;
    // Woken, but reset() came before this waiter ran: it waits on, for
    // what is left of its timeout.
    if (timeout == kInfiniteTimeout) continue;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    left = deadline - now;
  }
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
