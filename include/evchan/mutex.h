// SPDX-License-Identifier: Apache-2.0
// Mutex: a lock that suspends a waiting task instead of blocking its thread.
#ifndef EVCHAN_MUTEX_H
#define EVCHAN_MUTEX_H

#include <mutex>
#include <thread>

#include <evchan/export.h>
#include <evchan/task.h>

namespace evchan {

namespace detail {
struct Waiter;
}

/// A mutual-exclusion lock for tasks and threads alike.  A task that has to
/// wait is suspended (its worker runs other tasks); a plain thread blocks.
/// Waiters get the lock in FIFO order, handed over by unlock().  Meets the
/// standard Lockable requirements, so std::lock_guard and std::unique_lock
/// work with it.  Only the owner may unlock: the task that locked it, on
/// whatever thread it runs now (a task may resume elsewhere while holding
/// it), or, outside tasks, the thread that locked it.  unlock() of
/// a mutex that is not locked, or by another task or thread, throws
/// SystemError(std::errc::operation_not_permitted) and leaves the mutex as
/// it was (from a std::lock_guard's destructor that terminates the
/// program: the mistake is never silent).
/// A task waiting in lock() when its channel shuts down gets
/// SystemError(std::errc::operation_canceled) instead of the lock.
/// TaskHandle::cancel() does not end a wait in lock(): a cancelled task
/// unwinding through destructors that take a lock gets it (an exception
/// there would terminate the program); the task's next cancellable wait
/// throws instead.
class EVCHAN_API Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  /// Waits for the lock and takes it (a task is suspended meanwhile).
  /// Not recursive: the owner locking it again waits forever (a task until
  /// its channel shuts down).
  void lock();
  /// Takes the lock if it is free, without waiting; true when taken.
  bool try_lock();
  /// Releases the lock, handing it to the longest waiter if any.  Only the
  /// owner may call it (see above).
  void unlock();

 private:
  /// Who holds the lock: a task, or a thread outside any task; neither
  /// while the lock is being handed over to a waiter that has not woken.
  struct Owner {
    TaskId task = 0;
    std::thread::id thread;
    bool operator==(const Owner& other) const noexcept { return task == other.task && thread == other.thread; }
  };
  static Owner caller() noexcept;

  std::mutex guard_;
  bool locked_ = false;
  Owner owner_;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters (a detail::WaitList)
  detail::Waiter* tail_ = nullptr;
};

}  // namespace evchan

#endif  // EVCHAN_MUTEX_H
