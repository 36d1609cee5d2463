// SPDX-License-Identifier: Apache-2.0
// FiberContext on Windows fibers: a worker thread becomes a fiber once
// (ConvertThreadToFiberEx), for the rest of its life, and switches into
// tasks with SwitchToFiber; each task's fiber owns its stack (CreateFiberEx
// reserves it, commits the first pages and lets Windows commit the rest as
// the stack grows, behind its guard page) and DeleteFiber frees it.  The Windows counterpart of
// fiber_context.cpp and the boost/ucontext implementations, which this
// build does not compile.
#include <windows.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "task/context/fiber_context.h"

namespace evchan::detail {
namespace {

// Committed at creation; Windows commits more, a page at a time, through
// the guard page below it.  Two pages (8 KiB on x86 and x64) cover a task
// that stays shallow without a guard-page fault; the reservation, the
// task's stack size, is what bounds it.
constexpr SIZE_T kInitialCommit = 8 * 1024;

class Win32FiberContext final : public FiberContext {
 public:
  // The thread's own context: the fiber the thread is.  It stays a fiber
  // until it exits (this object is destroyed by a fiber-local slot's
  // callback during that exit, no place to convert it back from).
  explicit Win32FiberContext(void* threadFiber) noexcept
      : FiberContext(ContextKind::Win32Fiber), fiber_(threadFiber) {}

  // A task's fiber, made by create().
  Win32FiberContext(FiberEntry entry, void* argument) noexcept
      : FiberContext(ContextKind::Win32Fiber), entry_(entry), argument_(argument) {}

  ~Win32FiberContext() override {
    // A task's fiber, never the running one: it has switched away for good.
    if (entry_ != nullptr && fiber_ != nullptr) DeleteFiber(fiber_);
  }

  bool create(SIZE_T reserve) noexcept {
    // FIBER_FLAG_FLOAT_SWITCH: the floating-point control state (rounding,
    // exception masks) travels with the task, as the registers do.
    fiber_ = CreateFiberEx(kInitialCommit < reserve ? kInitialCommit : reserve, reserve, FIBER_FLAG_FLOAT_SWITCH,
                           &Win32FiberContext::start, this);
    return fiber_ != nullptr;
  }

 protected:
  void jump(FiberContext& target, bool /*finishing*/) noexcept override {
    SwitchToFiber(static_cast<Win32FiberContext&>(target).fiber_);
  }

 private:
  static void WINAPI start(void* parameter) {
    auto* self = static_cast<Win32FiberContext*>(parameter);
    self->entry_(self->argument_);
    // Entries end with exitTo() and are never resumed after it; a fiber's
    // start routine returning would end the whole thread.
    std::fputs("evchan: a task fiber's entry returned\n", stderr);
    std::abort();
  }

  void* fiber_ = nullptr;
  FiberEntry entry_ = nullptr;
  void* argument_ = nullptr;
};

// GetCurrentFiber() reads the TEB through gs (x64) or fs (x86), which
// GCC 12 takes for an access past a zero-length array (a false
// -Warray-bounds, an error with EVCHAN_WERROR).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
void* currentFiber() noexcept { return GetCurrentFiber(); }
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

// The fiber-local slot's callback (threadContext()).
void WINAPI destroyThreadContext(void* context) { delete static_cast<FiberContext*>(context); }

}  // namespace

ContextKind defaultContextKind() noexcept { return ContextKind::Win32Fiber; }

std::unique_ptr<FiberContext> makeThreadContext(ContextKind /*kind*/) {
  // A thread that is a fiber already (its program converted it, or it is
  // a fiber of its own) is switched from as it is and left as it was.
  if (IsThreadAFiber()) return std::make_unique<Win32FiberContext>(currentFiber());
  void* fiber = ConvertThreadToFiberEx(nullptr, FIBER_FLAG_FLOAT_SWITCH);
  if (fiber == nullptr) {
    // Only when Windows has no memory for the thread's fiber data: no
    // task can run on this worker.
    std::fprintf(stderr, "evchan: ConvertThreadToFiberEx failed (Windows error %lu)\n",
                 static_cast<unsigned long>(GetLastError()));
    std::abort();
  }
  return std::make_unique<Win32FiberContext>(fiber);
}

// The thread's context lives in a fiber-local slot, set on the thread's own
// fiber, whose callback Windows calls with it when the thread exits.  Not a
// thread_local with a destructor: with mingw-w64 (emulated TLS) that
// crashed the exit of every worker that had run a task (task_deadline_test
// under Wine 8, each run: libstdc++'s list of thread-local destructors
// called into freed heap memory, the TLS storage apparently freed by a
// key destructor that ran first).  The thread_local below is a plain
// pointer, for the fast path.
FiberContext& threadContext() {
  static const DWORD slot = FlsAlloc(&destroyThreadContext);
  static thread_local FiberContext* context = nullptr;
  if (context == nullptr) {
    std::unique_ptr<FiberContext> made = makeThreadContext(ContextKind::Win32Fiber);
    if (slot == FLS_OUT_OF_INDEXES || !FlsSetValue(slot, made.get())) {
      std::fprintf(stderr, "evchan: no fiber-local slot for a worker's context (Windows error %lu)\n",
                   static_cast<unsigned long>(GetLastError()));
      std::abort();
    }
    context = made.release();
  }
  return *context;
}

std::unique_ptr<FiberContext> makeFiberContext(ContextKind /*kind*/, const StackSpan& stack, FiberEntry entry,
                                               void* argument) {
  if (stack.size < 4096) return nullptr;
  auto context = std::make_unique<Win32FiberContext>(entry, argument);
  if (!context->create(stack.size)) return nullptr;
  return context;
}

// CreateFiberEx allocates the fiber's stack: there is no top to build on.
FiberContext* makeFiberContextOnStack(ContextKind /*kind*/, StackSpan /*stack*/, FiberEntry /*entry*/,
                                      void* /*argument*/) noexcept {
  return nullptr;
}

}  // namespace evchan::detail
