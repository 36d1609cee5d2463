// SPDX-License-Identifier: Apache-2.0
// Internal: the shared part of the level-triggered pollers (poll, select):
// a set of (socket, interest) that posting threads change and the polling
// thread snapshots before each wait.
#ifndef EVCHAN_SRC_POSIX_INTEREST_SET_POLLER_H
#define EVCHAN_SRC_POSIX_INTEREST_SET_POLLER_H

#include <mutex>
#include <unordered_map>
#include <vector>

#include "poller/poller.h"

namespace evchan::detail {

class InterestSetPoller : public Poller {
 public:
  bool edgeTriggered() const noexcept override { return false; }
  std::error_code add(Watch& watch) noexcept override;
  std::error_code setInterest(Watch& watch, unsigned interest) noexcept override;
  void remove(Watch& watch) noexcept override;
  std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept override;

 protected:
  struct Entry {
    Watch* watch;
    apr_os_sock_t fd;
    unsigned interest;
  };

  /// Rejects descriptors the mechanism cannot watch (select: FD_SETSIZE).
  virtual std::error_code checkDescriptor(apr_os_sock_t fd) const noexcept = 0;
  /// Waits on `entries` (a snapshot owned by the polling thread).
  virtual std::error_code waitOn(const std::vector<Entry>& entries, std::vector<Readiness>& ready,
                                 Deadline deadline) noexcept = 0;

 private:
  std::mutex mutex_;
  std::unordered_map<Watch*, Entry> interest_;
  bool changed_ = false;
  bool waiting_ = false;
  std::vector<Entry> snapshot_;  // touched by the polling thread only
};

/// A self-pipe that wakes a poll() or select(); both ends non-blocking.
class WakeupPipe {
 public:
  WakeupPipe() = default;
  ~WakeupPipe();
  WakeupPipe(const WakeupPipe&) = delete;
  WakeupPipe& operator=(const WakeupPipe&) = delete;

  std::error_code open() noexcept;
  int readEnd() const noexcept { return fds_[0]; }
  void signal() noexcept;
  void drain() noexcept;

 private:
  int fds_[2] = {-1, -1};
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_INTEREST_SET_POLLER_H
