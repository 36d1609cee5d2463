// SPDX-License-Identifier: Apache-2.0
// A one-shot flag that one thread (a callback, a task) opens and another
// waits for with a plain, unannounced blocking wait.
#ifndef EVCHAN_TEST_SUPPORT_LATCH_H
#define EVCHAN_TEST_SUPPORT_LATCH_H

#include <condition_variable>
#include <mutex>

#include <evchan/duration.h>

namespace evchan::test {

/// Notifies under the lock, so the waiter may destroy it as soon as
/// waitFor() returns.
class Latch {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    opened_.notify_all();
  }
  /// Whether it opened within `patience` (not stretched: callers pass
  /// generous(...) where the machine's speed matters).
  bool waitFor(Duration patience) {
    std::unique_lock<std::mutex> lock(mutex_);
    return opened_.wait_for(lock, patience, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_LATCH_H
