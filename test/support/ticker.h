// SPDX-License-Identifier: Apache-2.0
// A task that ticks every millisecond until stopped: proof that its
// worker is free while another task of the channel waits or works.
#ifndef EVCHAN_TEST_SUPPORT_TICKER_H
#define EVCHAN_TEST_SUPPORT_TICKER_H

#include <atomic>
#include <chrono>

#include <evchan/evchan.h>

#include "support/waiting.h"

namespace evchan::test {

struct Ticker {
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
  TaskHandle task;

  explicit Ticker(EventChannel& channel) {
    task = channel.spawn([this] {
      while (!stop.load()) {
        this_task::sleepFor(std::chrono::milliseconds(1));
        ++ticks;
      }
    });
  }
  /// Stops the ticks and joins the task.
  void end() {
    stop = true;
    joinWithin(task);
  }
};

/// Whether `ticker` ticks more than `count` times after `ticksAtStart`
/// comes true (set by the task under test when it starts: not -1), within
/// `patience`.
inline bool ticksBeside(const Ticker& ticker, const std::atomic<int>& ticksAtStart, int count, Duration patience) {
  return eventually([&] {
    const int atStart = ticksAtStart.load();
    return atStart >= 0 && ticker.ticks.load() > atStart + count;
  }, patience);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_TICKER_H
