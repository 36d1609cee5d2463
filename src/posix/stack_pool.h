// Internal: task stacks, mmap'ed and lazily committed, with a guard page
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
  StackSpan usable;      ///< what the fiber runs on, above the guard page
  bool guarded = false;  ///< a PROT_NONE page lies below `usable`; otherwise a canary at its base (its lowest 64 bytes stay zero)
};

/// Stacks of one size, reused.  A guard page splits a stack's mapping in
/// two, and vm.max_map_count (65,530 by default) caps a process's
/// mappings, so guarded stacks are limited to a quarter of that budget
/// (guardBudget()); the others get a canary, their lowest 64 bytes that a
/// fresh mapping reads as zero and only an overflow writes, which the
/// scheduler checks at every switch.  Thread-safe.
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
