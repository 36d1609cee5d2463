// SPDX-License-Identifier: Apache-2.0
// Internal: spotting workers stuck in one item (a blocking call nobody
// wrapped in evchan::blocking()), so that the pool compensates for them,
// and telling them from workers that compute or wait for a CPU, for which
// it does not (a thread more cannot make a CPU-bound pool faster).
#ifndef EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H
#define EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include <evchan/duration.h>

#include "apr/thread_state.h"
#include "channel/local_batch_queue.h"

namespace evchan::detail {

/// What one worker publishes about the item (a callback, a task slice) it
/// runs.  `busy` is 0 between items, else the item's start stamp (the
/// monitor's tick count when it began: no clock is read per item); the
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
  // What the item completed or woke, run by this worker after it unless
  // the monitor finds the item past the grace period and shares it.
  LocalBatchQueue batch;
  int blockingDepth = 0;
  // The owning thread's id for kernelThreadState(), taken once where the
  // worker constructs its activity (on its own thread), before the monitor
  // can see it; 0 without a probe.
  const std::int64_t kernelId = currentKernelThreadId();
  // The monitor's own (read and written under the channel's lock by the
  // monitor thread only): the `busy` stamp of the item it last saw asleep
  // in the kernel, and of the item it last counted as running past the
  // grace period.
  std::uint64_t seenWaiting = 0;
  std::uint64_t seenRunnable = 0;

  /// The monitor's verdict on this worker, busy with item `stamp` past the
  /// grace period while work waits, and found in `state` (sampled without
  /// the channel's lock: a worker waiting for that lock would look asleep).
  enum class Verdict {
    stuck,           ///< presume it blocked: start a spare thread
    notYet,          ///< asleep in the kernel for the first time in this item: look again next tick
    runnable,        ///< computing or preempted, already counted for this item
    runnableFirst,   ///< the same, first seen in this item: count it
  };
  /// The rule (docs/event-channel.md, Thread pool): stuck only when seen
  /// asleep in the kernel at two ticks in a row within the same item (a
  /// blocking call, not a lock that happened to be contended at one tick);
  /// runnable is never stuck; unknown (no probe) is stuck, as before there
  /// was one.  Needs the channel's lock.
  Verdict judge(std::uint64_t stamp, KernelThreadState state) noexcept;

  /// Monitor tick `tick` (StuckWorkerMonitor::tick(), never 0) as a
  /// `busy` value: shifted past the flag.
  static std::uint64_t stamp(std::uint64_t tick) noexcept { return tick << 1; }
  /// The tick a `busy` value was stamped at.
  static std::uint64_t tickOf(std::uint64_t busy) noexcept { return busy >> 1; }
  /// Whether an item stamped `busy` (not 0) has run past the grace period
  /// at tick `now`: stamped two ticks ago or earlier (see
  /// StuckWorkerMonitor::tick()).
  static bool pastGrace(std::uint64_t busy, std::uint64_t now) noexcept { return tickOf(busy) + 2 <= now; }
};

/// Why a worker thread was started, for ThreadPoolStats.
enum class StartReason { initial, blockingCall, presumedStuck, growth };
constexpr int kStartReasons = 4;

/// A worker the monitor samples: found under the channel's lock, its
/// kernel state read outside it, judged under it again.
struct StuckCandidate {
  WorkerActivity* activity = nullptr;
  std::uint64_t stamp = 0;
  std::int64_t kernelId = 0;
  KernelThreadState state = KernelThreadState::unknown;
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
  /// How many times the monitor has looked, from 1: it adds one when it
  /// starts ticking and before each scan, a grace period after the
  /// previous one.  An item stamped at tick `s` and still running at a
  /// scan of tick `s + 2` has run for a whole tick interval, so past the
  /// grace period.  Workers read it at every item's start: one load (a
  /// plain move on x86), where a clock read costs tens of nanoseconds on
  /// some hosts.  seq_cst on both sides: a worker's next item, begun after
  /// the monitor saw its previous one, reads a later tick.
  std::uint64_t tick() const noexcept { return tick_.load(std::memory_order_seq_cst); }

 private:
  void wake() noexcept;
  void run() noexcept;
  void advanceTick() noexcept { tick_.store(tick_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst); }

  const Duration grace_;
  const std::function<bool()> scan_;
  std::atomic<bool> armed_{false};  // ticking: some worker may be busy
  std::atomic<std::uint64_t> tick_{1};  // written by the monitor thread only
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::mutex joinMutex_;
  std::thread thread_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_STUCK_WORKER_MONITOR_H
