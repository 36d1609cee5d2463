// Mutex: a lock that suspends a waiting task instead of blocking its thread.
#ifndef EVCHAN_MUTEX_H
#define EVCHAN_MUTEX_H

#include <mutex>

namespace evchan {

namespace detail {
struct Waiter;
}

/// A mutual-exclusion lock for tasks and threads alike.  A task that has to
/// wait is suspended (its worker runs other tasks); a plain thread blocks.
/// Waiters get the lock in FIFO order, handed over by unlock().  Meets the
/// standard Lockable requirements, so std::lock_guard and std::unique_lock
/// work with it.  Unlike std::mutex it may be unlocked by another thread
/// than the one that locked it: a task may resume elsewhere while holding it.
/// A task waiting in lock() when its channel shuts down gets
/// SystemError(std::errc::operation_canceled) instead of the lock.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock();
  bool try_lock();
  void unlock();

 private:
  std::mutex guard_;
  bool locked_ = false;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters (a detail::WaitList)
  detail::Waiter* tail_ = nullptr;
};

}  // namespace evchan

#endif  // EVCHAN_MUTEX_H
