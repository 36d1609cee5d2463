// SPDX-License-Identifier: Apache-2.0
// ChannelCore's polling: one poll of the backend (readiness, or the
// completion path's completions) and of the timers, and the sockets
// registered with the poller.
#include <thread>
#include <utility>
#include <vector>

#include <evchan/error.h>

#include "apr/descriptor_passing.h"
#include "channel/channel_core.h"
#include "channel/io_attempts.h"

namespace evchan::detail {

void ChannelCore::pollOnce(Deadline deadline) noexcept {
  freeRetiredWatches();
  if (completion_ != nullptr) {
    pollCompletions(deadline);
  } else {
    if (poller_->wait(readyBatch_, deadline)) {
      std::this_thread::yield();  // a failing poller must not spin a core flat out
    }
    for (const Readiness& readiness : readyBatch_) handleReadiness(readiness);
  }

  std::vector<TimerEvent*> expired;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Deadline now = Clock::now();
    timers_.takeDueLocked(now, expired);
  }
  for (TimerEvent* timer : expired) complete(*timer, {});
}

void ChannelCore::handleReadiness(const Readiness& readiness) noexcept {
  Watch& watch = *readiness.watch;
  Event* done[2];
  std::error_code results[2];
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(watch.mutex);
    if (watch.retired) return;
    const bool edge = poller_->edgeTriggered();
    if (readiness.flags & (kHungUp | kUrgent)) watch.alwaysTry = true;
    if (readiness.flags & kReadable) {
      watch.readHint.store(true, std::memory_order_relaxed);
      if (watch.reader != nullptr) {
        const AttemptResult attempt = attemptRead(*watch.reader, watch);
        if (edge) watch.readHint.store(!attempt.drained || watch.alwaysTry, std::memory_order_relaxed);
        if (attempt.done) {
          done[count] = std::exchange(watch.reader, nullptr);
          results[count++] = attempt.error;
        }
      }
    }
    if (readiness.flags & kWritable) {
      watch.writeHint.store(true, std::memory_order_relaxed);
      if (watch.writer != nullptr) {
        const AttemptResult attempt = attemptWrite(*watch.writer, watch);
        if (edge) watch.writeHint.store(!attempt.drained || watch.alwaysTry, std::memory_order_relaxed);
        if (attempt.done) {
          done[count] = std::exchange(watch.writer, nullptr);
          results[count++] = attempt.error;
        }
      }
    }
    if (!edge && count > 0) poller_->setInterest(watch, interestOf(watch));
  }
  for (int i = 0; i < count; ++i) {
    if (done[i]->kind() == Event::Kind::Connect && results[i]) {
      EventAccess::connected(static_cast<ConnectEvent&>(*done[i])).close();
    }
    complete(*done[i], results[i]);
  }
}

Watch* ChannelCore::addWatch(apr_socket_t* socket, std::error_code& ec) {
  apr_os_sock_t fd;
  if ((ec = makeAprError(apr_os_sock_get(&fd, socket)))) return nullptr;
  std::lock_guard<std::mutex> lock(watches_.mutex());
  if (shutDown_.load(std::memory_order_acquire)) {
    ec = Errc::channel_shut_down;
    return nullptr;
  }
  auto watch = std::make_unique<Watch>(socket, fd, socketPassesDescriptors(fd));
  if ((ec = poller_->add(*watch))) return nullptr;
  watches_.addLocked(*watch);
  return watch.release();
}

void ChannelCore::retireWatch(Watch* watch) noexcept {
  if (completion_ != nullptr) {
    retireRingWatch(watch);
    return;
  }
  Event* pending[2];
  {
    std::lock_guard<std::mutex> lock(watch->mutex);
    watch->retired = true;
    pending[0] = std::exchange(watch->reader, nullptr);
    pending[1] = std::exchange(watch->writer, nullptr);
  }
  bool freeNow = false;
  {
    std::lock_guard<std::mutex> lock(watches_.mutex());
    if (poller_) poller_->remove(*watch);
    // Unlink from the live list; keep it until no poll can report it.
    watches_.unlinkLocked(*watch);
    if (poller_) {
      watches_.retireLocked(*watch);
    } else {
      freeNow = true;  // shut down: no poll is left to report it
    }
  }
  if (freeNow) delete watch;
  for (Event* event : pending) {
    if (event != nullptr) complete(*event, std::make_error_code(std::errc::operation_canceled));
  }
}

void ChannelCore::freeRetiredWatches() noexcept {
  Watch* list = watches_.takeRetired();
  while (list != nullptr) {
    Watch* next = list->next;
    bool inRing = false;
    if (completion_ != nullptr) {
      std::lock_guard<std::mutex> lock(list->mutex);
      inRing = list->ringOps > 0;
    }
    if (inRing) {
      // Its operations' completions will still name it.
      std::lock_guard<std::mutex> lock(watches_.mutex());
      watches_.retireLocked(*list);
    } else {
      delete list;
    }
    list = next;
  }
}

}  // namespace evchan::detail
