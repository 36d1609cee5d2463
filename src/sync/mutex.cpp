// SPDX-License-Identifier: Apache-2.0
// Mutex: FIFO hand-over to waiting tasks and threads.
#include <evchan/mutex.h>

#include <evchan/system_error.h>

#include "sync/waiter.h"

namespace evchan {

// A task is its own owner wherever it runs; its thread is no identity
// (and std::this_thread::get_id() is not read inside one: it may move).
Mutex::Owner Mutex::caller() noexcept {
  if (const TaskId task = this_task::id()) return Owner{task, std::thread::id()};
  return Owner{0, std::this_thread::get_id()};
}

void Mutex::lock() {
  const Owner me = caller();
  std::unique_lock<std::mutex> guard(guard_);
  if (!locked_) {
    locked_ = true;
    owner_ = me;
    return;
  }
  detail::Waiter waiter;
  detail::WaitList(head_, tail_).push(waiter);
  // unlock() hands the lock over (locked_ stays true) and signals us.
  // TaskHandle::cancel() does not end this wait: a cancelled task unwinding
  // through destructors that lock must get the lock, not an exception
  // (which would terminate); its next cancellable wait throws instead.
  for (;;) {
    switch (detail::park(waiter, guard, kInfiniteTimeout, detail::TaskCancel::ignored)) {
      case detail::ParkResult::signalled:
        owner_ = me;
        return;
      case detail::ParkResult::timedOut:
      case detail::ParkResult::deadlinePassed:  // not for lock(): TaskCancel::ignored
        continue;
      case detail::ParkResult::cancelled:
        detail::WaitList(head_, tail_).remove(waiter);
        detail::throwCancelled("Mutex::lock");
    }
  }
}

bool Mutex::try_lock() {
  const Owner me = caller();
  std::lock_guard<std::mutex> guard(guard_);
  if (locked_) return false;
  locked_ = true;
  owner_ = me;
  return true;
}

void Mutex::unlock() {
  const Owner me = caller();
  std::unique_lock<std::mutex> guard(guard_);
  if (!locked_ || !(owner_ == me)) {
    const bool wasLocked = locked_;
    guard.unlock();
    throw SystemError(std::make_error_code(std::errc::operation_not_permitted),
                      wasLocked ? "Mutex::unlock by a task or thread that does not hold it"
                                : "Mutex::unlock of a mutex that is not locked");
  }
  owner_ = Owner();
  if (detail::Waiter* next = detail::WaitList(head_, tail_).pop()) {
    detail::signal(*next);  // now its owner; it records itself when it wakes
  } else {
    locked_ = false;
  }
}

}  // namespace evchan
