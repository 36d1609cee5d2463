// SPDX-License-Identifier: Apache-2.0
// Internal: one task: its fiber, stack, state machine and join state.
#ifndef EVCHAN_SRC_TASK_TASK_STATE_H
#define EVCHAN_SRC_TASK_TASK_STATE_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <evchan/event.h>
#include <evchan/task.h>
#include <evchan/timer_event.h>

#include "channel/parked_tasks.h"
#include "poller/deadline.h"
#include "poller/event_access.h"
#include "task/context/fiber_context.h"
#include "task/task_stack_top.h"
#include "posix/stack_pool.h"

namespace evchan::detail {

class ChannelCore;
struct ChannelFront;
struct InterruptibleWait;
class TaskState;

/// A task suspended in join(), on its own stack.  Without a deadline it
/// parks on no event: the joined task's end, the waiter's
/// TaskHandle::cancel() and its channel's shutdown (which finds it as a
/// ParkedTask) each try to claim() the wait, and the first one wakes the
/// waiter.  With a deadline (this_task::DeadlineScope) it parks on `timer`,
/// posted to its own channel: the joined task's end sets `finished` and
/// cancels the timer, and so do the deadline, a cancel() and the shutdown.
/// Either way the waiter resumes on its own channel's workers, whichever
/// channel the joined task runs on.
struct TaskJoiner : ParkedTask {
  enum Outcome : int { kWaiting, kFinished, kCancelled };
  explicit TaskJoiner(TaskState& task) noexcept : waiter(task) {}
  /// Ends a wait without a timer as `outcome`, waking the waiter; false
  /// when another end came first (it woke the waiter).  Takes the lock of
  /// the waiter's channel's ParkedTasks (ParkedTasks::lockForWake()).
  bool claim(Outcome outcome) noexcept;
  /// claim() for the shutdown's release(), which holds that lock.
  bool claimLocked(Outcome outcome) noexcept;

  TaskState& waiter;
  std::atomic<int> outcome{kWaiting};
  TimerEvent* timer = nullptr;        // only for a wait with a deadline
  std::atomic<bool> finished{false};  // with `timer`: set under the joined task's mutex_
  TaskJoiner* next = nullptr;
};

/// A plain thread suspended in join(): it waits on a condition variable
/// of its own, on its stack, so that tasks do not carry one for a kind
/// of join most of them never see.
struct ThreadJoiner {
  std::condition_variable finished;  // notified under the joined task's mutex_
  bool done = false;
  ThreadJoiner* next = nullptr;
};

/// A task.  States: Ready (queued) -> Running -> Suspending (switching out)
/// -> Suspended -> Ready ..., or Running -> Done.  wake() may come while
/// the task is still Suspending (its event completed at once): the worker
/// then puts it straight back in the queue instead of parking it.
///
/// A parked task's memory is its stack's top page and this object (see
/// docs/tasks.md); what it needs only while it has a stack (its run-queue
/// entry and its fiber context) lives in that page (TaskStackTop).
class TaskState {
 public:
  /// Starts a task; `handle` receives the one TaskHandle every copy the
  /// user gets derives from (see lastHandleGone()).
  static void spawn(const std::shared_ptr<ChannelFront>& front, std::unique_ptr<TaskFunction> function,
                    std::size_t stackSize, TaskHandle& handle, std::error_code& ec);
  ~TaskState();

  TaskId id() const noexcept { return id_; }
  /// The stack the task runs on (bench/parked_tasks_bench counts the pages
  /// a parked task's stack keeps resident).
  const Stack& stack() const noexcept { return stack_; }
  ChannelCore& core() const noexcept { return *core_; }
  ChannelFront& front() const noexcept { return *front_; }

  /// The running task of this thread, or null.  Not inlined: a task that
  /// resumes on another thread must read that thread's slot.
  static TaskState* current() noexcept;

  /// Worker side: switches into the task; returns when it suspends or ends.
  void runOnWorker() noexcept;

  /// Task side: leaves the worker.  `afterSwitch(argument)` runs on the
  /// worker once the task is off its stack (it may wake the task at once).
  void suspend(void (*afterSwitch)(void*) = nullptr, void* argument = nullptr) noexcept;
  /// Task side: suspends and is re-queued at once, behind the tasks that
  /// are ready (the shared run queue's tail, not this worker's local batch).
  void yield() noexcept;
  /// Task side: counts a call that may complete without suspending (a
  /// socket read or write); true when kCallsBeforeYield such calls in a
  /// row have run since the task last suspended: this one is to yield
  /// first (see fairnessYield()).  Every suspension starts the count
  /// again; until then it stays past the limit (each call is to yield).
  bool countCallWithoutSuspending() noexcept {
    if (callsWithoutSuspending_ <= kCallsBeforeYield) ++callsWithoutSuspending_;
    return callsWithoutSuspending_ > kCallsBeforeYield;
  }
  static constexpr int kCallsBeforeYield = 64;
  /// Makes a suspended (or suspending) task ready.  Once per suspension.
  void wake() noexcept;

  bool done() const noexcept;
  /// Waits for the end and rethrows the task's exception.
  void join();

  /// TaskHandle::cancel(): records the request and ends the wait the task
  /// is parked in, unless shielded.  False when the task has ended.
  bool cancel() noexcept;
  /// Task side: whether the next wait must end in operation_canceled.
  bool cancelPending() const noexcept {
    // Sequentially consistent: read after publishing the current wait
    // (see cancelling_ below).
    return shieldDepth_ == 0 && cancelRequested_.load(std::memory_order_seq_cst);
  }
  bool cancelRequested() const noexcept { return cancelRequested_.load(std::memory_order_acquire); }
  /// Task side, while its exception propagates: the task's TaskGroup
  /// reports it, so its handles never do.
  void leaveExceptionReportToGroup() noexcept;
  /// Task side: CancellationShield's count, only ever touched by the task.
  /// Task side: the deadline of this_task::DeadlineScope (kNoDeadline
  /// when none); waits that honour cancellation end there, unshielded.
  Deadline deadline() const noexcept { return shieldDepth_ == 0 ? deadline_ : kNoDeadline; }
  Deadline setDeadline(Deadline deadline) noexcept { return std::exchange(deadline_, deadline); }
  void enterShield() noexcept { ++shieldDepth_; }
  void leaveShield() noexcept { --shieldDepth_; }
  bool shielded() const noexcept { return shieldDepth_ != 0; }
  /// The posted event the task is parked on, which cancel() cancels (set
  /// on the worker before it is posted, cleared by the task once resumed);
  /// null while it runs.  Clearing it waits for a cancel() that is using
  /// the event, so the event may go once it returns.
  void setCurrentWait(Event* event) noexcept;
  /// The same for a join() parked on no event, which cancel() claims.
  void setCurrentJoin(TaskJoiner* joiner) noexcept;
  /// The same for a wait that holds the worker (task/await.h), which
  /// cancel() ends.
  void setCurrentBlocking(InterruptibleWait* wait) noexcept;

  /// The slot of a TaskLocal (by its process-unique key) in this task.
  void* localSlot(std::uint64_t key, void* (*make)(), void (*destroy)(void*));

 private:
  enum State : int { kReady, kRunning, kSuspending, kWokenWhileSuspending, kSuspended, kDone };

  struct Private {};  // lets make_shared reach the constructor, nobody else

 public:
  TaskState(Private, std::shared_ptr<ChannelFront> front, std::unique_ptr<TaskFunction> function);

 private:
  static void entry(void* argument);
  void schedule() noexcept;
  void finish() noexcept;
  void destroyLocals() noexcept;
  /// join() from task `caller`: empty once this task has ended; why the
  /// caller's wait ended first otherwise (operation_canceled: shutdown or
  /// cancel; timed_out: its deadline).
  std::error_code joinInTask(TaskState& caller);
  /// joinInTask() with a deadline: parked on a timer.
  std::error_code joinInTaskUntil(TaskState& caller);
  /// joinInTask()'s work on the worker, once the caller is off its stack.
  static void parkJoiner(void* argument) noexcept;
  /// Takes `joiner` off joiners_ if it is there; mutex_ held.
  void unlinkJoiner(TaskJoiner& joiner) noexcept;
  /// The TaskHandles' shared count reached zero.
  void lastHandleGone() noexcept;
  /// The handles' count block, in handleCount_ (HandleCountAllocator in
  /// task_state.cpp), is destroyed: drops the handles' reference.
  void handleCountGone() noexcept;
  template <class T>
  friend struct HandleCountAllocator;
  /// Whether the task's exception goes to the unhandled-exception handler
  /// now (it is then marked reported); mutex_ held, task done.
  bool takeUnreportedException() noexcept;

  const TaskId id_;
  std::shared_ptr<ChannelFront> front_;
  ChannelCore* const core_;  // front_->core, which front_ keeps alive
  std::unique_ptr<TaskFunction> function_;
  StackPool* pool_ = nullptr;
  Stack stack_;
  TaskStackTop* top_ = nullptr;  // the run-queue entry and the fiber, on stack_ until the task ends
  FiberContext* worker_ = nullptr;  // the context to return to, set at each resume
  std::atomic<int> state_{kReady};
  bool yielding_ = false;  // set by yield(), read by runOnWorker() after the switch
  // Task side: the calls counted by countCallWithoutSuspending() since the
  // task last suspended.
  std::uint8_t callsWithoutSuspending_ = 0;

  // Under mutex_: the join state.
  std::atomic<bool> done_{false};   // set under mutex_, read without it
  bool handlesGone_ = false;        // no TaskHandle refers to the task any more
  bool exceptionObserved_ = false;  // a join() rethrew exception_
  bool exceptionReported_ = false;  // exception_ went to the unhandled-exception handler

  // Cancellation.  cancel() sets the flag, then cancels currentWait_ (or
  // claims currentJoin_, or ends currentBlocking_); a wait sets its pointer
  // before posting its event (or blocking) and checks the flag after, so
  // one of the two always catches the other (both pairs of a store and a
  // load are sequentially consistent).  The waits publish and clear the
  // pointers without a lock: cancel() raises `cancelling_` (under mutex_,
  // which serialises the cancel() calls) before it reads them, and a clear
  // that then sees it raised takes mutex_ to wait until cancel() is done
  // with the event, joiner or blocking wait.
  // (The two flags beside the join state's: the task's size stays
  // within the malloc bin that keeps a parked task at 4.5 KiB.)
  std::atomic<bool> cancelRequested_{false};
  std::atomic<bool> cancelling_{false};
  int shieldDepth_ = 0;              // task side only
  Deadline deadline_ = kNoDeadline;  // task side only, like shieldDepth_
  std::atomic<Event*> currentWait_{nullptr};
  std::atomic<TaskJoiner*> currentJoin_{nullptr};
  std::atomic<InterruptibleWait*> currentBlocking_{nullptr};

  void (*afterSwitch_)(void*) = nullptr;
  void* afterSwitchArgument_ = nullptr;
  std::exception_ptr exception_;
  std::shared_ptr<TaskState> self_;  // alive while scheduled or running
  // The handles' reference, and the storage of the count they share: a
  // TaskHandle is a shared_ptr whose control block lives here rather than
  // in an allocation of its own; it drops handlesRef_ once destroyed.
  std::shared_ptr<TaskState> handlesRef_;
  static constexpr std::size_t kHandleCountBytes = 32;  // a vtable pointer, two counts, the pointer, the allocator
  alignas(void*) unsigned char handleCount_[kHandleCountBytes];

  // Guards the join state and currentWait_.  Nests outside every channel's
  // lock: cancel() cancels the task's wait, finish() its joiners' timers,
  // while holding it.
  mutable std::mutex mutex_;
  TaskJoiner* joiners_ = nullptr;          // tasks suspended in join()
  ThreadJoiner* threadJoiners_ = nullptr;  // plain threads in join()

  // TaskLocal slots, made by the first one the task uses.
  using Locals = std::vector<std::pair<std::uint64_t, std::pair<void*, void (*)(void*)>>>;
  std::unique_ptr<Locals> locals_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_TASK_STATE_H
