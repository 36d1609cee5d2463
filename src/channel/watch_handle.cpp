// WatchHandle: a socket's registration with one event channel.
#include "channel/watch_handle.h"

#include <evchan/error.h>

#include "channel/channel_core.h"

namespace evchan::detail {

WatchHandle::~WatchHandle() {
  if (watch_ != nullptr) core_->retireWatch(watch_);
}

Watch* WatchHandle::watchIn(ChannelCore& core, apr_socket_t* socket, std::error_code& ec) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (watch_ != nullptr) {
    if (core_.get() != &core) {
      ec = Errc::wrong_channel;
      return nullptr;
    }
    ec.clear();
    return watch_;
  }
  watch_ = core.addWatch(socket, ec);
  if (watch_ != nullptr) core_ = core.shared_from_this();
  return watch_;
}

}  // namespace evchan::detail
