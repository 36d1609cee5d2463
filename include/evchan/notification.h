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
/// SystemError(std::errc::operation_canceled).
class EVCHAN_API Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void notify();
  /// Waits until notified.
  void wait();
  /// Waits at most `timeout`; true when notified.
  bool waitFor(Duration timeout);
  bool isNotified();
  void reset();

 private:
  std::mutex guard_;
  bool notified_ = false;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters (a detail::WaitList)
  detail::Waiter* tail_ = nullptr;
};

}  // namespace evchan

#endif  // EVCHAN_NOTIFICATION_H
