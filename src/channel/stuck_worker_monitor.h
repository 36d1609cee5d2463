// SPDX-License-Identifier: Apache-2.0
// Internal: spotting workers stuck in one item (a blocking call nobody
// wrapped in evchan::blocking()), so that the pool compensates for them.
#ifndef EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H
#define EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include <evchan/duration.h>

namespace evchan::detail {

/// What one worker publishes about the item (a callback, a task slice) it
/// runs.  `busy` is 0 between items, else the item's start stamp; the
/// monitor sets kPresumedBlocked in it (a CAS, under the channel's lock,
/// adding the worker to the blocked count), and the worker takes the bit
/// back with the exchange that ends the item.  Both sides use seq_cst: the
/// worker's store of `busy` and the monitor's disarming must not both miss
/// each other (see StuckWorkerMonitor::noteBusy()).
struct WorkerActivity {
  static constexpr std::uint64_t kPresumedBlocked = 1;
  std::atomic<std::uint64_t> busy{0};
  // The owning thread's own: inside an item; inside blocking calls.
  bool inItem = false;
  int blockingDepth = 0;

  /// Now, as a `busy` value: monotonic nanoseconds, shifted past the flag.
  static std::uint64_t stamp() noexcept;
  /// `duration` in stamp units.
  static std::uint64_t span(Duration duration) noexcept;
};

/// One thread per channel that calls `scan` every `grace` while some worker
/// is busy, and sleeps on a condition variable otherwise: an idle channel
/// costs no wake-ups.  `scan` marks the stuck workers and returns whether
/// any worker is still busy.
class StuckWorkerMonitor {
 public:
  StuckWorkerMonitor(Duration grace, std::function<bool()> scan);
  ~StuckWorkerMonitor();
  StuckWorkerMonitor(const StuckWorkerMonitor&) = delete;
  StuckWorkerMonitor& operator=(const StuckWorkerMonitor&) = delete;

  /// Starts the thread; false when the OS refuses it.
  bool start() noexcept;
  /// A worker has published a busy stamp: starts ticking if it is not.
  void noteBusy() noexcept {
    if (armed_.load(std::memory_order_seq_cst) || armed_.exchange(true, std::memory_order_seq_cst)) return;
    wake();
  }
  /// Stops and joins the thread.  Idempotent, any thread but its own.
  void stop() noexcept;

 private:
  void wake() noexcept;
  void run() noexcept;

  const Duration grace_;
  const std::function<bool()> scan_;
  std::atomic<bool> armed_{false};  // ticking: some worker may be busy
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::mutex joinMutex_;
  std::thread thread_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H
