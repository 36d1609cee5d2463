// SPDX-License-Identifier: Apache-2.0
// Internal: the context switch under tasks, behind one small interface
// with three implementations: Boost.Context's fcontext and POSIX ucontext
// in the native POSIX layer, Win32 fibers on Windows.
#ifndef EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H
#define EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H

#include <cstddef>
#include <memory>

#include "posix/stack_span.h"

namespace evchan::detail {

enum class ContextKind {
  BoostContext,  ///< fcontext: a few ns a switch, no syscall
  Ucontext,      ///< the seed's choice; glibc's swapcontext makes a sigprocmask syscall
  Win32Fiber,    ///< Windows: CreateFiberEx/SwitchToFiber, the only kind there
};

/// "boost", "ucontext" or "win32-fiber".
const char* contextKindName(ContextKind kind) noexcept;
/// What configure chose (--with-context); tasks use it.  Win32Fiber on
/// Windows.
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

/// The calling thread's own context of defaultContextKind(), made by its
/// first call on the thread and destroyed when the thread exits (how is
/// the platform's: a thread_local on POSIX; on Windows a fiber-local
/// slot's callback, see win32_fiber_context.cpp).  Not to be called from
/// a fiber: it is the thread's own.
FiberContext& threadContext();

/// A fiber that runs entry(argument) on `stack` at the first switch to it.
/// `entry` must not return: it ends with exitTo().  Null when the stack
/// is too small for the implementation's bookkeeping.  A Win32 fiber
/// allocates its own stack (CreateFiberEx): it takes `stack.size` as the
/// size to reserve and a null `stack.base` (what the Windows StackPool
/// hands out), and is null when Windows refuses the fiber.
///
/// The thread's own context (makeThreadContext()) must be destroyed on its
/// thread, after every fiber it ran has left it; a fiber may be destroyed
/// on any thread, never while it runs.
std::unique_ptr<FiberContext> makeFiberContext(ContextKind kind, const StackSpan& stack, FiberEntry entry,
                                               void* argument);

/// makeFiberContext() without an allocation: the context object is built
/// at the top of `stack` and the fiber runs below it.  Destroy it with
/// destroyFiberContextOnStack() before the stack is used again.  Null when
/// the stack is too small, and where a fiber cannot share its stack (a
/// Win32 fiber allocates its own: `stack.base` is null there).
FiberContext* makeFiberContextOnStack(ContextKind kind, StackSpan stack, FiberEntry entry, void* argument) noexcept;
inline void destroyFiberContextOnStack(FiberContext* context) noexcept { context->~FiberContext(); }

/// The two implementations of the native POSIX layer
/// (src/task/context/{boost,ucontext}_fiber_context.cpp).  On Windows
/// makeThreadContext() and makeFiberContext() are defined by
/// src/task/context/win32_fiber_context.cpp instead.
std::unique_ptr<FiberContext> makeBoostThreadContext();
std::unique_ptr<FiberContext> makeBoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument);
FiberContext* makeBoostFiberContextOnStack(StackSpan stack, FiberEntry entry, void* argument) noexcept;
std::unique_ptr<FiberContext> makeUcontextThreadContext();
std::unique_ptr<FiberContext> makeUcontextFiberContext(const StackSpan& stack, FiberEntry entry, void* argument);
FiberContext* makeUcontextFiberContextOnStack(StackSpan stack, FiberEntry entry, void* argument) noexcept;

}  // namespace evchan::detail

// The switch.  The one #if of the context layer: which implementation the
// build has decides what may be inlined here, and Windows has no Boost.
#if defined(_WIN32)

namespace evchan::detail {

// SwitchToFiber is out of line anyway (kernel32): one kind, one call.
inline void FiberContext::switchTo(FiberContext& target) noexcept { jump(target, false); }
inline void FiberContext::exitTo(FiberContext& target) noexcept { jump(target, true); }

}  // namespace evchan::detail

#else

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

#endif  // _WIN32

#endif  // EVCHAN_SRC_TASK_CONTEXT_FIBER_CONTEXT_H
