// SPDX-License-Identifier: Apache-2.0
// Thread states where the OS offers no cheap probe (or none is written yet):
// always unknown, and the stuck-worker monitor keeps its rule without one
// (a worker past the grace period is presumed blocked, whatever it does).
#include "apr/thread_state.h"

namespace evchan::detail {

std::int64_t currentKernelThreadId() noexcept { return 0; }

KernelThreadState kernelThreadState(std::int64_t) noexcept { return KernelThreadState::unknown; }

}  // namespace evchan::detail
