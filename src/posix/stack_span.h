// SPDX-License-Identifier: Apache-2.0
// Internal: a span of stack memory, as fibers and their annotations see it.
#ifndef EVCHAN_SRC_POSIX_STACK_SPAN_H
#define EVCHAN_SRC_POSIX_STACK_SPAN_H

#include <cstddef>

namespace evchan::detail {

/// The usable part of a stack: [base, base + size), growing down from the top.
struct StackSpan {
  void* base = nullptr;
  std::size_t size = 0;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_SPAN_H
