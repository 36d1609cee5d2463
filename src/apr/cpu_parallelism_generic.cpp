// SPDX-License-Identifier: Apache-2.0
// CPU parallelism where the OS offers nothing better than the standard library.
#include "apr/cpu_parallelism.h"

#include <algorithm>
#include <thread>

namespace evchan::detail {

int detectCpuParallelism() noexcept { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

}  // namespace evchan::detail
