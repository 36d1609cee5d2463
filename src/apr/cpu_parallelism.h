// SPDX-License-Identifier: Apache-2.0
// Internal: how many CPUs the process may really use.
#ifndef EVCHAN_SRC_APR_CPU_PARALLELISM_H
#define EVCHAN_SRC_APR_CPU_PARALLELISM_H

namespace evchan::detail {

/// The CPUs this process can run on at once, at least 1: on Linux with the
/// native layer the affinity mask, capped by a cgroup v2 cpu.max quota
/// where one is set; elsewhere, and in --disable-posix builds,
/// std::thread::hardware_concurrency(), the machine's count.  Defined per
/// platform.
int detectCpuParallelism() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_CPU_PARALLELISM_H
