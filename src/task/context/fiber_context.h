// SPDX-License-Identifier: Apache-2.0
// Internal: the context switch under tasks, behind one small interface
// with two implementations (Boost.Context's fcontext and POSIX ucontext).
#ifndef EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H
#define EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H

#include <cstddef>
#include <memory>

#include "posix/stack_span.h"

namespace evchan::detail {

enum class ContextKind {
  BoostContext,  ///< fcontext: a few ns a switch, no syscall
  Ucontext,      ///< the seed's choice; glibc's swapcontext makes a sigprocmask syscall
};

/// "boost" or "ucontext".
const char* contextKindName(ContextKind kind) noexcept;
/// What configure chose (--with-context); tasks use it.
ContextKind defaultContextKind() noexcept;

/// An execution context: a thread's own stack, or a fiber on a StackSpan.
/// Contexts of one kind switch only to contexts of the same kind.
///
/// switchTo() is inline and, for Boost.Context, calls jump_fcontext right
/// at the call site: every function a resumed context returns from after
/// a switch costs a mispredicted return (the CPU's return-stack buffer
/// still holds the other context's calls), about 14 ns each here, so an
/// out-of-line switch would triple the cost of the switch itself.
class FiberContext {
 public:
  virtual ~FiberContext() = default;
  FiberContext(const FiberContext&) = delete;
  FiberContext& operator=(const FiberContext&) = delete;

  ContextKind kind() const noexcept { return kind_; }

  /// Suspends the calling context, which must be `*this`, and resumes
  /// `target`; returns when some context switches back to this one,
  /// possibly on another thread.  Not thread-safe: a context runs on one
  /// thread at a time.
  void switchTo(FiberContext& target) noexcept;

  /// Like switchTo(), for a fiber that is finished and will never be
  /// resumed: sanitizers release what they kept for its stack.
  void exitTo(FiberContext& target) noexcept;

 protected:
  explicit FiberContext(ContextKind kind) noexcept : kind_(kind) {}
  /// The switch of kinds that are not inlined here.
  virtual void jump(FiberContext& target, bool finishing) noexcept = 0;

 private:
  const ContextKind kind_;
};

using FiberEntry = void (*)(void* argument);

/// The calling thread's own context, to switch from into fibers and back.
std::unique_ptr<FiberContext> makeThreadContext(ContextKind kind);

/// A fiber that runs entry(argument) on `stack` at the first switch to it.
/// `entry` must not return: it ends with exitTo().  Null when the stack
/// is too small for the implementation's bookkeeping.
std::unique_ptr<FiberContext> makeFiberContext(ContextKind kind, const StackSpan& stack, FiberEntry entry,
                                               void* argument);

/// The two implementations (src/posix/*_fiber_context.cpp).
std::unique_ptr<FiberContext> makeBoostThreadContext();
std::unique_ptr<FiberContext> makeBoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument);
std::unique_ptr<FiberContext> makeUcontextThreadContext();
std::unique_ptr<FiberContext> makeUcontextFiberContext(const StackSpan& stack, FiberEntry entry, void* argument);

}  // namespace evchan::detail

#include "task/context/boost_fiber_context.h"

namespace evchan::detail {

inline void FiberContext::switchTo(FiberContext& target) noexcept {
  if (kind_ == ContextKind::BoostContext) {
    static_cast<BoostFiberContext*>(this)->jumpInline(static_cast<BoostFiberContext&>(target), false);
  } else {
    jump(target, false);
  }
}

inline void FiberContext::exitTo(FiberContext& target) noexcept {
  if (kind_ == ContextKind::BoostContext) {
    static_cast<BoostFiberContext*>(this)->jumpInline(static_cast<BoostFiberContext&>(target), true);
  } else {
    jump(target, true);
  }
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H
