// SwitchAnnotations: ASan (__sanitizer_*_switch_fiber), TSan
// (__tsan_*_fiber) and valgrind (VALGRIND_STACK_REGISTER) hooks.
#include "task/switch_annotations.h"

#include <pthread.h>

#if defined(__SANITIZE_ADDRESS__)
#define EVCHAN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVCHAN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define EVCHAN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVCHAN_TSAN 1
#endif
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EVCHAN_VALGRIND 1
#endif

// Declared here rather than through <sanitizer/*.h>: those headers come
// with the compiler's runtime, which a plain build need not have.
extern "C" {
#ifdef EVCHAN_ASAN
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, std::size_t* size_old);
#endif
#ifdef EVCHAN_TSAN
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif
}

namespace evchan::detail {

SwitchAnnotations::SwitchAnnotations() noexcept {
  pthread_attr_t attributes;
  if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
    void* bottom = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attributes, &bottom, &size) == 0) {
      stackBottom_ = bottom;
      stackSize_ = size;
    }
    pthread_attr_destroy(&attributes);
  }
#ifdef EVCHAN_TSAN
  tsanFiber_ = __tsan_get_current_fiber();
#endif
}

SwitchAnnotations::SwitchAnnotations(const StackSpan& stack) noexcept
    : stackBottom_(stack.base), stackSize_(stack.size) {
#ifdef EVCHAN_TSAN
  tsanFiber_ = __tsan_create_fiber(0);
  ownsTsanFiber_ = true;
#endif
#ifdef EVCHAN_VALGRIND
  char* base = static_cast<char*>(stack.base);
  valgrindStackId_ = VALGRIND_STACK_REGISTER(base, base + stack.size);
#endif
}

SwitchAnnotations::~SwitchAnnotations() {
#ifdef EVCHAN_TSAN
  if (ownsTsanFiber_) __tsan_destroy_fiber(tsanFiber_);
#endif
#ifdef EVCHAN_VALGRIND
  if (valgrindStackId_ != 0) VALGRIND_STACK_DEREGISTER(valgrindStackId_);
#endif
}

void SwitchAnnotations::beforeSwitch(SwitchAnnotations& target, bool finishing) noexcept {
#ifdef EVCHAN_ASAN
  // A null save slot tells ASan this stack is done and its fake frames can go.
  __sanitizer_start_switch_fiber(finishing ? nullptr : &fakeStack_, target.stackBottom_, target.stackSize_);
#else
  (void)finishing;
#endif
#ifdef EVCHAN_TSAN
  __tsan_switch_to_fiber(target.tsanFiber_, 0);
#else
  (void)target;
#endif
}

void SwitchAnnotations::afterSwitch() noexcept {
#ifdef EVCHAN_ASAN
  __sanitizer_finish_switch_fiber(fakeStack_, nullptr, nullptr);
#endif
}

}  // namespace evchan::detail
