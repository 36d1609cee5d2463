// SPDX-License-Identifier: Apache-2.0
// Choosing a FiberContext implementation (the native POSIX layer's two;
// Windows has src/task/context/win32_fiber_context.cpp instead).
#include "task/context/fiber_context.h"

namespace evchan::detail {

ContextKind defaultContextKind() noexcept {
#ifdef EVCHAN_DEFAULT_CONTEXT_UCONTEXT
  return ContextKind::Ucontext;
#else
  return ContextKind::BoostContext;
#endif
}

std::unique_ptr<FiberContext> makeThreadContext(ContextKind kind) {
  return kind == ContextKind::BoostContext ? makeBoostThreadContext() : makeUcontextThreadContext();
}

FiberContext& threadContext() {
  static thread_local std::unique_ptr<FiberContext> context;
  if (!context) context = makeThreadContext(defaultContextKind());
  return *context;
}

std::unique_ptr<FiberContext> makeFiberContext(ContextKind kind, const StackSpan& stack, FiberEntry entry,
                                               void* argument) {
  return kind == ContextKind::BoostContext ? makeBoostFiberContext(stack, entry, argument)
                                           : makeUcontextFiberContext(stack, entry, argument);
}

FiberContext* makeFiberContextOnStack(ContextKind kind, StackSpan stack, FiberEntry entry, void* argument) noexcept {
  return kind == ContextKind::BoostContext ? makeBoostFiberContextOnStack(stack, entry, argument)
                                           : makeUcontextFiberContextOnStack(stack, entry, argument);
}

}  // namespace evchan::detail
