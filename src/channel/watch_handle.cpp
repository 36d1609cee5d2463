// WatchHandle: a socket's registration with one event channel.
#include "poller/watch_handle.h"

#include <evchan/error.h>

#include "channel/channel_core.h"

namespace evchan::detail {

WatchHandle::~WatchHandle() {
  if (Watch* watch = watch_.load(std::memory_order_acquire)) core_->retireWatch(watch);
}

Watch* WatchHandle::registeredIn(const ChannelCore& core) const noexcept {
  Watch* watch = watch_.load(std::memory_order_acquire);
  return watch != nullptr && core_.get() == &core ? watch : nullptr;
}

Watch* WatchHandle::watchIn(ChannelCore& core, apr_socket_t* socket, std::error_code& ec) {
  // Every post on the socket comes here: once registered, no lock.
  if (Watch* watch = watch_.load(std::memory_order_acquire)) {
    if (core_.get() != &core) {
      ec = Errc::wrong_channel;
      return nullptr;
    }
    ec.clear();
    return watch;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (watch_.load(std::memory_order_relaxed) != nullptr) return watchIn(core, socket, ec);
  Watch* watch = core.addWatch(socket, ec);
  if (watch != nullptr) {
    core_ = core.shared_from_this();
    watch_.store(watch, std::memory_order_release);
  }
  return watch;
}

}  // namespace evchan::detail
