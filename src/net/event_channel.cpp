// SPDX-License-Identifier: Apache-2.0
// EventChannel: the public face of ChannelCore.
#include <evchan/event_channel.h>
#include <evchan/system_error.h>

#include <string>

#include "channel/channel_core.h"
#include "task/spawn.h"

namespace evchan {
namespace {

// The option create() refuses, with its limit, or null when all are in range.
const char* invalidOption(const EventChannelOptions& options) noexcept {
  if (options.initialThreads < 0 || options.initialThreads > kMaxWorkerThreads) {
    return "initialThreads must be 0 to kMaxWorkerThreads (16384)";
  }
  if (options.maxThreads < 0 || options.maxThreads > kMaxWorkerThreads) {
    return "maxThreads must be 0 to kMaxWorkerThreads (16384)";
  }
  if (options.maxThreads > 0 && options.initialThreads > options.maxThreads) {
    return "initialThreads must not exceed maxThreads";
  }
  if (options.idleTimeout < Duration::zero()) return "idleTimeout must not be negative";
  if (options.stuckWorkerGrace < Duration::zero()) return "stuckWorkerGrace must not be negative";
  if (options.taskStackSize > kMaxTaskStackSize) return "taskStackSize must be at most kMaxTaskStackSize (1 GiB)";
  return nullptr;
}

std::shared_ptr<detail::ChannelCore> createCore(const EventChannelOptions& options, std::error_code& ec,
                                                std::string& why) {
  if (const char* invalid = invalidOption(options)) {
    why = invalid;
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  try {
    int threadsStarted = 0;
    std::shared_ptr<detail::ChannelCore> core = detail::ChannelCore::create(options, ec, &threadsStarted);
    if (core) return core;
    if (ec == std::errc::resource_unavailable_try_again) {
      why = "the OS started only " + std::to_string(threadsStarted) + " of " +
            (options.initialThreads > 0 ? std::to_string(options.initialThreads) : std::string("the")) +
            " initial worker threads";
    }
    return nullptr;
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
}

}  // namespace

EventChannel::EventChannel(std::shared_ptr<detail::ChannelCore> core) noexcept : core_(std::move(core)) {}

EventChannel::~EventChannel() {
  core_->shutdown();
  core_->releaseHeldEvents();  // nobody can take them from getEvent() any more
}

std::unique_ptr<EventChannel> EventChannel::create(const Options& options, std::error_code& ec) noexcept {
  std::string why;
  try {
    std::shared_ptr<detail::ChannelCore> core = createCore(options, ec, why);
    return core ? std::unique_ptr<EventChannel>(new EventChannel(std::move(core))) : nullptr;
  } catch (const std::bad_alloc&) {  // from `why`
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
}

std::unique_ptr<EventChannel> EventChannel::create(const Options& options) {
  std::error_code ec;
  std::string why;
  std::shared_ptr<detail::ChannelCore> core = createCore(options, ec, why);
  if (!core) {
    std::string what = std::string("create event channel (backend ") + evchan::backendName(options.backend) + ")";
    if (!why.empty()) what += ": " + why;
    throw SystemError(ec, what);
  }
  return std::unique_ptr<EventChannel>(new EventChannel(std::move(core)));
}

void EventChannel::post(Event& event, std::error_code& ec) noexcept { ec = core_->post(event); }

void EventChannel::post(Event& event) {
  throwIfError(core_->post(event), "post event");
}

Event* EventChannel::getEvent(Duration timeout) { return core_->getEvent(timeout); }

void EventChannel::shutdown() noexcept { core_->shutdown(); }

bool EventChannel::isShutDown() const noexcept { return core_->isShutDown(); }

TaskHandle EventChannel::spawn(std::function<void()> function, const TaskOptions& options,
                               std::error_code& ec) noexcept {
  try {
    const std::size_t stackSize = options.stackSize != 0 ? options.stackSize : core_->taskStackSize();
    if (stackSize > kMaxTaskStackSize) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return TaskHandle();
    }
    return detail::spawnTask(core_, std::move(function), stackSize, ec);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return TaskHandle();
  }
}

TaskHandle EventChannel::spawn(std::function<void()> function, const TaskOptions& options) {
  std::error_code ec;
  TaskHandle task = spawn(std::move(function), options, ec);
  throwIfError(ec, "spawn task");
  return task;
}

const char* EventChannel::backendName() const noexcept { return evchan::backendName(core_->backend()); }

ThreadPoolStats EventChannel::poolStats() const { return core_->stats(); }

}  // namespace evchan
