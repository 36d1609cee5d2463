// SPDX-License-Identifier: Apache-2.0
// Internal: the tasks a channel's shutdown must wake that wait on no event.
#ifndef EVCHAN_SRC_CHANNEL_PARKED_TASKS_H
#define EVCHAN_SRC_CHANNEL_PARKED_TASKS_H

#include <mutex>

namespace evchan::detail {

/// A task suspended without an event in flight (join() waking on the
/// joined task's end): nothing the channel holds would end its wait at
/// shutdown, so it is listed here instead.  Lives on the waiting task's
/// stack between ParkedTasks::add() and remove().
struct ParkedTask {
  /// Called by the shutdown, with the list's lock held (remove() waits
  /// for it): ends the wait.  Must not block, nor take a lock that may be
  /// held while calling add() or remove().
  void (*release)(ParkedTask&) noexcept = nullptr;
  ParkedTask* previous = nullptr;
  ParkedTask* next = nullptr;
  bool listed = false;
};

/// One channel's parked tasks.  Its lock is a leaf but for what release
/// does (waking a task takes the channel's run-queue lock).
class ParkedTasks {
 public:
  /// Lists `task`; false, doing nothing, once releaseAll() has run.
  bool add(ParkedTask& task) noexcept;
  /// Unlists `task` if still listed; after it returns, the shutdown no
  /// longer touches it.
  void remove(ParkedTask& task) noexcept;
  /// The shutdown: releases every listed task and refuses later add()s.
  void releaseAll() noexcept;
  /// Held by any other end of a listed task's wait while it wakes the task.
  /// releaseAll() runs before the shutdown lets the channel's workers
  /// leave; under this lock it either ends the wait itself or comes after
  /// the task was queued for those workers.  Otherwise a wake-up landing
  /// once they had left would run the task on the waking thread.
  std::unique_lock<std::mutex> lockForWake() noexcept { return std::unique_lock<std::mutex>(mutex_); }

 private:
  void unlinkLocked(ParkedTask& task) noexcept;

  std::mutex mutex_;
  ParkedTask* first_ = nullptr;
  bool closed_ = false;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_PARKED_TASKS_H
