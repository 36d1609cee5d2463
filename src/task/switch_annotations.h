// Internal: telling ASan, TSan and valgrind about context switches, so the
// task suites run clean under them.  Compiles to nothing otherwise.
#ifndef EVCHAN_SRC_TASK_SWITCH_ANNOTATIONS_H
#define EVCHAN_SRC_TASK_SWITCH_ANNOTATIONS_H

#include <cstddef>

#include "task/fiber_context.h"

namespace evchan::detail {

/// The sanitizer state of one context.  Every implementation of
/// FiberContext holds one and calls, around each switch:
///   from.beforeSwitch(to, finishing); <switch>; self.afterSwitch();
class SwitchAnnotations {
 public:
  /// For a thread's own context: its stack is found from the thread.
  SwitchAnnotations() noexcept;
  /// For a fiber on `stack` (registered with valgrind until destroyed).
  explicit SwitchAnnotations(const StackSpan& stack) noexcept;
  ~SwitchAnnotations();
  SwitchAnnotations(const SwitchAnnotations&) = delete;
  SwitchAnnotations& operator=(const SwitchAnnotations&) = delete;

  /// Before leaving this context for `target`; `finishing`: this context
  /// will never run again.
  void beforeSwitch(SwitchAnnotations& target, bool finishing) noexcept;
  /// First thing after this context has been resumed.
  void afterSwitch() noexcept;

 private:
  const void* stackBottom_ = nullptr;
  std::size_t stackSize_ = 0;
  void* fakeStack_ = nullptr;     // ASan's fake stack of this context while it is suspended
  void* tsanFiber_ = nullptr;     // TSan's fiber for this context
  bool ownsTsanFiber_ = false;
  unsigned valgrindStackId_ = 0;  // VALGRIND_STACK_REGISTER's id, 0 when none
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_SWITCH_ANNOTATIONS_H
