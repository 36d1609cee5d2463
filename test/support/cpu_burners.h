// SPDX-License-Identifier: Apache-2.0
// CpuBurners: threads that keep every CPU busy, so that the test's own
// threads are preempted at random points (the noisy neighbours of the
// pool-policy suite; oversubscribed CPUs for the cancellation races).
#ifndef EVCHAN_TEST_SUPPORT_CPU_BURNERS_H
#define EVCHAN_TEST_SUPPORT_CPU_BURNERS_H

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace evchan::test {

/// Threads that burn CPU until destroyed.
class CpuBurners {
 public:
  explicit CpuBurners(int count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this] {
        std::uint64_t spins = 0;
        while (!stop_.load(std::memory_order_relaxed)) ++spins;
        sink_.fetch_add(spins, std::memory_order_relaxed);
      });
    }
  }
  ~CpuBurners() {
    stop_.store(true);
    for (std::thread& thread : threads_) thread.join();
  }
  CpuBurners(const CpuBurners&) = delete;
  CpuBurners& operator=(const CpuBurners&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sink_{0};
  std::vector<std::thread> threads_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_CPU_BURNERS_H
