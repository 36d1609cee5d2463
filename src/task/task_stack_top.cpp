// SPDX-License-Identifier: Apache-2.0
// TaskStackTop: a task's run-queue entry and fiber context, at the top of
// its stack.
#include "task/task_stack_top.h"

#include <memory>
#include <new>

namespace evchan::detail {

TaskStackTop* TaskStackTop::make(TaskState& task, const StackSpan& stack, FiberEntry entry, void* argument) noexcept {
  if (stack.base != nullptr) {
    StackSpan below = stack;
    colourStackTop(below);
    void* place = carveStackTop(below, sizeof(TaskStackTop), alignof(TaskStackTop), 0);
    if (place == nullptr) return nullptr;
    auto* top = new (place) TaskStackTop(task);
    top->fiber_ = makeFiberContextOnStack(defaultContextKind(), below, entry, argument);
    if (top->fiber_ != nullptr) return top;
    top->~TaskStackTop();
    return nullptr;
  }
  // A Win32 fiber's stack: Windows allocates it with the fiber.
  auto* top = new (std::nothrow) TaskStackTop(task);
  if (top == nullptr) return nullptr;
  top->onHeap_ = true;
  try {
    top->fiber_ = makeFiberContext(defaultContextKind(), stack, entry, argument).release();
  } catch (const std::bad_alloc&) {
  }
  if (top->fiber_ != nullptr) return top;
  delete top;
  return nullptr;
}

void TaskStackTop::destroy(TaskStackTop* top) noexcept {
  if (top->onHeap_) {
    delete top->fiber_;
    delete top;
    return;
  }
  destroyFiberContextOnStack(top->fiber_);
  top->~TaskStackTop();
}

}  // namespace evchan::detail
