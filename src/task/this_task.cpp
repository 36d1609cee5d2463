// SPDX-License-Identifier: Apache-2.0
// this_task::*, inTask(), TaskHandle, TaskLocal's slot, EventChannel::spawn.
#include <atomic>
#include <cstdint>
#include <thread>

#include <evchan/error.h>
#include <evchan/event_channel.h>
#include <evchan/system_error.h>
#include <evchan/task.h>
#include <evchan/task_local.h>
#include <evchan/timer_event.h>

#include "channel/channel_core.h"
#include "task/await.h"
#include "task/channel_front.h"
#include "task/spawn.h"
#include "sync/waiter.h"
#include "task/task_state.h"

namespace evchan {

bool inTask() noexcept { return detail::TaskState::current() != nullptr; }

namespace {

// Suspension points of a task whose channel has shut down throw, so that
// the task unwinds and the shutdown can finish.
// So do they once TaskHandle::cancel() was called, outside a shield.
void throwIfShutDown(detail::TaskState& task, const char* operation) {
  if (task.core().isShutDown() || task.cancelPending()) detail::throwCancelled(operation);
}

}  // namespace

namespace this_task {

void yield() {
  detail::TaskState* task = detail::TaskState::current();
  if (task == nullptr) {
    std::this_thread::yield();
    return;
  }
  // Re-queued once it is off its stack, behind the other ready tasks.
  throwIfShutDown(*task, "yield");
  task->yield();
}

void sleepFor(Duration duration) {
  detail::TaskState* task = detail::TaskState::current();
  if (task == nullptr) {
    if (duration > Duration::zero()) std::this_thread::sleep_for(duration);
    return;
  }
  if (duration <= Duration::zero()) return yield();
  // The timer lives on the task's stack, which stays put while it sleeps;
  // shutdown or cancel() ends the wait early.
  TimerEvent timer(duration);
  std::error_code ec;
  detail::awaitInTask(timer, kInfiniteTimeout, ec);
  if (ec == std::errc::timed_out) detail::throwDeadlinePassed("sleepFor");
  if (ec) detail::throwCancelled("sleepFor");
}

TaskId id() noexcept {
  detail::TaskState* task = detail::TaskState::current();
  return task != nullptr ? task->id() : 0;
}

EventChannel& channel() {
  detail::TaskState* task = detail::TaskState::current();
  if (task == nullptr) {
    throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "this_task::channel outside a task");
  }
  EventChannel* channel = task->front().channel.load();
  if (channel == nullptr) throw SystemError(Errc::channel_shut_down, "this_task::channel (the EventChannel is destroyed)");
  return *channel;
}

bool cancellationRequested() noexcept {
  detail::TaskState* task = detail::TaskState::current();
  return task != nullptr && task->cancelRequested();
}

CancellationShield::CancellationShield() noexcept : task_(detail::TaskState::current()) {
  if (task_ != nullptr) task_->enterShield();
}

CancellationShield::~CancellationShield() {
  if (task_ != nullptr) task_->leaveShield();
}

DeadlineScope::DeadlineScope(Duration timeout) : task_(detail::TaskState::current()) {
  if (task_ == nullptr) {
    throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "this_task::DeadlineScope outside a task");
  }
  // An enclosing scope's earlier deadline stays.
  const detail::Deadline mine = detail::deadlineAfter(timeout);
  previous_ = task_->setDeadline(mine);
  if (previous_ < mine) task_->setDeadline(previous_);
}

DeadlineScope::~DeadlineScope() { task_->setDeadline(previous_); }

}  // namespace this_task

bool TaskHandle::cancel() noexcept { return state_ && state_->cancel(); }

void TaskHandle::join() {
  if (!state_) throw SystemError(std::make_error_code(std::errc::invalid_argument), "join");
  state_->join();
}

bool TaskHandle::done() const noexcept { return state_ && state_->done(); }

TaskId TaskHandle::id() const noexcept { return state_ ? state_->id() : 0; }

void* TaskLocalBase::slot(void* (*make)(), void (*destroy)(void*)) {
  detail::TaskState* task = detail::TaskState::current();
  if (task == nullptr) throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "TaskLocal::get outside a task");
  // Keyed by a number of its own, not its address: a TaskLocal built where
  // a destroyed one lived must not find the old one's slots.  64 bits never
  // wrap (centuries of TaskLocals at one a nanosecond).
  static std::atomic<std::uint64_t> nextKey{1};
  std::uint64_t mine = key_.load(std::memory_order_acquire);
  if (mine == 0) {
    const std::uint64_t fresh = nextKey.fetch_add(1, std::memory_order_relaxed);
    // Two tasks may get() it first at once: one number wins for both.
    mine = key_.compare_exchange_strong(mine, fresh, std::memory_order_acq_rel) ? fresh : mine;
  }
  return task->localSlot(mine, make, destroy);
}

namespace detail {

ChannelCore* currentTaskChannel() noexcept {
  TaskState* task = TaskState::current();
  return task != nullptr ? &task->core() : nullptr;
}

TaskHandle spawnTask(const std::shared_ptr<ChannelFront>& front, std::unique_ptr<TaskFunction> function,
                     std::size_t stackSize, std::error_code& ec) {
  TaskHandle handle;
  TaskState::spawn(front, std::move(function), stackSize, handle, ec);
  return handle;
}

}  // namespace detail
}  // namespace evchan
