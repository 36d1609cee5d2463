// SPDX-License-Identifier: Apache-2.0
// StackPool on Windows: a task's fiber allocates and frees its own stack
// (CreateFiberEx reserves it, with the guard page Windows keeps below every
// stack, and DeleteFiber releases it), so the pool only hands out the
// stack's size: a Stack here has no base, is always "guarded" (by Windows'
// own guard page, reported by src/win32/stack_overflow.cpp) and has no
// canary.  Nothing is cached: reusing a stack would mean reusing its fiber.
#include <windows.h>

#include <atomic>

#include "posix/stack_pool.h"

namespace evchan::detail {
namespace {

std::atomic<std::size_t> liveStacks{0};

std::size_t pageSize() {
  static const std::size_t size = [] {
    SYSTEM_INFO info;
    GetSystemInfo(&info);
    return static_cast<std::size_t>(info.dwPageSize);
  }();
  return size;
}

std::size_t roundUpToPages(std::size_t bytes) {
  const std::size_t page = pageSize();
  return (bytes + page - 1) / page * page;
}

}  // namespace

StackPool::StackPool(std::size_t stackSize, std::size_t maxCached, bool guardPages, std::size_t purgeBatch)
    : stackSize_(roundUpToPages(stackSize < 16384 ? 16384 : stackSize)),
      maxCached_(maxCached),
      purgeBatch_(purgeBatch),
      guardPages_(guardPages) {}

StackPool::~StackPool() = default;

std::error_code StackPool::acquire(Stack& stack) noexcept {
  stack = Stack{};
  stack.usable = StackSpan{nullptr, stackSize_};
  stack.guarded = true;
  liveStacks.fetch_add(1, std::memory_order_relaxed);
  return {};
}

void StackPool::release(Stack& stack) noexcept {
  if (stack.usable.size != 0) liveStacks.fetch_sub(1, std::memory_order_relaxed);
  stack = Stack{};
}

std::error_code StackPool::acquireOnThread(Stack& stack) noexcept { return acquire(stack); }

void StackPool::releaseOnThread(Stack& stack) noexcept { release(stack); }

bool StackPool::canaryIntact(const Stack& /*stack*/) noexcept { return true; }

bool StackPool::guardsAreMarkers() noexcept { return false; }

// Windows' guard pages cost no mapping budget: every stack has one.
std::size_t StackPool::guardBudget() noexcept { return kUnlimitedGuards; }

std::size_t StackPool::guardedStacks() noexcept { return liveStacks.load(std::memory_order_relaxed); }

}  // namespace evchan::detail
