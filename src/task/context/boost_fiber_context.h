// SPDX-License-Identifier: Apache-2.0
// Internal: FiberContext on Boost.Context's fcontext, defined in a header
// so that its switch inlines into the caller (see task/fiber_context.h).
// Included by task/fiber_context.h; the trampoline and the constructors
// are in src/task/context/boost_fiber_context.cpp.
#ifndef EVCHAN_SRC_TASK_CONTEXT_BOOST_FIBER_CONTEXT_H
#define EVCHAN_SRC_TASK_CONTEXT_BOOST_FIBER_CONTEXT_H

#include <boost/context/detail/fcontext.hpp>

#include "task/context/fiber_context.h"
#include "task/context/switch_annotations.h"

namespace evchan::detail {

class BoostFiberContext final : public FiberContext {
 public:
  BoostFiberContext() noexcept : FiberContext(ContextKind::BoostContext) {}  // the thread's own context
  BoostFiberContext(const StackSpan& stack, FiberEntry entry, void* argument) noexcept;

  [[gnu::always_inline]] void jumpInline(BoostFiberContext& target, bool finishing) noexcept {
    annotations_.beforeSwitch(target.annotations_, finishing);
    Hop hop{this, &target};  // lives on this stack, suspended until we are resumed
    land(boost::context::detail::jump_fcontext(target.context_, &hop));
    annotations_.afterSwitch();
  }

 protected:
  void jump(FiberContext& target, bool finishing) noexcept override {
    jumpInline(static_cast<BoostFiberContext&>(target), finishing);
  }

 private:
  // What a jump carries: the side that resumes stores the jumper's saved
  // fcontext (known only once it has left) into the jumper's object.
  struct Hop {
    BoostFiberContext* from;
    BoostFiberContext* to;
  };

  static BoostFiberContext* land(const boost::context::detail::transfer_t& arrival) noexcept {
    const Hop* hop = static_cast<const Hop*>(arrival.data);
    hop->from->context_ = arrival.fctx;
    return hop->to;
  }

  [[noreturn]] static void trampoline(boost::context::detail::transfer_t arrival);

  SwitchAnnotations annotations_;
  boost::context::detail::fcontext_t context_ = nullptr;
  FiberEntry entry_ = nullptr;
  void* argument_ = nullptr;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_CONTEXT_BOOST_FIBER_CONTEXT_H
