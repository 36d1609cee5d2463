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

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_SPAN_H
