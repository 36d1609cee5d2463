// SPDX-License-Identifier: Apache-2.0
// Internal: the C++ runtime's per-thread exception state, carried by a task
// from one worker thread to the next.
#ifndef EVCHAN_SRC_TASK_CONTEXT_EXCEPTION_STATE_H
#define EVCHAN_SRC_TASK_CONTEXT_EXCEPTION_STATE_H

#include <utility>

#if defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define EVCHAN_ITANIUM_EXCEPTION_GLOBALS 1
#endif
#endif
// 32-bit ARM's EHABI: __cxa_eh_globals has a third member.
#if defined(__arm__) && !defined(__USING_SJLJ_EXCEPTIONS__) && !defined(__ARM_DWARF_EH__) && !defined(__SEH__)
#define EVCHAN_ARM_EHABI_EXCEPTIONS 1
#endif

namespace evchan::detail {

/// The exceptions a task is handling (catch blocks entered and not left)
/// and the number it is propagating (destructors that an unwinding runs).
/// The Itanium C++ ABI (GCC's and Clang's runtimes, MinGW's too) keeps
/// them per thread, in __cxa_get_globals(): a task that waits inside a
/// catch block, or in such a destructor, and resumes on another worker
/// would find that thread's instead, so that `throw;` finds no exception
/// (std::terminate) or another task's, std::current_exception() and
/// std::uncaught_exceptions() lie, and the end of the catch block releases
/// whatever exception heads the other thread's list.  runOnWorker() swaps
/// the task's state in before it switches to the task and out after.
/// Elsewhere (no <cxxabi.h>) it does nothing.
class ExceptionState {
 public:
  /// Exchanges this state with the calling thread's.
  void swapWithThread() noexcept {
#if defined(EVCHAN_ITANIUM_EXCEPTION_GLOBALS)
    auto* thread = reinterpret_cast<ExceptionState*>(abi::__cxa_get_globals());
    std::swap(caught_, thread->caught_);
    std::swap(uncaught_, thread->uncaught_);
#if defined(EVCHAN_ARM_EHABI_EXCEPTIONS)
    std::swap(propagating_, thread->propagating_);
#endif
#endif
  }

 private:
  // The members of __cxa_eh_globals, in the order libstdc++, libc++abi
  // and libcxxrt give them (32-bit ARM's EHABI adds the third).
  void* caught_ = nullptr;
  unsigned int uncaught_ = 0;
#if defined(EVCHAN_ARM_EHABI_EXCEPTIONS)
  void* propagating_ = nullptr;
#endif
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_CONTEXT_EXCEPTION_STATE_H
