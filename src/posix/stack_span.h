// SPDX-License-Identifier: Apache-2.0
// Internal: a span of stack memory, as fibers and their annotations see it.
#ifndef EVCHAN_SRC_POSIX_STACK_SPAN_H
#define EVCHAN_SRC_POSIX_STACK_SPAN_H

#include <cstddef>
#include <cstdint>

namespace evchan::detail {

/// The usable part of a stack: [base, base + size), growing down from the top.
struct StackSpan {
  void* base = nullptr;
  std::size_t size = 0;
};

/// Takes room for an object of `bytes` off the top of `stack` (aligned
/// down to `alignment`, a power of two) and returns where it starts; the
/// span keeps what lies below.  Null, `stack` unchanged, when less than
/// `minimumLeft` bytes would be left.  For what lives exactly as long as a
/// fiber runs on the stack: it shares the page the fiber's first frames
/// keep resident anyway.
inline void* carveStackTop(StackSpan& stack, std::size_t bytes, std::size_t alignment,
                           std::size_t minimumLeft) noexcept {
  if (stack.base == nullptr || stack.size < bytes + alignment + minimumLeft) return nullptr;
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(stack.base);
  const std::uintptr_t place = (base + stack.size - bytes) & ~(std::uintptr_t{alignment} - 1);
  if (place - base < minimumLeft) return nullptr;
  stack.size = place - base;
  return reinterpret_cast<void*>(place);
}

/// Lowers the top of `stack` by a multiple of 64 bytes, from 0 to 1,984,
/// picked by the stack's address: its colour.  Stacks are page-aligned
/// slots a power of two apart, so without it the same frame of every
/// parked task (a read's event, its wait, its saved context) sits at the
/// same offset in its page.  Cache sets are picked by address bits that
/// include the offset in the page (all of them for a level 1; six of them
/// for a physically indexed level 2), so those frames would compete for a
/// sixty-fourth of each cache, and with hundreds of tasks parked a
/// wake-up could find its task's frames evicted by the others'.
/// Coloured, they spread over most of the sets.  The colour stays under
/// half a page, so that the frames of a task parked in a sleep or a read
/// still fit in the one page its stack top touches.
inline void colourStackTop(StackSpan& stack) noexcept {
  constexpr std::size_t kLine = 64;
  constexpr std::size_t kColours = 32;
  if (stack.base == nullptr || stack.size < 4 * kColours * kLine) return;
  // Fibonacci hashing of the page number: neighbouring slots get
  // colours far apart.
  const std::uint64_t page = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(stack.base)) >> 12;
  const std::size_t colour = static_cast<std::size_t>((page * 0x9E3779B97F4A7C15ULL) >> 59);
  stack.size -= colour * kLine;
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_SPAN_H
