// SPDX-License-Identifier: Apache-2.0
// FiberContext on Boost.Context's fcontext (make_fcontext/jump_fcontext):
// construction and the first entry; the switch itself is inline in
// task/boost_fiber_context.h.
#include <new>

#include "task/context/fiber_context.h"

namespace evchan::detail {

BoostFiberContext::BoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) noexcept
    : FiberContext(ContextKind::BoostContext), annotations_(stack), entry_(entry), argument_(argument) {
  char* top = static_cast<char*>(stack.base) + stack.size;
  context_ = boost::context::detail::make_fcontext(top, stack.size, &BoostFiberContext::trampoline);
}

void BoostFiberContext::trampoline(boost::context::detail::transfer_t arrival) {
  BoostFiberContext* self = land(arrival);
  self->annotations_.afterSwitch();
  self->entry_(self->argument_);
  __builtin_unreachable();  // entries end with exitTo()
}

std::unique_ptr<FiberContext> makeBoostThreadContext() { return std::make_unique<BoostFiberContext>(); }

std::unique_ptr<FiberContext> makeBoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) {
  if (stack.base == nullptr || stack.size < 4096) return nullptr;
  return std::make_unique<BoostFiberContext>(stack, entry, argument);
}

FiberContext* makeBoostFiberContextOnStack(StackSpan stack, FiberEntry entry, void* argument) noexcept {
  void* place = carveStackTop(stack, sizeof(BoostFiberContext), alignof(BoostFiberContext), 4096);
  if (place == nullptr) return nullptr;
  return new (place) BoostFiberContext(stack, entry, argument);
}

}  // namespace evchan::detail
