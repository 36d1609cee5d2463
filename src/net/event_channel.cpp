// SPDX-License-Identifier: Apache-2.0
// EventChannel: the public face of ChannelCore.
#include <evchan/event_channel.h>
#include <evchan/system_error.h>

#include <cstdlib>
#include <string>

#include "channel/channel_core.h"
#include "task/channel_front.h"
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

// The backend create()'s message names: the option's, or for Default the
// EVCHAN_BACKEND value that overrides it.
std::string backendText(const EventChannelOptions& options) {
  const char* fromEnvironment = options.backend == Backend::Default ? std::getenv("EVCHAN_BACKEND") : nullptr;
  if (fromEnvironment == nullptr || *fromEnvironment == '\0') {
    return std::string("backend ") + evchan::backendName(options.backend);
  }
  return std::string("EVCHAN_BACKEND=\"") + fromEnvironment + "\"";
}

// Whether EVCHAN_BACKEND is set to something that names no backend.
bool environmentNamesNoBackend() {
  std::error_code ec;
  detail::backendFromEnvironment(ec);
  return static_cast<bool>(ec);
}

// Why spawn() refuses a task with invalid_argument; null when it does not.
const char* invalidSpawn(const detail::TaskFunction* function, std::size_t stackSize) noexcept {
  if (function == nullptr) return "the function is empty";
  if (stackSize > kMaxTaskStackSize) return "TaskOptions::stackSize must be at most kMaxTaskStackSize (1 GiB)";
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
    if (options.backend == Backend::Default && environmentNamesNoBackend()) {
      why = "not a backend name; EVCHAN_BACKEND takes epoll, io_uring, poll, select, apr_pollset, aio or iocp";
    } else if (ec == std::errc::resource_unavailable_try_again) {
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

// The channel's face; a core it could not be wrapped in is shut down, not
// left running.
std::unique_ptr<EventChannel> EventChannel::wrap(const std::shared_ptr<detail::ChannelCore>& core,
                                                 const Options& options) {
  try {
    return std::unique_ptr<EventChannel>(new EventChannel(core, options));
  } catch (...) {
    core->shutdown();
    throw;
  }
}

EventChannel::EventChannel(std::shared_ptr<detail::ChannelCore> core, const Options& options)
    : core_(std::move(core)),
      front_(std::make_shared<detail::ChannelFront>(core_, this, options.onUnhandledException)) {}

EventChannel::~EventChannel() {
  // From outside the workers shutdown() waits for the tasks to end, and
  // they may use this object until then.  From one of its own workers it
  // returns while the other tasks still unwind, so they must find the
  // object gone before the shutdown can wake them.
  const bool fromOwnWorker = detail::ChannelCore::currentWorkerChannel() == core_.get();
  if (fromOwnWorker) front_->channel.store(nullptr);
  // Before the shutdown completes what is pending: the threads waiting in
  // getEvent() wake with nullptr rather than take one of those events and
  // come back to this object, and each is handed back to its owner.
  core_->releaseHeldEvents();
  core_->shutdown();
  front_->channel.store(nullptr);
  // Again, to unlist the queue the shutdown listed (nothing is held).
  core_->releaseHeldEvents();
}

std::unique_ptr<EventChannel> EventChannel::create(const Options& options, std::error_code& ec) noexcept {
  std::string why;
  try {
    std::shared_ptr<detail::ChannelCore> core = createCore(options, ec, why);
    return core ? wrap(core, options) : nullptr;
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
    std::string what = "create event channel (" + backendText(options) + ")";
    if (!why.empty()) what += ": " + why;
    throw SystemError(ec, what);
  }
  return wrap(core, options);
}

void EventChannel::post(Event& event, std::error_code& ec) noexcept { ec = core_->post(event); }

void EventChannel::post(Event& event) {
  throwIfError(core_->post(event), "post event");
}

bool EventChannel::cancel(Event& event) noexcept { return core_->cancel(event); }

Event* EventChannel::getEvent(Duration timeout) { return core_->getEvent(timeout); }

void EventChannel::shutdown() noexcept { core_->shutdown(); }

bool EventChannel::isShutDown() const noexcept { return core_->isShutDown(); }

TaskHandle EventChannel::spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options,
                                    std::error_code& ec) noexcept {
  try {
    const std::size_t stackSize = options.stackSize != 0 ? options.stackSize : core_->taskStackSize();
    if (invalidSpawn(function.get(), stackSize) != nullptr) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return TaskHandle();
    }
    return detail::spawnTask(front_, std::move(function), stackSize, ec);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return TaskHandle();
  }
}

TaskHandle EventChannel::spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options) {
  const std::size_t stackSize = options.stackSize != 0 ? options.stackSize : core_->taskStackSize();
  if (const char* invalid = invalidSpawn(function.get(), stackSize)) {
    throw SystemError(std::make_error_code(std::errc::invalid_argument), std::string("spawn task: ") + invalid);
  }
  std::error_code ec;
  TaskHandle task = spawnBound(std::move(function), options, ec);
  throwIfError(ec, "spawn task");
  return task;
}

TaskHandle EventChannel::spawn(std::function<void()> function, const TaskOptions& options,
                               std::error_code& ec) noexcept {
  std::unique_ptr<detail::TaskFunction> bound;
  try {
    bound = detail::bindTaskFunction(std::move(function));
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return TaskHandle();
  }
  return spawnBound(std::move(bound), options, ec);
}

TaskHandle EventChannel::spawn(std::function<void()> function, const TaskOptions& options) {
  return spawnBound(detail::bindTaskFunction(std::move(function)), options);
}

const char* EventChannel::backendName() const noexcept { return evchan::backendName(core_->backend()); }

ThreadPoolStats EventChannel::poolStats() const { return core_->stats(); }

}  // namespace evchan
