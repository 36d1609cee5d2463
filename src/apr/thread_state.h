// SPDX-License-Identifier: Apache-2.0
// Internal: whether a thread is asleep in the kernel or runnable, as the OS
// tells it, for the stuck-worker monitor (src/channel) to tell a worker
// blocked in a system call from one that computes or waits for a CPU.
#ifndef EVCHAN_SRC_APR_THREAD_STATE_H
#define EVCHAN_SRC_APR_THREAD_STATE_H

#include <cstdint>

namespace evchan::detail {

/// What the OS says one thread is doing at the moment it is asked.
enum class KernelThreadState {
  unknown,   ///< no probe on this platform, the thread is gone, or a state the rule does not name
  runnable,  ///< on a CPU or waiting for one (Linux "R"): computing or preempted
  waiting,   ///< asleep in the kernel (Linux "S" or "D"): a blocking call, a lock, a sleep
};

/// The calling thread's id for kernelThreadState(), 0 where the platform
/// has no probe.  One system call (gettid on Linux): taken once per worker.
std::int64_t currentKernelThreadId() noexcept;

/// The state of thread `id` (from currentKernelThreadId(), of this
/// process) now; unknown for 0.  On Linux one open, read and close of
/// /proc/self/task/<id>/stat: microseconds, so call it from a monitoring
/// thread, never on a hot path.  Defined per platform
/// (src/linux/thread_state.cpp; src/apr/thread_state_generic.cpp answers
/// unknown everywhere else).
KernelThreadState kernelThreadState(std::int64_t id) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_THREAD_STATE_H
