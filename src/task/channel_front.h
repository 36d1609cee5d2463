// SPDX-License-Identifier: Apache-2.0
// Internal: what a task knows of the EventChannel it was spawned on.
#ifndef EVCHAN_SRC_TASK_CHANNEL_FRONT_H
#define EVCHAN_SRC_TASK_CHANNEL_FRONT_H

#include <atomic>
#include <memory>

#include <evchan/event_channel.h>

namespace evchan::detail {

class ChannelCore;

/// Shared by an EventChannel and every task spawned on it, so that a task
/// still unwinding after the EventChannel object is gone (destroyed from
/// one of its own tasks) finds out instead of touching freed memory.
struct ChannelFront {
  ChannelFront(std::shared_ptr<ChannelCore> channelCore, EventChannel* owner, UnhandledExceptionHandler handler)
      : core(std::move(channelCore)), channel(owner), onUnhandledException(std::move(handler)) {}

  const std::shared_ptr<ChannelCore> core;
  /// The EventChannel object; null once its destructor has shut it down.
  std::atomic<EventChannel*> channel;
  /// EventChannelOptions::onUnhandledException; empty for the default.
  const UnhandledExceptionHandler onUnhandledException;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_CHANNEL_FRONT_H
