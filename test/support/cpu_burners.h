// SPDX-License-Identifier: Apache-2.0
// CpuBurners: threads that keep every CPU busy, so that the test's own
// threads are preempted at random points (the noisy neighbours of the
// pool-policy suite; oversubscribed CPUs for the cancellation races).
// (One CPU for a test's threads: OneCpu in race_scheduling.h.)
#ifndef EVCHAN_TEST_SUPPORT_CPU_BURNERS_H
#define EVCHAN_TEST_SUPPORT_CPU_BURNERS_H

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace evchan::test {

/// The CPUs this process may run on: its affinity mask where the host
/// has one (a container's, a taskset's), else every CPU of the host.
inline int usableCpuCount() {
#if defined(__linux__)
  cpu_set_t mine;
  if (sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) > 0) return CPU_COUNT(&mine);
#endif
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

/// Threads that burn CPU until destroyed.
class CpuBurners {
 public:
  explicit CpuBurners(int count) {
    try {
      for (int i = 0; i < count; ++i) {
        threads_.emplace_back([this] {
          std::uint64_t spins = 0;
          while (!stop_.load(std::memory_order_relaxed)) ++spins;
          sink_.fetch_add(spins, std::memory_order_relaxed);
        });
      }
    } catch (...) {
      stopAll();  // the ones started, before the failure goes on
      throw;
    }
  }
  ~CpuBurners() { stopAll(); }
  CpuBurners(const CpuBurners&) = delete;
  CpuBurners& operator=(const CpuBurners&) = delete;

 private:
  void stopAll() {
    stop_.store(true);
    for (std::thread& thread : threads_) thread.join();
  }

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sink_{0};
  std::vector<std::thread> threads_;
};


}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_CPU_BURNERS_H
