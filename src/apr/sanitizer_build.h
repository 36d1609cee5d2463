// SPDX-License-Identifier: Apache-2.0
// Internal: which sanitizer this translation unit is built with, for GCC
// (__SANITIZE_*__) and Clang (__has_feature) alike.  Defines EVCHAN_ASAN
// under AddressSanitizer and EVCHAN_TSAN under ThreadSanitizer; code that
// must tell a sanitizer what it cannot see (context switches, memory it
// maps with raw system calls, stacks it reuses) tests these.
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

#endif  // EVCHAN_SRC_APR_SANITIZER_BUILD_H
