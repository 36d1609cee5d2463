// FiberContext on Boost.Context's fcontext (make_fcontext/jump_fcontext).
#include <boost/context/detail/fcontext.hpp>

#include "task/fiber_context.h"
#include "task/switch_annotations.h"

namespace evchan::detail {
namespace {

namespace fctx = boost::context::detail;

class BoostFiberContext final : public FiberContext {
 public:
  BoostFiberContext() = default;  // the thread's own context
  BoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument)
      : annotations_(stack), entry_(entry), argument_(argument) {
    char* top = static_cast<char*>(stack.base) + stack.size;
    context_ = fctx::make_fcontext(top, stack.size, &BoostFiberContext::trampoline);
  }

  void switchTo(FiberContext& target) noexcept override { jump(static_cast<BoostFiberContext&>(target), false); }
  void exitTo(FiberContext& target) noexcept override { jump(static_cast<BoostFiberContext&>(target), true); }

 private:
  // What a jump carries: the side that resumes stores the jumper's saved
  // fcontext (known only once it has left) into the jumper's object.
  struct Hop {
    BoostFiberContext* from;
    BoostFiberContext* to;
  };

  void jump(BoostFiberContext& target, bool finishing) noexcept {
    annotations_.beforeSwitch(target.annotations_, finishing);
    Hop hop{this, &target};  // lives on this stack, suspended until we are resumed
    const fctx::transfer_t back = fctx::jump_fcontext(target.context_, &hop);
    land(back);
    annotations_.afterSwitch();
  }

  static BoostFiberContext* land(const fctx::transfer_t& arrival) noexcept {
    const Hop* hop = static_cast<const Hop*>(arrival.data);
    hop->from->context_ = arrival.fctx;
    return hop->to;
  }

  [[noreturn]] static void trampoline(fctx::transfer_t arrival) {
    BoostFiberContext* self = land(arrival);
    self->annotations_.afterSwitch();
    self->entry_(self->argument_);
    __builtin_unreachable();  // entries end with exitTo()
  }

  SwitchAnnotations annotations_;
  fctx::fcontext_t context_ = nullptr;
  FiberEntry entry_ = nullptr;
  void* argument_ = nullptr;
};

}  // namespace

std::unique_ptr<FiberContext> makeBoostThreadContext() { return std::make_unique<BoostFiberContext>(); }

std::unique_ptr<FiberContext> makeBoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) {
  if (stack.base == nullptr || stack.size < 4096) return nullptr;
  return std::make_unique<BoostFiberContext>(stack, entry, argument);
}

}  // namespace evchan::detail
