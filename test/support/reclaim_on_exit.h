// SPDX-License-Identifier: Apache-2.0
// A guard that gets every event back from a channel when a test ends.
#ifndef EVCHAN_TEST_SUPPORT_RECLAIM_ON_EXIT_H
#define EVCHAN_TEST_SUPPORT_RECLAIM_ON_EXIT_H

#include <chrono>

#include <evchan/event_channel.h>

namespace evchan::test {

/// Declare it after a test's events and sockets.  Whatever happens (a
/// failed assertion too) it shuts the channel down and takes back every
/// event the channel still holds before those go out of scope: destroying
/// an event in flight aborts the process.
class ReclaimOnExit {
 public:
  explicit ReclaimOnExit(EventChannel& channel) : channel_(channel) {}
  ~ReclaimOnExit() {
    channel_.shutdown();
    while (channel_.getEvent(std::chrono::seconds(0)) != nullptr) {
    }
  }
  ReclaimOnExit(const ReclaimOnExit&) = delete;
  ReclaimOnExit& operator=(const ReclaimOnExit&) = delete;

 private:
  EventChannel& channel_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_RECLAIM_ON_EXIT_H
