// SPDX-License-Identifier: Apache-2.0
// forkGeneration(): a count of the forks that led to this process.
#include <atomic>

#include "apr/fork_hooks.h"

namespace evchan::detail {
namespace {

std::atomic<std::uint64_t> generation{0};

void nothing() {}
void countInChild() { generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::uint64_t forkGeneration() noexcept {
  static const bool counted = holdAcrossFork(&nothing, &nothing, &countInChild);
  (void)counted;
  return generation.load(std::memory_order_relaxed);
}

}  // namespace evchan::detail
