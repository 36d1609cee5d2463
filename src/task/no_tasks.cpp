// SPDX-License-Identifier: Apache-2.0
// Builds without the native POSIX layer have no tasks yet: spawn() fails
// with function_not_supported and the this_task calls act on the thread.
#include <atomic>
#include <cstdint>
#include <thread>

#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/task.h>
#include <evchan/task_local.h>

#include "sync/waiter.h"
#include "task/await.h"
#include "task/spawn.h"
#include "task/unhandled_exception.h"

namespace evchan {

bool inTask() noexcept { return false; }

namespace this_task {
void yield() { std::this_thread::yield(); }
void sleepFor(Duration duration) {
  if (duration > Duration::zero()) std::this_thread::sleep_for(duration);
}
TaskId id() noexcept { return 0; }
EventChannel& channel() {
  throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "this_task::channel outside a task");
}
bool cancellationRequested() noexcept { return false; }
CancellationShield::CancellationShield() noexcept : task_(nullptr) {}
CancellationShield::~CancellationShield() = default;
DeadlineScope::DeadlineScope(Duration) : task_(nullptr) {
  throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "this_task::DeadlineScope outside a task");
}
DeadlineScope::~DeadlineScope() = default;
}  // namespace this_task

bool TaskHandle::cancel() noexcept { return false; }

// No handle can refer to a task here: every one is empty.
void TaskHandle::join() { throw SystemError(std::make_error_code(std::errc::invalid_argument), "join"); }
bool TaskHandle::done() const noexcept { return false; }
TaskId TaskHandle::id() const noexcept { return 0; }

void* TaskLocalBase::slot(void* (*)(), void (*)(void*)) {
  throw SystemError(std::make_error_code(std::errc::operation_not_permitted), "TaskLocal::get outside a task");
}

namespace detail {

TaskHandle spawnTask(const std::shared_ptr<ChannelFront>&, std::unique_ptr<TaskFunction>, std::size_t,
                     std::error_code& ec) {
  ec = std::make_error_code(std::errc::function_not_supported);
  return TaskHandle();
}

}  // namespace detail
}  // namespace evchan

namespace evchan::detail {

bool awaitInTask(Event&, Duration, std::error_code&, const std::atomic<bool>*, TaskCancel, SocketKeeper) {
  return false;
}
bool awaitSocketInTask(Event&, Duration, std::error_code&, WaitCancellation&, std::uint64_t) noexcept {
  return false;
}
bool tryInTask(Event&, std::error_code&) { return false; }
bool fairnessYield(std::error_code&) noexcept { return false; }
bool awaitFileInTask(Event&, std::error_code&) { return false; }
bool yieldThroughShutdown() noexcept { return false; }

ChannelCore* currentTaskChannel() noexcept { return nullptr; }

void leaveRunningTaskExceptionReportToGroup() noexcept {}

}  // namespace evchan::detail
