// SPDX-License-Identifier: Apache-2.0
// Internal: how a close() waits for the calls it cancelled to leave.
#ifndef EVCHAN_SRC_NET_CLOSE_WAIT_H
#define EVCHAN_SRC_NET_CLOSE_WAIT_H

#include <chrono>
#include <thread>

#include <evchan/task.h>

#include "channel/channel_core.h"
#include "task/await.h"

namespace evchan::detail {

/// Returns once `done()`.  A close() waits here for the cancelled calls to
/// leave (or for another thread's close() to finish), which takes moments
/// (a thread's poll returning, a task being resumed): a task lets its
/// worker run them meanwhile (they may be tasks on the same worker),
/// yielding, then napping: a worker that always has a ready task to run
/// may not poll, and on io_uring the cancelled calls come back only
/// through the ring.  A thread yields, then naps, counted as blocked when
/// it is a worker (an event callback closing the object).
template <class Done>
void waitUntil(Done done) noexcept {
  if (done()) return;  // the usual close(): nothing to wait for
  if (inTask()) {
    // The close must finish: neither the task's cancel() nor its deadline
    // ends this wait (they would leave it spinning as a thread on a worker
    // that the calls it waits for may need).
    const this_task::CancellationShield shield;
    try {
      for (int round = 0; !done(); ++round) {
        if (round < 16) {
          this_task::yield();
        } else {
          this_task::sleepFor(std::chrono::microseconds(200));
        }
      }
      return;
    } catch (...) {
      // The task's channel is shutting down: its calls no longer suspend.
    }
    // The calls this waits for may be tasks queued on this very worker (the
    // shutdown cancelled their waits), with no other worker left to run
    // them: a wait as a thread here would never end, and the shutdown
    // with it.  So the task still yields (the shutdown runs what is
    // queued until the queue is empty), napping between yields once the
    // wait is not brief.
    for (int round = 0; !done(); ++round) {
      if (!yieldThroughShutdown()) break;
      if (round >= 64) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (done()) return;
  }
  ChannelCore::enterBlocking();
  for (int round = 0; !done(); ++round) {
    if (round < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  ChannelCore::leaveBlocking();
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_CLOSE_WAIT_H
