// SPDX-License-Identifier: Apache-2.0
// Event, WriteEvent and NotifyEvent members.
#include <evchan/error.h>
#include <evchan/event.h>
#include <evchan/notify_event.h>
#include <evchan/socket_events.h>
#include <evchan/system_error.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "channel/channel_core.h"

namespace evchan {

Event::~Event() {
  // A shut-down channel that merely holds it for getEvent() lets it go.
  if (inFlight() && !detail::ChannelCore::forgetHeldEvent(*this)) {
    // The channel still holds a pointer to this event; carrying on would
    // let it write into freed memory later.
    std::fprintf(stderr, "evchan: an Event was destroyed while in flight (posted, not yet handed back)\n");
    std::abort();
  }
}

void Event::setCallback(Callback callback) {
  if (inFlight()) throw SystemError(Errc::already_in_flight, "set callback");
  callback_ = std::move(callback);
}

void WriteEvent::setBuffers(const ConstBuffer* buffers, std::size_t count) noexcept {
  buffers_ = buffers;
  count_ = count;
  first_ = nullptr;
  size_ = 0;
  bool refused = buffers == nullptr && count != 0;
  for (std::size_t i = 0; i < count && !refused; ++i) {
    refused = buffers[i].data == nullptr && buffers[i].size != 0;
    if (first_ == nullptr && buffers[i].size != 0) first_ = buffers[i].data;
    size_ = buffers[i].size > SIZE_MAX - size_ ? SIZE_MAX : size_ + buffers[i].size;  // the kernel refuses that much
  }
  // post() refuses a null buffer() with a non-zero size(): Errc::null_buffer.
  if (refused) {
    first_ = nullptr;
    size_ = size_ != 0 ? size_ : count;
  }
}

bool NotifyEvent::wait(Duration timeout) {
  detail::ChannelCore* channel = detail::ChannelCore::currentWorkerChannel();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (isSet_) return true;
    if (timeout <= Duration::zero()) return false;
  }
  if (channel != nullptr) channel->trackWaiter(this, true);
  detail::ChannelCore::enterBlocking();
  bool posted;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // Released by its own channel's shutdown only (notify_event.h): a
    // flag on the event would release every other waiter too, and every
    // later one until reset().
    const auto ready = [&] { return isSet_ || (channel != nullptr && channel->isShutDown()); };
    const detail::Deadline deadline = detail::deadlineAfter(timeout);
    if (deadline == detail::kNoDeadline) {
      signalled_.wait(lock, ready);
    } else {
      signalled_.wait_until(lock, deadline, ready);
    }
    posted = isSet_;
  }
  detail::ChannelCore::leaveBlocking();
  if (channel != nullptr) channel->trackWaiter(this, false);
  return posted;
}

bool NotifyEvent::isSignalled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return isSet_;
}

void NotifyEvent::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  isSet_ = false;
  released_ = false;
}

}  // namespace evchan
