// SPDX-License-Identifier: Apache-2.0
// Choosing a FiberContext implementation.
#include "task/context/fiber_context.h"

namespace evchan::detail {

const char* contextKindName(ContextKind kind) noexcept {
  return kind == ContextKind::BoostContext ? "boost" : "ucontext";
}

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

std::unique_ptr<FiberContext> makeFiberContext(ContextKind kind, const StackSpan& stack, FiberEntry entry,
                                               void* argument) {
  return kind == ContextKind::BoostContext ? makeBoostFiberContext(stack, entry, argument)
                                           : makeUcontextFiberContext(stack, entry, argument);
}

}  // namespace evchan::detail
