// SPDX-License-Identifier: Apache-2.0
// The stuck-worker monitor's thread: ticks while workers are busy, sleeps
// while the channel is idle.
#include "channel/stuck_worker_monitor.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace evchan::detail {

WorkerActivity::Verdict WorkerActivity::judge(std::uint64_t stamp, KernelThreadState state) noexcept {
  switch (state) {
    case KernelThreadState::runnable:
      seenWaiting = 0;
      if (seenRunnable == stamp) return Verdict::runnable;
      seenRunnable = stamp;
      return Verdict::runnableFirst;
    case KernelThreadState::waiting:
      if (seenWaiting == stamp) return Verdict::stuck;
      seenWaiting = stamp;
      return Verdict::notYet;
    case KernelThreadState::unknown:
      break;
  }
  return Verdict::stuck;
}

StuckWorkerMonitor::StuckWorkerMonitor(Duration grace, std::function<bool()> scan)
    : grace_(std::min<Duration>(grace, std::chrono::hours(24))), scan_(std::move(scan)) {}

StuckWorkerMonitor::~StuckWorkerMonitor() { stop(); }

bool StuckWorkerMonitor::start() noexcept {
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    return false;
  }
  return true;
}

void StuckWorkerMonitor::wake() noexcept {
  // Through the mutex: the monitor is either before its predicate check
  // (and sees armed_) or waiting (and gets the notification).
  { std::lock_guard<std::mutex> lock(mutex_); }
  changed_.notify_one();
}

void StuckWorkerMonitor::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_one();
  std::lock_guard<std::mutex> lock(joinMutex_);
  if (thread_.joinable()) thread_.join();
}

void StuckWorkerMonitor::run() noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Idle: sleep until a worker starts an item.
    changed_.wait(lock, [&] { return stopping_ || armed_.load(std::memory_order_seq_cst); });
    if (stopping_) return;
    // The item that armed the monitor began before this tick: the first
    // scan, a grace period on, may take it (see tick()).
    advanceTick();
    // Busy: look every grace period.
    if (changed_.wait_for(lock, grace_, [&] { return stopping_; })) return;
    lock.unlock();
    advanceTick();
    if (!scan_()) {
      // Nobody busy: disarm, then look once more.  A worker that published
      // its stamp before the disarming is seen by this scan; one that
      // publishes after it finds armed_ false and re-arms.
      armed_.store(false, std::memory_order_seq_cst);
      if (scan_()) armed_.store(true, std::memory_order_seq_cst);
    }
    lock.lock();
  }
}

}  // namespace evchan::detail
