// SPDX-License-Identifier: Apache-2.0
// ConditionVariable: waits with a Mutex, suspending a waiting task.
#ifndef EVCHAN_CONDITION_VARIABLE_H
#define EVCHAN_CONDITION_VARIABLE_H

#include <mutex>

#include <evchan/duration.h>
#include <evchan/export.h>
#include <evchan/mutex.h>

namespace evchan {

/// A condition variable for evchan::Mutex, for tasks and threads alike: a
/// waiting task is suspended, a plain thread blocks.  Wake-ups are FIFO and
/// never spurious (a predicate loop is still the way to wait for a state).
/// A task waiting when its channel shuts down gets
/// SystemError(std::errc::operation_canceled), with the mutex locked again
/// unless re-locking it had to wait too (the mutex contended after the
/// shutdown): then that wait is cancelled as well and `lock.owns_lock()`
/// is false.  TaskHandle::cancel() ends a wait the same way, except that
/// the mutex is always locked again (re-locking is no cancellation point:
/// see Mutex).  A notified waiter never touches the condition variable
/// again, and notifyOne()/notifyAll() are done with it before a waiter they
/// wake can return; so, as with std::condition_variable, it may be
/// destroyed as soon as every waiter has been notified (by the notifier:
/// the waiters then need only the mutex; or by the last waiter to return),
/// as long as no waiter is ending its wait otherwise at that moment (its
/// timeout, cancellation or shutdown: such a waiter still takes itself off
/// the condition variable).
class EVCHAN_API ConditionVariable {
 public:
  ConditionVariable() = default;
  ConditionVariable(const ConditionVariable&) = delete;
  ConditionVariable& operator=(const ConditionVariable&) = delete;

  /// Releases `lock`, waits for notifyOne()/notifyAll(), locks it again.
  void wait(std::unique_lock<Mutex>& lock);
  template <class Predicate>
  /// Waits until `ready()` holds: wait() in a loop, `ready()` called with the
  /// lock held.
  void wait(std::unique_lock<Mutex>& lock, Predicate ready) {
    while (!ready()) wait(lock);
  }

  /// As wait(), for at most `timeout`: false when it passed unnotified.
  bool waitFor(std::unique_lock<Mutex>& lock, Duration timeout);
  /// Waits until `ready()` holds or `timeout` passes; returns ready().
  template <class Predicate>
  bool waitFor(std::unique_lock<Mutex>& lock, Duration timeout, Predicate ready);

  /// Wakes the longest-waiting waiter, if any.  Callable from any thread or
  /// task, with or without the mutex held.
  void notifyOne();
  /// Wakes every waiter, in FIFO order.  Callable like notifyOne().
  void notifyAll();

 private:
  std::mutex guard_;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters (a detail::WaitList)
  detail::Waiter* tail_ = nullptr;
};

template <class Predicate>
bool ConditionVariable::waitFor(std::unique_lock<Mutex>& lock, Duration timeout, Predicate ready) {
  const auto deadline = detail::saturatingAdd(std::chrono::steady_clock::now(), timeout);
  while (!ready()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return ready();
    waitFor(lock, deadline - now);  // positive, and no overflow: deadline > now
  }
  return true;
}

}  // namespace evchan

#endif  // EVCHAN_CONDITION_VARIABLE_H
