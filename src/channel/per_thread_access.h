// SPDX-License-Identifier: Apache-2.0
// Internal: reading per-thread state from code a task may run.
#ifndef EVCHAN_SRC_CHANNEL_PER_THREAD_ACCESS_H
#define EVCHAN_SRC_CHANNEL_PER_THREAD_ACCESS_H

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

namespace evchan::detail {

/// Called at the top of every accessor of a `thread_local` slot (each one a
/// `[[gnu::noinline]]` function returning the slot).  A task may resume on
/// another thread after any call that suspends it, but the optimisers do
/// not know that: GCC marks an accessor that only returns a thread-local's
/// address `const` and clang `readnone`, and both then reuse the first
/// call's result after the switch (the slot of the thread the task left).
/// The empty asm statement (MSVC: a compiler barrier) is a side effect the
/// optimiser may not remove, so every call is made and reads the slot of
/// the thread it runs on.
inline void freshPerThreadRead() noexcept {
#if defined(_MSC_VER) && !defined(__clang__)
  _ReadWriteBarrier();
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_PER_THREAD_ACCESS_H
