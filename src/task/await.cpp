// SPDX-License-Identifier: Apache-2.0
// awaitInTask() and awaitSocketInTask(): a task waits for an event and,
// with a timeout, a timer racing it.
#include "task/await.h"

#include <apr_errno.h>

#include <algorithm>
#include <atomic>

#include <evchan/error.h>
#include <evchan/timer_event.h>

#include "apr/wait_cancellation.h"
#include "channel/channel_core.h"
#include "poller/event_access.h"
#include "task/task_state.h"

namespace evchan::detail {
namespace {

// The events a wait posts are its caller's own, never in flight before
// it: their callbacks are set directly (EventAccess), without
// Event::setCallback()'s check.
//
// Lives on the waiting task's stack until both events are back.  What
// every wait touches comes first, together: with many parked tasks each
// wake-up finds it cold.  The timer, when there is one, lives in the frame
// of awaitWithTimer(): an untimed wait, the usual one, spends no stack on it.
struct Await {
  TaskState* task;
  Event* event;
  std::atomic<int> outstanding;
  std::atomic<bool> timerFired{false};
  bool taskCancellable;
  SocketKeeper keeper;  // of the event's socket, for its post
  const std::atomic<bool>* cancelled;
  TimerEvent* timer;  // null for an untimed wait
  std::error_code postError;

  // The last event back wakes the task; nothing may touch `this` after that.
  void arrive() {
    TaskState* waiting = task;
    if (outstanding.fetch_sub(1, std::memory_order_acq_rel) == 1) waiting->wake();
  }

  // Runs on the worker once the task is off its stack.  The timer goes
  // first so the event's callback can always cancel it; a timer that fires
  // before the event is parked is caught by the check after posting.
  static void start(void* argument) {
    auto* self = static_cast<Await*>(argument);
    ChannelCore& core = self->task->core();
    // Where TaskHandle::cancel() finds the wait; a shielded one it leaves be.
    if (self->taskCancellable && !self->task->shielded()) self->task->setCurrentWait(self->event);
    if (self->timer != nullptr && core.post(*self->timer)) self->arrive();  // shut down: no timer
    // Without a timer the callback only wakes the task: the channel may
    // run it where the event completes (EventAccess::wakesTask()).
    if ((self->postError = core.post(*self->event, self->timer == nullptr, self->keeper))) {
      if (self->timer != nullptr) core.cancel(*self->timer);
      self->arrive();
      return;
    }
    // A timer, or the caller's cancel flag, may have gone off before the
    // event was parked, when cancelling it was not yet possible.
    // So may the task's own cancellation, before setCurrentWait() above.
    if ((self->timer != nullptr && self->timerFired.load()) ||
        (self->cancelled != nullptr && self->cancelled->load()) ||
        (self->taskCancellable && self->task->cancelPending()))
      core.cancel(*self->event);
  }

  // Suspends the task until the event (and the timer) are back; the wait's
  // result.
  [[gnu::always_inline]] std::error_code suspendUntilBack() {
    task->suspend(&Await::start, this);
    if (taskCancellable) task->setCurrentWait(nullptr);  // before `event` can go
    EventAccess::callback(*event) = nullptr;
    if (postError) return postError;
    if (timerFired.load() && event->error() == std::errc::operation_canceled) return makeAprError(APR_TIMEUP);
    return event->error();
  }
};

// A wait of at most `wait`, which is finite: the timer races the event.
// Kept out of awaitInTask() so that an untimed wait's frame stays small.
[[gnu::noinline]] std::error_code awaitWithTimer(TaskState* task, Event& event, Duration wait,
                                                 const std::atomic<bool>* cancelled, bool taskCancellable,
                                                 SocketKeeper keeper) {
  TimerEvent timer(wait);
  Await await{task, &event, {2}, {}, taskCancellable, keeper, cancelled, &timer, {}};
  EventAccess::callback(event) = [&await](Event&) {
    await.task->core().cancel(*await.timer);
    await.arrive();
  };
  EventAccess::callback(timer) = [&await](Event& fired) {
    if (!fired.error()) {
      await.timerFired.store(true);
      await.task->core().cancel(*await.event);
    }
    await.arrive();
  };
  return await.suspendUntilBack();
}

// awaitInTask() for `task`, the current one, and a timeout that is not
// zero: inlined into each caller, so that a socket call's registration
// and its wait share one frame.
[[gnu::always_inline]] inline void awaitInTaskFrame(TaskState* task, Event& event, Duration timeout,
                                                    std::error_code& result, const std::atomic<bool>* cancelled,
                                                    TaskCancel taskCancel, SocketKeeper keeper) {
  const bool taskCancellable = taskCancel == TaskCancel::honoured;
  if (taskCancellable && task->cancelPending()) {  // TaskHandle::cancel(): no more waits
    result = std::make_error_code(std::errc::operation_canceled);
    return;
  }
  // A this_task::DeadlineScope shortens the wait to its deadline, and a
  // wait that starts after it has passed fails at once: timed_out either way.
  Duration wait = timeout;
  if (taskCancellable) {
    if (const Deadline taskDeadline = task->deadline(); taskDeadline != kNoDeadline) {
      const Deadline now = Clock::now();
      if (now >= taskDeadline) {
        result = makeAprError(APR_TIMEUP);
        return;
      }
      wait = std::min(wait, Duration(taskDeadline - now));
    }
  }
  if (deadlineAfter(wait) != kNoDeadline) {
    result = awaitWithTimer(task, event, wait, cancelled, taskCancellable, keeper);
    return;
  }
  Await await{task, &event, {1}, {}, taskCancellable, keeper, cancelled, nullptr, {}};
  EventAccess::callback(event) = [&await](Event&) { await.arrive(); };
  result = await.suspendUntilBack();
}

}  // namespace

bool awaitFileInTask(Event& event, std::error_code& result) {
  TaskState* task = TaskState::current();
  if (task == nullptr || !task->core().completesFileOperations()) return false;
  return awaitInTask(event, kInfiniteTimeout, result);
}

namespace {

// The shutdown of the channel ends an interruptible wait listed there.
void releaseInterruptibleWait(ParkedTask& parked) noexcept { static_cast<InterruptibleWait&>(parked).end(); }

}  // namespace

std::error_code enterInterruptibleWait(InterruptibleWait& wait) noexcept {
  TaskState& task = *TaskState::current();
  if (task.cancelPending()) return std::make_error_code(std::errc::operation_canceled);
  wait.taskDeadline = task.deadline();
  wait.release = &releaseInterruptibleWait;
  if (!task.core().parkedTasks().add(wait)) return Errc::channel_shut_down;
  if (!task.shielded()) {
    task.setCurrentBlocking(&wait);
    // cancel() sets its flag before it looks for the wait: one of the two
    // sees the other.
    if (task.cancelPending()) wait.end();
  }
  return {};
}

void leaveInterruptibleWait(InterruptibleWait& wait) noexcept {
  TaskState& task = *TaskState::current();
  task.setCurrentBlocking(nullptr);          // waits out a cancel() ending it
  task.core().parkedTasks().remove(wait);  // waits out a shutdown's release() of it
}

bool yieldThroughShutdown() noexcept {
  TaskState* task = TaskState::current();
  if (task == nullptr || ChannelCore::currentWorkerChannel() != &task->core()) return false;
  task->yield();
  return true;
}

bool tryInTask(Event& event, std::error_code& result) {
  TaskState* task = TaskState::current();
  if (task == nullptr) return false;
  std::error_code ec;
  const AttemptResult attempt = task->core().tryOnce(event, ec);
  if (ec) {
    result = ec;
    return true;
  }
  if (!attempt.done) return false;
  result = attempt.error;
  return true;
}

bool fairnessYield(std::error_code& result) noexcept {
  TaskState* task = TaskState::current();
  if (task == nullptr || !task->countCallWithoutSuspending()) return false;
  if (task->core().isShutDown() || task->cancelPending()) {
    result = std::make_error_code(std::errc::operation_canceled);
    return true;
  }
  if (const Deadline deadline = task->deadline(); deadline != kNoDeadline && Clock::now() >= deadline) {
    result = makeAprError(APR_TIMEUP);
    return true;
  }
  task->yield();
  return false;
}

bool awaitInTask(Event& event, Duration timeout, std::error_code& result, const std::atomic<bool>* cancelled,
                 TaskCancel taskCancel, SocketKeeper keeper) {
  TaskState* task = TaskState::current();
  // A zero timeout is one attempt that never waits: the thread's own path
  // makes it.  Posted, the event would skip the attempt when an edge-
  // triggered poller has not yet reported data that has already arrived,
  // and the zero timer would cancel it: timed_out with data to read.
  if (task == nullptr || timeout == Duration::zero()) return false;
  awaitInTaskFrame(task, event, timeout, result, cancelled, taskCancel, keeper);
  return true;
}

bool awaitSocketInTask(Event& event, Duration timeout, std::error_code& result, WaitCancellation& cancellation,
                       std::uint64_t startedAt) noexcept {
  TaskState* task = TaskState::current();
  if (task == nullptr || timeout == Duration::zero()) return false;
  CancellableWait wait;
  wait.cancelTask = &ChannelCore::cancelWaitedEvent;
  wait.event = &event;
  wait.channel = &task->core();
  if (!cancellation.enterWait(wait, startedAt)) {
    result = std::make_error_code(std::errc::operation_canceled);
    return true;
  }
  awaitInTaskFrame(task, event, timeout, result, &wait.cancelled, TaskCancel::honoured, SocketKeeper::caller);
  cancellation.leaveWait(wait);
  // A cancel() racing the timer: the cancel() is what the caller asked for.
  if (wait.cancelled.load() && result == std::errc::timed_out)
    result = std::make_error_code(std::errc::operation_canceled);
  return true;
}

}  // namespace evchan::detail
