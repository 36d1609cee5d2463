// SPDX-License-Identifier: Apache-2.0
// Internal: which sanitizer this translation unit is built with, for GCC
// (__SANITIZE_*__) and Clang (__has_feature) alike.  Defines EVCHAN_ASAN
// under AddressSanitizer and EVCHAN_TSAN under ThreadSanitizer; code that
// must tell a sanitizer what it cannot see (context switches, memory it
// maps with raw system calls, stacks it reuses) tests these, or asanRuns()
// for what ASan must be told even when only the program is built with it.
#ifndef EVCHAN_SRC_APR_SANITIZER_BUILD_H
#define EVCHAN_SRC_APR_SANITIZER_BUILD_H

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

// The AddressSanitizer entry points evchan calls.  Declared here rather
// than through <sanitizer/*.h>: those headers come with the compiler's
// runtime, which a plain build need not have.  In an ASan build they are
// the runtime's own.  In a plain build with glibc (ELF, and the thread
// stack from pthread_getattr_np) they are weak: a program
// built with -fsanitize=address and linked with a plain evchan brings the
// runtime, and evchan tells it about the task stacks as an ASan build
// does (else ASan takes a task's stack for a thread's, warns that it
// ignores __asan_handle_no_return at a throw, and reports false errors
// later); in a program without ASan they are null and never called.
// Not under TSan, which no ASan program runs beside.
#include <cstddef>

extern "C" {
#if defined(EVCHAN_ASAN)
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, std::size_t* size_old);
void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#elif defined(__ELF__) && defined(__GLIBC__) && !defined(EVCHAN_TSAN)
#define EVCHAN_ASAN_IF_LINKED 1
[[gnu::weak]] void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
[[gnu::weak]] void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                                   std::size_t* size_old);
[[gnu::weak]] void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif
}

namespace evchan::detail {

/// True when this process runs under AddressSanitizer: evchan built with
/// it, or a plain evchan linked into a program built with it.
inline bool asanRuns() noexcept {
#if defined(EVCHAN_ASAN)
  return true;
#elif defined(EVCHAN_ASAN_IF_LINKED)
  return __sanitizer_start_switch_fiber != nullptr && __sanitizer_finish_switch_fiber != nullptr &&
         __asan_unpoison_memory_region != nullptr;
#else
  return false;
#endif
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_SANITIZER_BUILD_H
