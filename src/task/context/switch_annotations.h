// SPDX-License-Identifier: Apache-2.0
// Internal: telling ASan, TSan and valgrind about context switches, so the
// task suites run clean under them.  Inline; in a build without sanitizers
// a switch only asks whether the program brought ASan's runtime (see
// asanRuns()): the switch path stays a few nanoseconds.
#ifndef EVCHAN_SRC_TASK_CONTEXT_SWITCH_ANNOTATIONS_H
#define EVCHAN_SRC_TASK_CONTEXT_SWITCH_ANNOTATIONS_H

#include <pthread.h>

#include <cstddef>

#include "apr/sanitizer_build.h"
#include "posix/stack_span.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EVCHAN_VALGRIND 1
#endif

// Declared here rather than through <sanitizer/*.h>: those headers come
// with the compiler's runtime, which a plain build need not have.  ASan's
// are in apr/sanitizer_build.h (see asanRuns()).
extern "C" {
#ifdef EVCHAN_TSAN
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif
}

namespace evchan::detail {

/// The sanitizer state of one context.  Every implementation of
/// FiberContext holds one and calls, around each switch:
///   from.beforeSwitch(to, finishing); <switch>; self.afterSwitch();
class SwitchAnnotations {
 public:
  /// For a thread's own context: its stack is found from the thread.
  SwitchAnnotations() noexcept {
#if defined(EVCHAN_ASAN) || defined(EVCHAN_ASAN_IF_LINKED)
    pthread_attr_t attributes;
    if (asanRuns() && pthread_getattr_np(pthread_self(), &attributes) == 0) {
      void* bottom = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&attributes, &bottom, &size) == 0) {
        stackBottom_ = bottom;
        stackSize_ = size;
      }
      pthread_attr_destroy(&attributes);
    }
#endif
#ifdef EVCHAN_TSAN
    tsanFiber_ = __tsan_get_current_fiber();
#endif
  }

  /// For a fiber on `stack` (registered with valgrind until destroyed).
  explicit SwitchAnnotations(const StackSpan& stack) noexcept : stackBottom_(stack.base), stackSize_(stack.size) {
#ifdef EVCHAN_TSAN
    tsanFiber_ = __tsan_create_fiber(0);
    ownsTsanFiber_ = true;
#endif
#ifdef EVCHAN_VALGRIND
    char* base = static_cast<char*>(stack.base);
    valgrindStackId_ = VALGRIND_STACK_REGISTER(base, base + stack.size);
#endif
  }

  ~SwitchAnnotations() {
#ifdef EVCHAN_TSAN
    if (ownsTsanFiber_) __tsan_destroy_fiber(tsanFiber_);
#endif
#ifdef EVCHAN_VALGRIND
    if (valgrindStackId_ != 0) VALGRIND_STACK_DEREGISTER(valgrindStackId_);
#endif
  }

  SwitchAnnotations(const SwitchAnnotations&) = delete;
  SwitchAnnotations& operator=(const SwitchAnnotations&) = delete;

  /// Before leaving this context for `target`; `finishing`: this context
  /// will never run again.
  void beforeSwitch([[maybe_unused]] SwitchAnnotations& target, [[maybe_unused]] bool finishing) noexcept {
#if defined(EVCHAN_ASAN) || defined(EVCHAN_ASAN_IF_LINKED)
    // A null save slot tells ASan this stack is done and its fake frames can go.
    if (asanRuns())
      __sanitizer_start_switch_fiber(finishing ? nullptr : &fakeStack_, target.stackBottom_, target.stackSize_);
#endif
#ifdef EVCHAN_TSAN
    __tsan_switch_to_fiber(target.tsanFiber_, 0);
#endif
  }

  /// First thing after this context has been resumed.
  void afterSwitch() noexcept {
#if defined(EVCHAN_ASAN) || defined(EVCHAN_ASAN_IF_LINKED)
    if (asanRuns()) __sanitizer_finish_switch_fiber(fakeStack_, nullptr, nullptr);
#endif
  }

 private:
  [[maybe_unused]] const void* stackBottom_ = nullptr;
  [[maybe_unused]] std::size_t stackSize_ = 0;
  [[maybe_unused]] void* fakeStack_ = nullptr;  // ASan's fake stack of this context while suspended
  [[maybe_unused]] void* tsanFiber_ = nullptr;  // TSan's fiber for this context
  [[maybe_unused]] bool ownsTsanFiber_ = false;
  [[maybe_unused]] unsigned valgrindStackId_ = 0;  // VALGRIND_STACK_REGISTER's id, 0 when none
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_CONTEXT_SWITCH_ANNOTATIONS_H
