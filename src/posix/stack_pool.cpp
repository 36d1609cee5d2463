// SPDX-License-Identifier: Apache-2.0
// StackPool on mmap: chunks lazily committed (MAP_NORESERVE) and carved into
// stacks, a guard reserve below each while the budget lasts.
#include "posix/stack_pool.h"

#include "posix/prefault_pages.h"
#include "apr/sanitizer_build.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <new>

#include <evchan/error.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define EVCHAN_MEMCHECK 1
#endif
#endif


namespace evchan::detail {
namespace {

// An unguarded stack's canary is its lowest kCanaryBytes staying zero, as a
// fresh anonymous mapping reads.  Nothing is written to set it up, so its
// page is never made resident by the pool: checking it only maps the
// kernel's shared zero page, which resident memory does not count.
constexpr std::size_t kCanaryBytes = 64;
std::atomic<std::size_t> liveGuards{0};
// Of those, the ones whose reserves are PROT_NONE mappings (two mappings a
// stack), held to mappingGuardBudget() even where markers set no budget.
std::atomic<std::size_t> liveMappingGuards{0};

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

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13's guard regions (uapi asm-generic/mman-common.h)
#endif

// Whether this kernel installs guard regions: page-table markers that fault
// on any access, in the stack's own mapping (no split, no extra mapping),
// kept across MADV_DONTNEED and fork, removed by munmap.  Linux 6.13 on;
// older kernels (and seccomp filters) refuse the advice with EINVAL.
bool guardMarkersWork() {
  static const bool work = [] {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* probe = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe == MAP_FAILED) return false;
    const bool installed = madvise(probe, page, MADV_GUARD_INSTALL) == 0;
    munmap(probe, 2 * page);
    return installed;
  }();
  return work;
}

// Valgrind's memcheck does not see guard markers: it takes a marked
// reserve for memory the program may read, and its leak check at exit
// reads every page of every reserve, each read a fault it catches (a
// suite of many tasks then took minutes to exit).  Told the reserve is
// unaddressable, it skips it, and reports a write into it (an overflow)
// as an invalid access.  Outside valgrind the request costs a few
// instructions and does nothing.  (A PROT_NONE reserve memcheck sees
// through the mprotect.)
void hideReserveFromMemcheck([[maybe_unused]] void* reserve, [[maybe_unused]] std::size_t size) noexcept {
#ifdef EVCHAN_MEMCHECK
  (void)VALGRIND_MAKE_MEM_NOACCESS(reserve, size);
#endif
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

// A chunk: up to kSlotsPerChunk stacks in one reservation, at most
// kChunkBytes of address space (unless one stack is larger).
constexpr std::size_t kSlotsPerChunk = 64;
constexpr std::size_t kChunkBytes = 8u << 20;

std::size_t slotsPerChunk(std::size_t slotSize) {
  return std::max<std::size_t>(1, std::min(kSlotsPerChunk, kChunkBytes / slotSize));
}

// Takes up to `wanted` slots from `live`, held to `budget`; how many it got.
std::size_t reserveFrom(std::atomic<std::size_t>& live, std::size_t budget, std::size_t wanted) {
  std::size_t now = live.load(std::memory_order_relaxed);
  std::size_t got = 0;
  do {
    got = now >= budget ? 0 : std::min(wanted, budget - now);
    if (got == 0) return 0;
  } while (!live.compare_exchange_weak(now, now + got, std::memory_order_relaxed));
  return got;
}

// Guarded stacks whose reserves may be PROT_NONE mappings at once: a
// guarded stack is then two mappings (its reserve and itself), so 3/8 of
// vm.max_map_count leaves a quarter of the mappings to the rest of the
// process; EVCHAN_GUARDED_STACKS overrides it.
std::size_t mappingGuardBudget() {
  static const std::size_t budget = [] {
    std::size_t fromEnvironment = 0;
    if (budgetFromEnvironment(fromEnvironment)) return fromEnvironment;
    return readMaxMapCount() / 8 * 3;
  }();
  return budget;
}

// Takes `wanted` guarded slots with PROT_NONE reserves from their budget,
// all or none.
bool reserveMappingGuards(std::size_t wanted) {
  const std::size_t got = reserveFrom(liveMappingGuards, mappingGuardBudget(), wanted);
  if (got == wanted) return true;
  if (got != 0) liveMappingGuards.fetch_sub(got, std::memory_order_relaxed);
  return false;
}

}  // namespace

struct StackChunk {
  char* base = nullptr;
  std::size_t size = 0;      // bytes mapped
  std::size_t slotSize = 0;  // guard + stack
  std::size_t guard = 0;     // the reserve below each stack; 0: canaried
  std::size_t slots = 0;
  std::size_t outstanding = 0;       // slots not in `free`: in use, cached or being purged
  std::vector<std::uint32_t> free;   // zero-filled slots (never used, or purged); capacity `slots`
  std::size_t openIndex = kNotOpen;  // the chunk's place in StackPool::open_
  bool mappingGuards = false;        // its reserves (some) PROT_NONE mappings: counted in liveMappingGuards
  StackChunk* prev = nullptr;
  StackChunk* next = nullptr;
  static constexpr std::size_t kNotOpen = ~std::size_t(0);

  ~StackChunk() {
    if (base != nullptr) munmap(base, size);
    if (guard != 0) liveGuards.fetch_sub(slots, std::memory_order_relaxed);
    if (mappingGuards) liveMappingGuards.fetch_sub(slots, std::memory_order_relaxed);
  }
  std::uint32_t indexOf(const Stack& stack) const noexcept {
    return static_cast<std::uint32_t>((static_cast<char*>(stack.mapping) - base) / slotSize);
  }
};

StackPool::StackPool(std::size_t stackSize, std::size_t maxCached, bool guardPages, std::size_t purgeBatch)
    : stackSize_(roundUpToPages(stackSize < 16384 ? 16384 : stackSize)),
      maxCached_(maxCached),
      purgeBatch_(purgeBatch != 0 ? purgeBatch : 1),
      guardPages_(guardPages) {}

StackPool::~StackPool() {
  cache_.clear();
  while (StackChunk* chunk = chunks_) {
    chunks_ = chunk->next;
    delete chunk;
  }
}

std::size_t StackPool::guardBudget() noexcept {
  static const std::size_t budget = [] {
    std::size_t fromEnvironment = 0;
    if (budgetFromEnvironment(fromEnvironment)) return fromEnvironment;
    // Guard markers cost no mapping: every stack is guarded.
    if (guardMarkersWork()) return kUnlimitedGuards;
    return mappingGuardBudget();
  }();
  return budget;
}

std::size_t StackPool::guardedStacks() noexcept { return liveGuards.load(std::memory_order_relaxed); }

bool StackPool::guardsAreMarkers() noexcept { return guardMarkersWork(); }

bool StackPool::canaryIntact(const Stack& stack) noexcept {
  if (stack.guarded) return true;
  const auto* words = static_cast<const volatile std::uint64_t*>(stack.usable.base);
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < kCanaryBytes / sizeof(std::uint64_t); ++i) bits |= words[i];
  return bits == 0;
}

Stack StackPool::slotOf(StackChunk& chunk, std::size_t index) const noexcept {
  Stack stack;
  stack.mapping = chunk.base + index * chunk.slotSize;
  stack.mappingSize = chunk.slotSize;
  stack.chunk = &chunk;
  stack.usable = StackSpan{static_cast<char*>(stack.mapping) + chunk.guard, stackSize_};
  stack.guarded = chunk.guard != 0;
  return stack;
}

void StackPool::closeLocked(StackChunk& chunk) noexcept {
  if (chunk.openIndex == StackChunk::kNotOpen) return;
  StackChunk* last = open_.back();
  open_[chunk.openIndex] = last;
  last->openIndex = chunk.openIndex;
  open_.pop_back();
  chunk.openIndex = StackChunk::kNotOpen;
}

std::error_code StackPool::acquire(Stack& stack) noexcept {
  bool bulk = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!cache_.empty()) {
      stack = cache_.back();
      cache_.pop_back();
      return {};
    }
    if (!open_.empty()) {
      StackChunk& chunk = *open_.back();
      const std::uint32_t index = chunk.free.back();
      chunk.free.pop_back();
      ++chunk.outstanding;
      if (chunk.free.empty()) closeLocked(chunk);
      stack = slotOf(chunk, index);
      return {};
    }
    bulk = chunks_ != nullptr;
  }
  return carveChunk(stack, guardPages_, bulk);
}

std::error_code StackPool::carveChunk(Stack& stack, bool guards, bool bulk) noexcept {
  // Guard slots are reserved first so that concurrent carvings cannot
  // overshoot the budget; a chunk is all guarded or all canaried.
  const std::size_t guarded =
      guards ? reserveFrom(liveGuards, guardBudget(), slotsPerChunk(stackSize_ + guardReserve())) : 0;
  const std::size_t guard = guarded != 0 ? guardReserve() : 0;
  const std::size_t slotSize = stackSize_ + guard;
  const std::size_t slots = guarded != 0 ? guarded : slotsPerChunk(slotSize);
  const std::size_t size = slots * slotSize;
  void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                       -1, 0);
  if (mapping == MAP_FAILED) {
    const int error = errno;
    if (guarded != 0) liveGuards.fetch_sub(guarded, std::memory_order_relaxed);
    return makeAprError(error);
  }
  StackChunk* chunk = new (std::nothrow) StackChunk;
  if (chunk != nullptr) {
    chunk->base = static_cast<char*>(mapping);
    chunk->size = size;
    chunk->slotSize = slotSize;
    chunk->guard = guard;
    chunk->slots = slots;
    chunk->outstanding = 1;
  }
  int error = chunk != nullptr ? 0 : ENOMEM;
  bool markers = guardMarkersWork();
  for (std::size_t i = 0; error == 0 && guard != 0 && i < slots; ++i) {
    char* const reserve = chunk->base + i * slotSize;
    if (markers && madvise(reserve, guard, MADV_GUARD_INSTALL) == 0) {
      hideReserveFromMemcheck(reserve, guard);
      continue;
    }
    if (!chunk->mappingGuards) {
      // No markers, or refused since the probe (memory locked by
      // mlockall, a seccomp filter): PROT_NONE mappings, within their
      // budget even where markers set none.
      markers = false;
      if (!reserveMappingGuards(slots)) {
        error = ENOMEM;
        break;
      }
      chunk->mappingGuards = true;
    }
    if (mprotect(reserve, guard, PROT_NONE) != 0) error = errno;
  }
  if (error == ENOMEM && guard != 0 && chunk != nullptr) {
    // Out of mappings (vm.max_map_count, with the budget raised past it
    // or the rest of the process using many) or of their budget: canaried
    // stacks instead.
    delete chunk;  // unmaps, gives the guard slots back
    return carveChunk(stack, false, bulk);
  }
  // Before the chunk is published: no other thread runs on its stacks yet.
  if (error == 0 && bulk) prefaultStackTops(*chunk);
  if (error == 0) {
    try {
      chunk->free.reserve(slots);
      for (std::size_t i = slots; i-- > 1;) chunk->free.push_back(static_cast<std::uint32_t>(i));
      std::lock_guard<std::mutex> lock(mutex_);
      if (!chunk->free.empty()) {
        open_.push_back(chunk);
        chunk->openIndex = open_.size() - 1;
      }
      chunk->next = chunks_;
      if (chunks_ != nullptr) chunks_->prev = chunk;
      chunks_ = chunk;
    } catch (const std::bad_alloc&) {
      error = ENOMEM;
    }
  }
  if (error != 0) {
    if (chunk != nullptr) {
      delete chunk;  // unmaps, gives the guard slots back
    } else {
      munmap(mapping, size);
      if (guarded != 0) liveGuards.fetch_sub(guarded, std::memory_order_relaxed);
    }
    return makeAprError(error);
  }
  stack = slotOf(*chunk, 0);
  return {};
}

void StackPool::prefaultStackTops(StackChunk& chunk) const noexcept {
  void* tops[kPrefaultMaxPages];
  const std::size_t count = std::min(chunk.slots, kPrefaultMaxPages);
  for (std::size_t i = 0; i < count; ++i) {
    const StackSpan usable = slotOf(chunk, i).usable;
    tops[i] = static_cast<char*>(usable.base) + usable.size - pageSize();
  }
  prefaultPages(tops, count);
}

namespace {

// A fiber that ended left the redzones of the frames it was in poisoned
// (it never returned from them): the next fiber on this memory would trip
// over them (ASan reports, or CHECK-fails in __asan_handle_no_return at a
// throw).  Purged memory keeps its shadow too.
void unpoison(const Stack& stack) noexcept {
#if defined(EVCHAN_ASAN) || defined(EVCHAN_ASAN_IF_LINKED)
  if (asanRuns()) __asan_unpoison_memory_region(stack.usable.base, stack.usable.size);
#else
  (void)stack;
#endif
}

// Set once a thread's ThreadStacks is destroyed (it is exiting): a task
// that ends later on it (during static destruction, say) uses the pool
// itself.  Trivially destructible, so readable until the thread is gone.
thread_local bool threadStacksGone = false;

// One thread's stacks for acquireOnThread()/releaseOnThread().
struct ThreadStacks {
  StackPool* pool = nullptr;
  std::size_t count = 0;
  Stack stacks[StackPool::kThreadStacks];

  ~ThreadStacks() {
    giveBack();
    threadStacksGone = true;
  }
  void giveBack() noexcept {
    while (count != 0) pool->release(stacks[--count]);
  }
};

ThreadStacks* threadStacks() noexcept {
  if (threadStacksGone) return nullptr;
  static thread_local ThreadStacks stacks;
  return &stacks;
}

}  // namespace

std::error_code StackPool::acquireOnThread(Stack& stack) noexcept {
  ThreadStacks* own = threadStacks();
  if (own != nullptr && own->pool == this && own->count != 0) {
    stack = own->stacks[--own->count];
    return {};
  }
  return acquire(stack);
}

void StackPool::releaseOnThread(Stack& stack) noexcept {
  if (stack.mapping == nullptr) return;
  ThreadStacks* own = threadStacks();
  if (own == nullptr || own->count == kThreadStacks || !canaryIntact(stack)) {
    release(stack);  // exiting, full, or overflowed (purged there)
    return;
  }
  if (own->pool != this) {
    own->giveBack();
    own->pool = this;
  }
  unpoison(stack);
  own->stacks[own->count++] = stack;
  stack = Stack();
}

void StackPool::release(Stack& stack) noexcept {
  if (stack.mapping == nullptr) return;
  unpoison(stack);
  if (canaryIntact(stack)) {
    bool overflowing = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      try {
        cache_.push_back(stack);
        stack = Stack();
      } catch (const std::bad_alloc&) {
        // No room in the cache: purged on its own below.
      }
      overflowing = cache_.size() >= maxCached_ + purgeBatch_;
    }
    if (overflowing) purgeColdest();
  }
  if (stack.mapping != nullptr) {
    // Not cached: an overwritten canary (purging zeroes it again), or no memory.
    Stack alone = stack;
    stack = Stack();
    purge(&alone, 1);
  }
}

void StackPool::purgeColdest() noexcept {
  // Off release()'s common path.  The batch is on the heap (release() may
  // run on a task's small stack); short of memory, a small one here.
  constexpr std::size_t kFallbackBatch = 16;
  std::unique_ptr<Stack[]> onHeap(new (std::nothrow) Stack[purgeBatch_]);
  Stack fallback[kFallbackBatch];
  Stack* const batch = onHeap ? onHeap.get() : fallback;
  std::size_t count = onHeap ? purgeBatch_ : kFallbackBatch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_.size() < maxCached_ + purgeBatch_) return;  // another release took them
    // The coldest ones, those released first.
    count = std::min(count, cache_.size());
    std::copy(cache_.begin(), cache_.begin() + static_cast<std::ptrdiff_t>(count), batch);
    cache_.erase(cache_.begin(), cache_.begin() + static_cast<std::ptrdiff_t>(count));
  }
  purge(batch, count);
}

namespace {

// Chunks to unmap, in ascending address order.  Not copyable: `tail`
// points into the object itself (a copy's would point into the original).
struct DeadChunks {
  StackChunk* head = nullptr;
  StackChunk** tail = &head;
  DeadChunks() = default;
  DeadChunks(const DeadChunks&) = delete;
  DeadChunks& operator=(const DeadChunks&) = delete;
  void append(StackChunk& chunk) noexcept {
    chunk.next = nullptr;
    *tail = &chunk;
    tail = &chunk.next;
  }
  void clear() noexcept {
    head = nullptr;
    tail = &head;
  }
};

// One munmap per run of neighbouring chunks (consecutive reservations
// usually are): each call makes the kernel flush the TLB of every CPU the
// process runs on, which costs more than the pages it frees.
void unmapChunks(DeadChunks& dead) noexcept {
  StackChunk* chunk = dead.head;
  while (chunk != nullptr) {
    char* const begin = chunk->base;
    char* end = begin + chunk->size;
    StackChunk* next = chunk->next;
    while (next != nullptr && next->base == end) {
      end += next->size;
      next = next->next;
    }
    munmap(begin, static_cast<std::size_t>(end - begin));
    while (chunk != next) {
      StackChunk* const following = chunk->next;
      chunk->base = nullptr;  // unmapped above
      delete chunk;
      chunk = following;
    }
  }
  dead.clear();
}

}  // namespace

void StackPool::retireLocked(StackChunk& chunk) noexcept {
  closeLocked(chunk);
  if (chunk.prev != nullptr) chunk.prev->next = chunk.next; else chunks_ = chunk.next;
  if (chunk.next != nullptr) chunk.next->prev = chunk.prev;
}

void StackPool::purge(Stack* batch, std::size_t count) noexcept {
  std::sort(batch, batch + count,
            [](const Stack& a, const Stack& b) { return std::less<void*>()(a.mapping, b.mapping); });
  DeadChunks dead;  // chunks with no slot in use left, unmapped whole
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < count;) {
      StackChunk& chunk = *batch[i].chunk;
      std::size_t end = i;
      while (end < count && batch[end].chunk == &chunk) ++end;
      if (chunk.outstanding == end - i) {
        retireLocked(chunk);
        dead.append(chunk);
        for (std::size_t j = i; j < end; ++j) batch[j] = Stack();
      }
      i = end;
    }
  }
  unmapChunks(dead);
  // One madvise per run of neighbouring slots (their guard reserves
  // between them hold no pages, and keep faulting: PROT_NONE stays, and
  // the kernel keeps guard markers through MADV_DONTNEED).
  for (std::size_t i = 0; i < count;) {
    if (batch[i].mapping == nullptr) {
      ++i;
      continue;
    }
    char* const begin = static_cast<char*>(batch[i].mapping);
    char* end = begin + batch[i].mappingSize;
    std::size_t next = i + 1;
    while (next < count && batch[next].mapping == end) end += batch[next++].mappingSize;
    madvise(begin, static_cast<std::size_t>(end - begin), MADV_DONTNEED);
    i = next;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < count; ++i) {
      if (batch[i].mapping == nullptr) continue;
      StackChunk& chunk = *batch[i].chunk;
      chunk.free.push_back(chunk.indexOf(batch[i]));  // within its capacity: never allocates
      --chunk.outstanding;
      if (chunk.outstanding == 0) {
        // Every other slot came back meanwhile: purged already, unmap it.
        retireLocked(chunk);
        dead.append(chunk);
      } else if (chunk.openIndex == StackChunk::kNotOpen) {
        try {
          open_.push_back(&chunk);
          chunk.openIndex = open_.size() - 1;
        } catch (const std::bad_alloc&) {
          // Stays closed: its free slots wait for the chunk to empty.
        }
      }
    }
  }
  unmapChunks(dead);
}

}  // namespace evchan::detail
