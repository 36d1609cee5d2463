// EventChannel: the public face of ChannelCore.
#include <evchan/event_channel.h>
#include <evchan/system_error.h>

#include "channel/channel_core.h"
#include "task/spawn.h"

namespace evchan {

EventChannel::EventChannel(std::shared_ptr<detail::ChannelCore> core) noexcept : core_(std::move(core)) {}

EventChannel::~EventChannel() {
  core_->shutdown();
  core_->releaseHeldEvents();  // nobody can take them from getEvent() any more
}

std::unique_ptr<EventChannel> EventChannel::create(const Options& options, std::error_code& ec) noexcept {
  try {
    std::shared_ptr<detail::ChannelCore> core = detail::ChannelCore::create(options, ec);
    if (!core) return nullptr;
    return std::unique_ptr<EventChannel>(new EventChannel(std::move(core)));
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
}

std::unique_ptr<EventChannel> EventChannel::create(const Options& options) {
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = create(options, ec);
  if (ec) throw SystemError(ec, std::string("create event channel (backend ") + evchan::backendName(options.backend) + ")");
  return channel;
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
