// Internal: the context switch under tasks, behind one small interface
// with two implementations (Boost.Context's fcontext and POSIX ucontext).
#ifndef EVCHAN_SRC_TASK_FIBER_CONTEXT_H
#define EVCHAN_SRC_TASK_FIBER_CONTEXT_H

#include <cstddef>
#include <memory>

namespace evchan::detail {

enum class ContextKind {
  BoostContext,  ///< fcontext: a few ns a switch, no syscall
  Ucontext,      ///< the seed's choice; glibc's swapcontext makes a sigprocmask syscall
};

/// "boost" or "ucontext".
const char* contextKindName(ContextKind kind) noexcept;
/// What configure chose (--with-context); tasks use it.
ContextKind defaultContextKind() noexcept;

/// The usable part of a stack: [base, base + size), growing down from the top.
struct StackSpan {
  void* base = nullptr;
  std::size_t size = 0;
};

/// An execution context: a thread's own stack, or a fiber on a StackSpan.
/// Contexts of one kind switch only to contexts of the same kind.
class FiberContext {
 public:
  virtual ~FiberContext() = default;

  /// Suspends the calling context, which must be `*this`, and resumes
  /// `target`; returns when some context switches back to this one,
  /// possibly on another thread.  Not thread-safe: a context runs on one
  /// thread at a time.
  virtual void switchTo(FiberContext& target) noexcept = 0;

  /// Like switchTo(), for a fiber that is finished and will never be
  /// resumed: sanitizers release what they kept for its stack.
  virtual void exitTo(FiberContext& target) noexcept = 0;
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

#endif  // EVCHAN_SRC_TASK_FIBER_CONTEXT_H
