// SPDX-License-Identifier: Apache-2.0
// Internal: tells ThreadSanitizer that an io_uring's mappings end before a
// later ring's begin.
#ifndef EVCHAN_SRC_LINUX_RING_LIFETIME_ANNOTATIONS_H
#define EVCHAN_SRC_LINUX_RING_LIFETIME_ANNOTATIONS_H

#include "apr/sanitizer_build.h"

#ifdef EVCHAN_TSAN
// Declared here rather than through <sanitizer/tsan_interface.h>, which
// comes with the compiler's runtime.
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
#endif

namespace evchan::detail {

// liburing (2.2 on, built without libc) maps and unmaps a ring's queues
// with raw system calls, which ThreadSanitizer does not see: a ring mapped
// where a destroyed one was keeps the old ring's access history, and the
// first read of its completion queue on one worker was reported as a race
// with the last write of a worker of the old channel.  Every ring's
// teardown releases, and every ring's setup acquires, one sync object,
// which orders them as the kernel's munmap and mmap do.
#ifdef EVCHAN_TSAN
inline char ringLifetimeSync;
inline void ringMapped() noexcept { __tsan_acquire(&ringLifetimeSync); }
inline void ringUnmapping() noexcept { __tsan_release(&ringLifetimeSync); }
#else
inline void ringMapped() noexcept {}
inline void ringUnmapping() noexcept {}
#endif

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_LINUX_RING_LIFETIME_ANNOTATIONS_H
