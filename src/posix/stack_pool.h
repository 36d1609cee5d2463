// SPDX-License-Identifier: Apache-2.0
// Internal: task stacks, carved from larger lazily committed reservations,
// with a guard reserve while the process's mapping budget lasts and a
// canary beyond it.
#ifndef EVCHAN_SRC_POSIX_STACK_POOL_H
#define EVCHAN_SRC_POSIX_STACK_POOL_H

#include <cstddef>
#include <mutex>
#include <system_error>
#include <vector>

#include "posix/stack_span.h"

namespace evchan::detail {

struct StackChunk;

struct Stack {
  void* mapping = nullptr;      ///< the stack's slot: its guard reserve (if any), then `usable`
  std::size_t mappingSize = 0;  ///< the slot's size
  StackChunk* chunk = nullptr;  ///< the reservation the slot was carved from
  StackSpan usable;      ///< what the fiber runs on, above the guard reserve
  bool guarded = false;  ///< a faulting reserve lies below `usable`; otherwise a canary at its base (its lowest 64 bytes stay zero)
};

/// Stacks of one size, reused.  A guarded stack has a reserve of 64 KiB
/// below it (one page on 32-bit systems) that faults on any access: a deep
/// recursion's or a frame of up to 64 KiB that skips the stack's last
/// pages is reported as that task's stack overflow; with stack-clash
/// probing (-fstack-clash-protection) a frame of any size is.
///
/// Where the kernel has guard markers (MADV_GUARD_INSTALL, Linux 6.13 on)
/// the reserve is marked in the page tables of the chunk's one mapping: it
/// costs no mapping and no resident page, so every stack is guarded (unless
/// the environment variable EVCHAN_GUARDED_STACKS sets a budget).
/// Elsewhere the reserve is a PROT_NONE mapping of its own, splitting the
/// stack's mapping in two, and vm.max_map_count (65,530 by default) caps a
/// process's mappings, so guarded stacks are limited to 3/8 of that count
/// (guardBudget(); 24,573 by default, EVCHAN_GUARDED_STACKS overrides it);
/// that budget also holds where markers were refused after the probe (a
/// later mlockall() or seccomp filter), though guardBudget() is unlimited.
/// The others get a canary, their lowest 64 bytes that a fresh mapping
/// reads as zero and only an overflow writes, which the scheduler checks
/// at every switch: it catches an overflow that wrote those bytes by the
/// task's next suspension, not one that went further first (it writes into
/// whatever lies below, typically another task's stack).  A chunk whose
/// reserves the kernel refuses for want of mappings is carved canaried.
///
/// Stacks are slots carved from chunks, one mmap each for up to 64 stacks
/// (8 MiB of address space at most), all guarded or all canaried: a
/// guarded chunk costs one madvise (markers) or mprotect per stack, a
/// canaried one nothing more.  Released stacks stay resident in a cache of `maxCached`; past
/// it they are given back to the kernel in batches of `purgeBatch`: sorted,
/// one madvise(MADV_DONTNEED) per run of adjacent stacks, and chunks with
/// no stack in use any more unmapped whole, one munmap per run of
/// adjacent chunks.  Batches are large because each of those calls flushes
/// the TLB of every CPU the process runs on (an interrupt to each, slow in
/// a virtual machine) whatever it frees; the price is up to `purgeBatch`
/// released stacks resident beyond the cache until the batch is full.  A
/// purged slot reads as zero again, its canary restored.  From a pool's
/// second chunk on, a new chunk's stacks have their top pages (the one page
/// a parked task touches) made resident together in one system call
/// (prefaultPages()), which costs less than their first writes faulting
/// one by one; a pool's first chunk keeps only the pages its stacks write.
/// Thread-safe.
///
/// On Windows (src/win32/stack_pool.cpp) a task's fiber allocates its own
/// stack, so the pool hands out sizes only: a Stack with a null base and
/// `usable.size` the stack size, guarded by Windows' own guard page.
class StackPool {
 public:
  /// `stackSize` is rounded up to whole pages, at least 16 KiB.  Without
  /// `guardPages` every stack gets a canary instead (cheaper in mappings).
  explicit StackPool(std::size_t stackSize, std::size_t maxCached = 256, bool guardPages = true,
                     std::size_t purgeBatch = kPurgeBatch);
  /// Unmaps every chunk, with the stacks still handed out (the task
  /// layer's pools are never destroyed).
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  std::error_code acquire(Stack& stack) noexcept;
  /// Returns a stack to the cache; past the cache, to a batch given back
  /// to the kernel once full.  Clears `stack`.
  void release(Stack& stack) noexcept;

  /// acquire() and release() through the calling thread's own few stacks
  /// (kThreadStacks, of the pool the thread used last): a task that starts
  /// and ends on one worker takes and gives back its stack without the
  /// pool's lock.  A thread's stacks go back to their pool when it switches
  /// pools or exits, so only for a pool that outlives every thread using
  /// it (the task layer's, which are never destroyed).  Until then they
  /// are outside the cache's bound and the purge: a worker that only ends
  /// tasks spawned elsewhere keeps kThreadStacks of them resident, so the
  /// share stays small (the gain is the LIFO reuse of one or two).
  std::error_code acquireOnThread(Stack& stack) noexcept;
  void releaseOnThread(Stack& stack) noexcept;
  static constexpr std::size_t kThreadStacks = 4;

  std::size_t stackSize() const noexcept { return stackSize_; }

  /// Take and release the pool's lock around a fork(), for a pool that
  /// outlives every fork (the task layer's): a child then never finds it
  /// held by a thread that stayed in the parent.
  void lockForFork() noexcept { mutex_.lock(); }
  void unlockAfterFork() noexcept { mutex_.unlock(); }

  /// False once something wrote over the canary of an unguarded stack.
  static bool canaryIntact(const Stack& stack) noexcept;
  /// How many guarded stacks the process may have at once:
  /// kUnlimitedGuards when guards are markers (guardsAreMarkers()), unless
  /// EVCHAN_GUARDED_STACKS sets a count.
  static std::size_t guardBudget() noexcept;
  static constexpr std::size_t kUnlimitedGuards = ~std::size_t(0);
  /// Whether guard reserves are the kernel's guard markers
  /// (MADV_GUARD_INSTALL, Linux 6.13 on) rather than PROT_NONE mappings.
  static bool guardsAreMarkers() noexcept;
  /// Guarded stacks alive in the process now: their slots, in use,
  /// cached or free in a chunk still mapped.
  static std::size_t guardedStacks() noexcept;
  /// Stacks released past the cache that wait to be given back together,
  /// by default: 16 chunks of 64 KiB stacks.
  static constexpr std::size_t kPurgeBatch = 1024;

 private:
  /// A new chunk's first slot, the rest made free, guarded if `guards`
  /// and the budget allows; mutex_ not held.
  std::error_code carveChunk(Stack& stack, bool guards, bool bulk) noexcept;
  /// Makes the top page of every stack of a new chunk resident, the one
  /// page a task that parks touches, in one system call (prefaultPages()),
  /// when the pool has carved chunks before (tasks are being spawned in
  /// bulk): a program with a few tasks keeps no page it does not use.
  void prefaultStackTops(StackChunk& chunk) const noexcept;
  /// Gives `count` released stacks back to the kernel; mutex_ not held.
  void purge(Stack* batch, std::size_t count) noexcept;
  /// Takes the purgeBatch_ coldest stacks out of an overflowing cache and
  /// purges them; mutex_ not held.
  void purgeColdest() noexcept;
  Stack slotOf(StackChunk& chunk, std::size_t index) const noexcept;
  /// Takes `chunk` out of open_ (mutex_ held).
  void closeLocked(StackChunk& chunk) noexcept;
  /// Takes `chunk` out of open_ and the chunk list, to be unmapped (mutex_ held).
  void retireLocked(StackChunk& chunk) noexcept;

  const std::size_t stackSize_;
  const std::size_t maxCached_;
  const std::size_t purgeBatch_;
  const bool guardPages_;
  std::mutex mutex_;
  std::vector<Stack> cache_;       // released, resident, reused first (newest first)
  std::vector<StackChunk*> open_;  // chunks with free (purged or never used) slots
  StackChunk* chunks_ = nullptr;   // every chunk, for the destructor
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_POOL_H
