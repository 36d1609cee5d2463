// SPDX-License-Identifier: Apache-2.0
// Internal: making pages resident ahead of their first write.
#ifndef EVCHAN_SRC_POSIX_PREFAULT_PAGES_H
#define EVCHAN_SRC_POSIX_PREFAULT_PAGES_H

#include <cstddef>

namespace evchan::detail {

/// Makes the `count` pages starting at `pages[i]` (page-aligned, writable,
/// private anonymous memory) resident and writable now, in as few system
/// calls as the kernel allows, so that their first writes take no page
/// fault.  Worth it where a fault costs much more than the kernel's own
/// populating: in the virtual machine (PVM) measured, 16-24 us for a first
/// write that faults, 9 us for one populated in a batch of 64 first
/// (bench/parked_tasks_bench prints both).  Best effort: where the kernel
/// cannot, the pages fault on first use as before.  At most
/// kPrefaultMaxPages.
void prefaultPages(void* const* pages, std::size_t count) noexcept;
constexpr std::size_t kPrefaultMaxPages = 64;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_PREFAULT_PAGES_H
