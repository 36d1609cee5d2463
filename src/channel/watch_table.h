// SPDX-License-Identifier: Apache-2.0
// Internal: the sockets registered with a channel's poller.
#ifndef EVCHAN_SRC_CHANNEL_WATCH_TABLE_H
#define EVCHAN_SRC_CHANNEL_WATCH_TABLE_H

#include <mutex>

#include "poller/watch.h"

namespace evchan::detail {

/// The watches of a channel: the live ones, linked through Watch::prev and
/// next, and the retired ones (their sockets closed) kept until no poll can
/// report them any more.  Owns every watch on either list and deletes what
/// is left when destroyed.  `Locked` members need mutex() held; that lock
/// also keeps ChannelCore's poller from being deleted (see the lock order
/// in channel/channel_core.h).
class WatchTable {
 public:
  WatchTable() = default;
  WatchTable(const WatchTable&) = delete;
  WatchTable& operator=(const WatchTable&) = delete;
  ~WatchTable();

  std::mutex& mutex() noexcept { return mutex_; }
  /// Adds a new watch to the live list; the table owns it from now on.
  void addLocked(Watch& watch) noexcept;
  /// Takes a live watch off the live list (the caller retires or deletes it).
  void unlinkLocked(Watch& watch) noexcept;
  /// Puts an unlinked watch on the retired list.
  void retireLocked(Watch& watch) noexcept;
  /// The first live watch (follow Watch::next), or null.
  Watch* firstLiveLocked() const noexcept { return live_; }
  /// Takes the whole retired list (linked through Watch::next); locks.
  Watch* takeRetired() noexcept;

 private:
  std::mutex mutex_;
  Watch* live_ = nullptr;
  Watch* retired_ = nullptr;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_WATCH_TABLE_H
