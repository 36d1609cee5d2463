// SPDX-License-Identifier: Apache-2.0
// Internal: task stacks, mmap'ed and lazily committed, with a guard reserve
// while the process's mapping budget lasts and a canary beyond it.
#ifndef EVCHAN_SRC_POSIX_STACK_POOL_H
#define EVCHAN_SRC_POSIX_STACK_POOL_H

#include <cstddef>
#include <mutex>
#include <system_error>
#include <vector>

#include "posix/stack_span.h"

namespace evchan::detail {

struct Stack {
  void* mapping = nullptr;
  std::size_t mappingSize = 0;
  StackSpan usable;      ///< what the fiber runs on, above the guard reserve
  bool guarded = false;  ///< a PROT_NONE reserve lies below `usable`; otherwise a canary at its base (its lowest 64 bytes stay zero)
};

/// Stacks of one size, reused.  A guarded stack has a PROT_NONE reserve
/// of 64 KiB below it (one page on 32-bit systems): any access there, a
/// deep recursion's or a frame of up to 64 KiB that skips the stack's last
/// pages, faults and is reported as that task's stack overflow; with
/// stack-clash probing (-fstack-clash-protection) a frame of any size is.
/// The reserve splits the stack's mapping in two, and vm.max_map_count
/// (65,530 by default) caps a process's mappings, so guarded stacks are
/// limited to 3/8 of that count (guardBudget(); 24,573 by default, the
/// environment variable EVCHAN_GUARDED_STACKS overrides it).  The others
/// get a canary, their lowest 64 bytes that a fresh mapping reads as zero
/// and only an overflow writes, which the scheduler checks at every
/// switch: it catches an overflow that wrote those bytes by the task's
/// next suspension, not one that went further first (it writes into
/// whatever lies below, typically another task's stack).  Thread-safe.
class StackPool {
 public:
  /// `stackSize` is rounded up to whole pages, at least 16 KiB.  Without
  /// `guardPages` every stack gets a canary instead (cheaper in mappings).
  explicit StackPool(std::size_t stackSize, std::size_t maxCached = 256, bool guardPages = true);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  std::error_code acquire(Stack& stack) noexcept;
  /// Returns a stack to the cache (or unmaps it when the cache is full).
  void release(Stack& stack) noexcept;

  std::size_t stackSize() const noexcept { return stackSize_; }

  /// False once something wrote over the canary of an unguarded stack.
  static bool canaryIntact(const Stack& stack) noexcept;
  /// How many guarded stacks the process may have at once.
  static std::size_t guardBudget() noexcept;
  /// Guarded stacks alive in the process now.
  static std::size_t guardedStacks() noexcept;

 private:
  const std::size_t stackSize_;
  const std::size_t maxCached_;
  const bool guardPages_;
  std::mutex mutex_;
  std::vector<Stack> cache_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_POOL_H
