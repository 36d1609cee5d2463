// SPDX-License-Identifier: Apache-2.0
// ParkedTasks: an intrusive list of waits that only a shutdown can find.
#include "channel/parked_tasks.h"

namespace evchan::detail {

bool ParkedTasks::add(ParkedTask& task) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return false;
  task.previous = nullptr;
  task.next = first_;
  if (first_ != nullptr) first_->previous = &task;
  first_ = &task;
  task.listed = true;
  return true;
}

void ParkedTasks::remove(ParkedTask& task) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (task.listed) unlinkLocked(task);
}

void ParkedTasks::releaseAll() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  while (first_ != nullptr) {
    ParkedTask& task = *first_;
    unlinkLocked(task);
    // Under the lock: the task's remove() waits for it, so `task` (on the
    // waiting task's stack) outlives the call even once it has woken it.
    task.release(task);
  }
}

void ParkedTasks::unlinkLocked(ParkedTask& task) noexcept {
  if (task.previous != nullptr) {
    task.previous->next = task.next;
  } else {
    first_ = task.next;
  }
  if (task.next != nullptr) task.next->previous = task.previous;
  task.previous = task.next = nullptr;
  task.listed = false;
}

}  // namespace evchan::detail
