// SPDX-License-Identifier: Apache-2.0
// prefaultPages() where the kernel has no way to populate pages ahead in a
// batch: they fault on first write, as they would without it.
#include "posix/prefault_pages.h"

namespace evchan::detail {

void prefaultPages(void* const*, std::size_t) noexcept {}

}  // namespace evchan::detail
