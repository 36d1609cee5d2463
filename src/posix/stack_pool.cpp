// SPDX-License-Identifier: Apache-2.0
// StackPool on mmap: lazily committed (MAP_NORESERVE), guard reserve below.
#include "posix/stack_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>

#include <evchan/error.h>

#if defined(__SANITIZE_ADDRESS__)
#define EVCHAN_STACK_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVCHAN_STACK_POOL_ASAN 1
#endif
#endif
#ifdef EVCHAN_STACK_POOL_ASAN
// Declared here rather than through <sanitizer/asan_interface.h> (see
// task/switch_annotations.h).
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

namespace evchan::detail {
namespace {

// An unguarded stack's canary is its lowest kCanaryBytes staying zero, as a
// fresh anonymous mapping reads.  Nothing is written to set it up, so its
// page is never made resident by the pool: checking it only maps the
// kernel's shared zero page, which resident memory does not count.
constexpr std::size_t kCanaryBytes = 64;
std::atomic<std::size_t> liveGuards{0};

std::size_t pageSize() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t roundUpToPages(std::size_t bytes) {
  const std::size_t page = pageSize();
  return (bytes + page - 1) / page * page;
}

// The PROT_NONE reserve below a guarded stack.  Its size costs address
// space only: the reserve is one mapping (VMA) however large, the same
// one a single guard page would be.  64 KiB catches any frame up to that
// size that jumps over the stack's end without touching the pages between
// (code built without -fstack-clash-protection); on a 32-bit address space
// it stays one page.
std::size_t guardReserve() {
  static const std::size_t size = sizeof(void*) >= 8 ? std::max<std::size_t>(64 * 1024, pageSize()) : pageSize();
  return size;
}

std::size_t readMaxMapCount() {
  std::ifstream file("/proc/sys/vm/max_map_count");
  std::size_t count = 0;
  if (!(file >> count) || count == 0) count = 65530;  // the kernel's default
  return count;
}

// EVCHAN_GUARDED_STACKS, a decimal count, when set and valid.
bool budgetFromEnvironment(std::size_t& budget) {
  const char* text = std::getenv("EVCHAN_GUARDED_STACKS");
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  budget = static_cast<std::size_t>(value);
  return true;
}

void unmap(Stack& stack) {
  if (stack.guarded) liveGuards.fetch_sub(1, std::memory_order_relaxed);
  munmap(stack.mapping, stack.mappingSize);
  stack = Stack();
}

}  // namespace

StackPool::StackPool(std::size_t stackSize, std::size_t maxCached, bool guardPages)
    : stackSize_(roundUpToPages(stackSize < 16384 ? 16384 : stackSize)), maxCached_(maxCached), guardPages_(guardPages) {}

StackPool::~StackPool() {
  for (Stack& stack : cache_) unmap(stack);
}

std::size_t StackPool::guardBudget() noexcept {
  static const std::size_t budget = [] {
    std::size_t fromEnvironment = 0;
    if (budgetFromEnvironment(fromEnvironment)) return fromEnvironment;
    // A guarded stack is two mappings (its reserve and itself): 3/8 of
    // the count leaves a quarter of the mappings to the rest of the process.
    return readMaxMapCount() / 8 * 3;
  }();
  return budget;
}

std::size_t StackPool::guardedStacks() noexcept { return liveGuards.load(std::memory_order_relaxed); }

bool StackPool::canaryIntact(const Stack& stack) noexcept {
  if (stack.guarded) return true;
  const auto* words = static_cast<const volatile std::uint64_t*>(stack.usable.base);
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < kCanaryBytes / sizeof(std::uint64_t); ++i) bits |= words[i];
  return bits == 0;
}

std::error_code StackPool::acquire(Stack& stack) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!cache_.empty()) {
      stack = cache_.back();
      cache_.pop_back();
      return {};
    }
  }
  // Reserve a guard slot first so that concurrent acquires cannot overshoot.
  bool guarded = false;
  if (guardPages_) {
    guarded = liveGuards.fetch_add(1, std::memory_order_relaxed) < guardBudget();
    if (!guarded) liveGuards.fetch_sub(1, std::memory_order_relaxed);
  }
  const std::size_t guard = guarded ? guardReserve() : 0;
  const std::size_t size = stackSize_ + guard;
  void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                       -1, 0);
  if (mapping == MAP_FAILED) {
    const int error = errno;
    if (guarded) liveGuards.fetch_sub(1, std::memory_order_relaxed);
    return makeAprError(error);
  }
  if (guarded && mprotect(mapping, guard, PROT_NONE) != 0) {
    const int error = errno;
    liveGuards.fetch_sub(1, std::memory_order_relaxed);
    munmap(mapping, size);
    return makeAprError(error);
  }
  stack.mapping = mapping;
  stack.mappingSize = size;
  stack.usable = StackSpan{static_cast<char*>(mapping) + guard, stackSize_};
  stack.guarded = guarded;
  return {};
}

void StackPool::release(Stack& stack) noexcept {
  if (stack.mapping == nullptr) return;
#ifdef EVCHAN_STACK_POOL_ASAN
  // A fiber that ended left the redzones of the frames it was in poisoned
  // (it never returned from them): the next fiber on this memory would
  // trip over them (ASan reports, or CHECK-fails in __asan_handle_no_return
  // at a throw).  Unmapped memory keeps its shadow too.
  __asan_unpoison_memory_region(stack.usable.base, stack.usable.size);
#endif
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_.size() < maxCached_ && canaryIntact(stack)) {
      cache_.push_back(stack);
      stack = Stack();
      return;
    }
  }
  unmap(stack);
}

}  // namespace evchan::detail
