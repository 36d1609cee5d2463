// SPDX-License-Identifier: Apache-2.0
// Parking and waking waiters, for tasks and for threads.
#include "sync/waiter.h"

#include <algorithm>
#include <string>

#include <evchan/error.h>
#include <evchan/system_error.h>

#include "channel/channel_core.h"
#include "task/await.h"

namespace evchan::detail {

void WaitList::push(Waiter& waiter) noexcept {
  waiter.next = nullptr;
  if (tail_ != nullptr) tail_->next = &waiter; else head_ = &waiter;
  tail_ = &waiter;
}

Waiter* WaitList::pop() noexcept {
  Waiter* waiter = head_;
  if (waiter != nullptr) {
    head_ = waiter->next;
    if (head_ == nullptr) tail_ = nullptr;
    waiter->next = nullptr;
  }
  return waiter;
}

Waiter* WaitList::takeAll() noexcept {
  Waiter* first = head_;
  head_ = tail_ = nullptr;
  return first;
}

void WaitList::remove(Waiter& waiter) noexcept {
  Waiter* previous = nullptr;
  for (Waiter* current = head_; current != nullptr; previous = current, current = current->next) {
    if (current != &waiter) continue;
    if (previous != nullptr) previous->next = current->next; else head_ = current->next;
    if (tail_ == current) tail_ = previous;
    current->next = nullptr;
    return;
  }
}

ParkResult park(Waiter& waiter, std::unique_lock<std::mutex>& guard, Duration timeout, TaskCancel taskCancel,
                Relock relock) {
  if ((waiter.core = currentTaskChannel()) != nullptr) {
    // The task parks on its timer; signal() sets the flag and cancels the
    // timer, and awaitInTask re-checks the flag once the timer is posted,
    // so a signal that comes while the task is switching out is not lost.
    // A timeout already over (a deadline computed late) is an expired one.
    waiter.timer.setDelay(std::max(timeout, Duration::zero()));
    guard.unlock();
    std::error_code ec;
    awaitInTask(waiter.timer, kInfiniteTimeout, ec, &waiter.signalled, taskCancel);
    if (relock == Relock::always) guard.lock();
    if (waiter.signalled.load()) return ParkResult::signalled;
    if (ec == std::errc::timed_out) return ParkResult::deadlinePassed;
    // Unsignalled, the timer either fired (the timeout) or was cancelled by
    // the channel's shutdown or the task's cancellation, or could not be
    // posted after a shutdown.
    const bool shutDown = ec == Errc::channel_shut_down || ec == std::errc::operation_canceled;
    return shutDown ? ParkResult::cancelled : ParkResult::timedOut;
  }
  // The thread waits on its own mutex, not on `guard`: woken, it need not
  // take `guard` again (Relock::never).  signal() sets the flag under
  // `signalling` too, so one that came after the unlock is seen.
  ChannelCore::enterBlocking();
  guard.unlock();
  {
    std::unique_lock<std::mutex> own(waiter.signalling);
    const Deadline deadline = deadlineAfter(timeout);
    const auto signalled = [&] { return waiter.signalled.load(); };
    if (deadline == kNoDeadline) {
      waiter.wakeup.wait(own, signalled);
    } else {
      waiter.wakeup.wait_until(own, deadline, signalled);
    }
  }
  ChannelCore::leaveBlocking();
  if (relock == Relock::always) guard.lock();  // a signal() after the timeout ran under it: seen here
  return waiter.signalled.load() ? ParkResult::signalled : ParkResult::timedOut;
}

void awaitSignal(Waiter& waiter) noexcept {
  // signal() holds `signalling` from setting the flag until it is done.
  std::unique_lock<std::mutex> own(waiter.signalling);
  waiter.wakeup.wait(own, [&] { return waiter.signalled.load(); });
}

void throwCancelled(const char* operation) {
  throw SystemError(std::make_error_code(std::errc::operation_canceled), operation);
}

void throwDeadlinePassed(const char* operation) {
  throw SystemError(std::make_error_code(std::errc::timed_out), std::string(operation) + " (the task's deadline passed)");
}

void signal(Waiter& waiter) noexcept {
  // Held until signal() no longer touches the waiter: a waiter that saw the
  // flag without the list's guard waits for it before it goes.
  std::lock_guard<std::mutex> busy(waiter.signalling);
  waiter.signalled.store(true);
  if (waiter.core != nullptr) waiter.core->cancel(waiter.timer);
  waiter.wakeup.notify_one();  // a thread, or a task in awaitSignal()
}

}  // namespace evchan::detail
