// SPDX-License-Identifier: Apache-2.0
// Internal: one thread or task waiting in a Mutex, ConditionVariable or
// Notification, and the FIFO of them.
#ifndef EVCHAN_SRC_SYNC_WAITER_H
#define EVCHAN_SRC_SYNC_WAITER_H

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <evchan/duration.h>
#include <evchan/timer_event.h>

#include "task/await.h"

namespace evchan::detail {

class ChannelCore;

/// Lives on the waiter's stack while it waits.  A task parks on `timer`
/// (its delay is the timeout): signal() cancels the timer, which resumes
/// the task.  A thread waits on `wakeup`, with `signalling`.
struct Waiter {
  ChannelCore* core = nullptr;  ///< the waiting task's channel; null for a thread
  TimerEvent timer{kInfiniteTimeout};
  std::atomic<bool> signalled{false};
  /// Taken off its list (under the list's guard) by a notifier that
  /// signals it once it has released that guard (ConditionVariable): the
  /// waiter waits for the signal (awaitSignal()) whatever else ends its
  /// wait, and never touches the list's owner again.
  std::atomic<bool> claimed{false};
  /// Held by signal() while it uses the waiter: a waiter that saw
  /// `signalled` without its owner's guard takes it before it goes.
  std::mutex signalling;
  std::condition_variable wakeup;
  Waiter* next = nullptr;
};

/// A FIFO of waiters, guarded by its owner's mutex: a view of the head and
/// tail pointers the owner (Mutex, ConditionVariable, ...) keeps, so that
/// public headers need not define Waiter.
class WaitList {
 public:
  WaitList(Waiter*& head, Waiter*& tail) noexcept : head_(head), tail_(tail) {}
  bool empty() const noexcept { return head_ == nullptr; }
  void push(Waiter& waiter) noexcept;
  Waiter* pop() noexcept;
  /// Empties the list; returns its first waiter, the others chained by
  /// `next`.
  Waiter* takeAll() noexcept;
  /// Takes `waiter` out if it is still queued (it timed out).
  void remove(Waiter& waiter) noexcept;

 private:
  Waiter*& head_;
  Waiter*& tail_;
};

enum class ParkResult {
  signalled,
  timedOut,
  /// The waiting task's channel shut down, or the task was cancelled: the
  /// wait is abandoned (the caller takes the waiter off its list and
  /// throws operation_canceled).
  cancelled,
  /// The task's this_task::DeadlineScope expired: abandoned likewise, the
  /// caller throws timed_out (throwDeadlinePassed()).
  deadlinePassed,
};

/// Whether park() takes its owner's guard again before it returns.  A
/// ConditionVariable's waiter, once notified, must not touch the condition
/// variable (std::condition_variable may be destroyed right after its
/// notify, the woken waiters needing only their mutex): with `never` the
/// caller settles a result other than signalled under the guard itself,
/// and awaits a signal with awaitSignal().
enum class Relock { always, never };

/// Parks the caller until signal() or `timeout`: a task is suspended (its
/// worker runs other tasks), a thread blocks (a channel worker counted as
/// blocked, so the pool compensates).  `guard` is held on entry, and on
/// return with Relock::always (then the result is final).  With
/// TaskCancel::ignored a task's own cancellation does not end the wait
/// (only its channel's shutdown does).
ParkResult park(Waiter& waiter, std::unique_lock<std::mutex>& guard, Duration timeout,
                TaskCancel taskCancel = TaskCancel::honoured, Relock relock = Relock::always);

/// Waits until signal() is done with a waiter that was signalled or
/// claimed (a moment: the notifier is between releasing its guard and
/// signal()), blocking the thread, a task's worker included.
void awaitSignal(Waiter& waiter) noexcept;

/// The exception a task's wait (or yield, or sleep) ends with once its
/// channel is shut down: SystemError(operation_canceled).
[[noreturn]] void throwCancelled(const char* operation);

/// The exception a task's wait ends with once its DeadlineScope expired:
/// SystemError(timed_out).
[[noreturn]] void throwDeadlinePassed(const char* operation);

/// Wakes a waiter taken off its list: with the list's guard held, or
/// after releasing it for a waiter claimed under it.  The waiter may be
/// gone once it returns.
void signal(Waiter& waiter) noexcept;

/// The running task's channel, or null outside a task (or without tasks).
ChannelCore* currentTaskChannel() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_SYNC_WAITER_H
