// SPDX-License-Identifier: Apache-2.0
// FiberContext on POSIX ucontext (getcontext/makecontext/swapcontext), the
// seed's choice.  glibc's swapcontext saves and restores the signal mask,
// a syscall per switch, which is why Boost.Context is the default.
#include <ucontext.h>

#include <cstdint>
#include <new>

#include "task/context/fiber_context.h"
#include "task/context/switch_annotations.h"

namespace evchan::detail {
namespace {

class UcontextFiberContext final : public FiberContext {
 public:
  UcontextFiberContext() noexcept : FiberContext(ContextKind::Ucontext) {}  // the thread's own context
  UcontextFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) noexcept
      : FiberContext(ContextKind::Ucontext), annotations_(stack), entry_(entry), argument_(argument) {}

  bool prepare(const StackSpan& stack) noexcept {
    if (getcontext(&context_) != 0) return false;
    context_.uc_stack.ss_sp = stack.base;
    context_.uc_stack.ss_size = stack.size;
    context_.uc_link = nullptr;  // entries never return
    // makecontext passes int arguments only: split the pointer in two.
    const auto address = reinterpret_cast<std::uintptr_t>(this);
    makecontext(&context_, reinterpret_cast<void (*)()>(&UcontextFiberContext::trampoline), 2,
                static_cast<unsigned>(address >> 32), static_cast<unsigned>(address & 0xffffffffu));
    return true;
  }

  void jump(FiberContext& target, bool finishing) noexcept override {
    auto& other = static_cast<UcontextFiberContext&>(target);
    annotations_.beforeSwitch(other.annotations_, finishing);
    swapcontext(&context_, &other.context_);
    annotations_.afterSwitch();
  }

 private:
  [[noreturn]] static void trampoline(unsigned high, unsigned low) {
    auto* self = reinterpret_cast<UcontextFiberContext*>((static_cast<std::uintptr_t>(high) << 32) | low);
    self->annotations_.afterSwitch();
    self->entry_(self->argument_);
    __builtin_unreachable();  // entries end with exitTo()
  }

  SwitchAnnotations annotations_;
  ucontext_t context_{};
  FiberEntry entry_ = nullptr;
  void* argument_ = nullptr;
};

}  // namespace

std::unique_ptr<FiberContext> makeUcontextThreadContext() { return std::make_unique<UcontextFiberContext>(); }

std::unique_ptr<FiberContext> makeUcontextFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) {
  if (stack.base == nullptr || stack.size < 4096) return nullptr;
  auto context = std::make_unique<UcontextFiberContext>(stack, entry, argument);
  if (!context->prepare(stack)) return nullptr;
  return context;
}

FiberContext* makeUcontextFiberContextOnStack(StackSpan stack, FiberEntry entry, void* argument) noexcept {
  void* place = carveStackTop(stack, sizeof(UcontextFiberContext), alignof(UcontextFiberContext), 4096);
  if (place == nullptr) return nullptr;
  auto* context = new (place) UcontextFiberContext(stack, entry, argument);
  if (context->prepare(stack)) return context;
  destroyFiberContextOnStack(context);
  return nullptr;
}

}  // namespace evchan::detail
