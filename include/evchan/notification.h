// SPDX-License-Identifier: Apache-2.0
// Notification: a one-shot signal that tasks and threads can wait for.
#ifndef EVCHAN_NOTIFICATION_H
#define EVCHAN_NOTIFICATION_H

#include <mutex>

#include <evchan/duration.h>
#include <evchan/export.h>

namespace evchan {

namespace detail {
struct Waiter;
}

/// Set once by notify(); every waiter, present or future, then proceeds
/// until reset().  A waiting task is suspended, a plain thread blocks; a
/// task still waiting when its channel shuts down gets
/// SystemError(std::errc::operation_canceled).  A waiter woken by notify()
/// reads the notification once more before it returns (see reset()):
/// destroy it only once no wait on it can still be in progress.
class EVCHAN_API Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  /// Sets the notification and wakes every waiter.  Thread-safe, from tasks
  /// and threads; notifying again before reset() changes nothing.
  void notify();
  /// Waits until notified.
  void wait();
  /// Waits at most `timeout`; true when notified.
  bool waitFor(Duration timeout);
  /// True from notify() until reset(), without waiting.  Thread-safe.
  bool isNotified();
  /// Clears the notification: later waits wait for the next notify().
  /// Thread-safe.  A waiter woken by notify() that has not run yet when
  /// reset() comes sees the reset and goes on waiting.
  void reset();

 private:
  std::mutex guard_;
  bool notified_ = false;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters (a detail::WaitList)
  detail::Waiter* tail_ = nullptr;
};

}  // namespace evchan

#endif  // EVCHAN_NOTIFICATION_H
