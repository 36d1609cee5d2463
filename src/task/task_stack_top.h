// SPDX-License-Identifier: Apache-2.0
// Internal: what a task needs for exactly as long as it has a stack, kept
// at the top of that stack.
#ifndef EVCHAN_SRC_TASK_TASK_STACK_TOP_H
#define EVCHAN_SRC_TASK_TASK_STACK_TOP_H

#include "poller/event_access.h"
#include "posix/stack_span.h"
#include "task/context/exception_state.h"
#include "task/context/fiber_context.h"

namespace evchan::detail {

class TaskState;

/// How a task travels through the channel's run queue.
class TaskResumeEvent final : public RunnableEvent {
 public:
  explicit TaskResumeEvent(TaskState& task) noexcept : task_(task) {}
  void run() noexcept override;

 private:
  TaskState& task_;
};

/// A task's entry in the run queue and its fiber context: both are needed
/// from the spawn until the task's last switch, exactly as long as it has
/// a stack.  Built at the top of the stack itself, in the page the task's
/// first frames keep resident anyway, so that a parked task spends no
/// heap on them (about 200 bytes with Boost.Context); on the heap where
/// the platform's fiber allocates its own stack (Windows: a Stack with no
/// base).
class TaskStackTop {
 public:
  /// For `task`, whose fiber will run entry(argument) on what `stack`
  /// leaves below this object.  Null when the stack is too small or
  /// there is no memory.
  static TaskStackTop* make(TaskState& task, const StackSpan& stack, FiberEntry entry, void* argument) noexcept;
  /// Ends it (and the fiber context); the stack may be reused afterwards.
  /// Not while the fiber runs or the event is queued.
  static void destroy(TaskStackTop* top) noexcept;

  TaskStackTop(const TaskStackTop&) = delete;
  TaskStackTop& operator=(const TaskStackTop&) = delete;

  TaskResumeEvent& resume() noexcept { return resume_; }
  FiberContext& fiber() noexcept { return *fiber_; }
  /// The task's exceptions in flight while it is off its worker.
  ExceptionState& exceptions() noexcept { return exceptions_; }

 private:
  explicit TaskStackTop(TaskState& task) noexcept : resume_(task) {}
  ~TaskStackTop() = default;

  TaskResumeEvent resume_;
  FiberContext* fiber_ = nullptr;
  ExceptionState exceptions_;
  bool onHeap_ = false;  // this object and fiber_ were allocated, not built on the stack
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_TASK_STACK_TOP_H
