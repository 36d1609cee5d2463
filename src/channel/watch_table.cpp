// SPDX-License-Identifier: Apache-2.0
// WatchTable: the live and retired lists of a channel's watches.
#include "channel/watch_table.h"

#include <utility>

namespace evchan::detail {

WatchTable::~WatchTable() {
  for (Watch* list : {live_, retired_}) {
    while (list != nullptr) {
      Watch* next = list->next;
      delete list;
      list = next;
    }
  }
}

void WatchTable::addLocked(Watch& watch) noexcept {
  watch.next = live_;
  if (live_ != nullptr) live_->prev = &watch;
  live_ = &watch;
}

void WatchTable::unlinkLocked(Watch& watch) noexcept {
  if (watch.prev != nullptr) watch.prev->next = watch.next; else live_ = watch.next;
  if (watch.next != nullptr) watch.next->prev = watch.prev;
}

void WatchTable::retireLocked(Watch& watch) noexcept {
  watch.prev = nullptr;
  watch.next = retired_;
  retired_ = &watch;
}

Watch* WatchTable::takeRetired() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(retired_, nullptr);
}

}  // namespace evchan::detail
